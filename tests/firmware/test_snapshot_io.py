# FIG. 5 and FIG. 6: what the primary and backup LUNs do without and with a snapshot, copy-on-write
# to the log drive, overflow, and a restart in the middle of a snapshot.
import fw
from endpoints.console import lcd

PRIMARY, BACKUP = 0, 1
INITIATE = fw.cdb(0x20, 0, 0x60, 0, 0, 0, 0, 0, 0, 0)
TERMINATE = fw.cdb(0x20, 0, 0x61, 0, 0, 0, 0, 0, 0, 0)
CHUNK = 128                      # blocks in the default 64 KiB chunk


def write(ctl, lba, data, lun=PRIMARY):
    st, sn, _ = fw.run(ctl, lun, fw.write10(lba, len(data) >> 9), data)
    return st, sn


def read(ctl, lba, n, lun=PRIMARY):
    st, sn, d = fw.run(ctl, lun, fw.read10(lba, n))
    assert st == 0, (st, sn)
    return d


def test_fig5_backup_lun_not_ready_without_snapshot():
    ctl = fw.boot()
    for c in (fw.read10(0, 1), fw.cdb(0, 0, 0, 0, 0, 0), fw.cdb(0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0)):
        st, sn, _ = fw.run(ctl, BACKUP, c)
        assert st == 2 and fw.sense3(sn) == (0x02, 0x04, 0x03)
    # a write too: the LUN is not ready before it is write protected
    st, sn = write(ctl, 0, bytes(512), BACKUP)
    assert st == 2 and fw.sense3(sn) == (0x02, 0x04, 0x03)
    # INQUIRY and REPORT LUNS still answer
    st, _, d = fw.run(ctl, BACKUP, fw.cdb(0x12, 0, 0, 0, 96, 0))
    assert st == 0 and d[0] == 0 and b"BACKUP" in d[16:32]


def test_fig5_primary_reads_and_writes_leave_the_log_idle():
    ctl = fw.boot()
    before = ctl.engine.next_slot
    data = fw.pattern(1, 8192)
    assert write(ctl, 100, data) == (0, None)
    assert read(ctl, 100, 16) == data
    assert ctl.engine.next_slot == before and ctl.engine.copies == 0


def test_fig6_first_write_copies_old_chunk_then_backup_shows_initiate_image():
    ctl = fw.boot()
    old = fw.pattern(2, CHUNK * 512 * 2)
    write(ctl, 0, old)
    fw.run(ctl, PRIMARY, INITIATE)
    new = fw.pattern(3, 4096)
    assert write(ctl, CHUNK + 10, new) == (0, None)          # inside chunk 1
    assert ctl.engine.next_slot == 1
    # the old chunk sits in log slot 0, at the start of the data area
    logd = ctl.drives[1]
    slot = bytearray(CHUNK * 512)
    logd.read(ctl.engine.data, memoryview(slot))
    assert slot == old[CHUNK * 512:]
    assert read(ctl, 0, 2 * CHUNK, BACKUP) == old
    expect_new = bytearray(old)
    expect_new[(CHUNK + 10) * 512:(CHUNK + 18) * 512] = new
    assert read(ctl, 0, 2 * CHUNK, PRIMARY) == expect_new


def test_fig6_later_writes_to_a_copied_chunk_leave_the_log_alone():
    ctl = fw.boot()
    fw.run(ctl, PRIMARY, INITIATE)
    write(ctl, 5, fw.pattern(4, 512))
    io = ctl.iop.writes
    for i in range(5):
        write(ctl, 7 + i, fw.pattern(5 + i, 512))
    assert ctl.engine.next_slot == 1
    # RAID 5 small write: data + parity, nothing on the log
    assert ctl.iop.writes - io == 5 * 2


def test_fig6_partial_chunk_write_preserves_the_whole_chunk():
    ctl = fw.boot()
    old = fw.pattern(6, CHUNK * 512)
    write(ctl, 0, old)
    fw.run(ctl, PRIMARY, INITIATE)
    write(ctl, 64, fw.pattern(7, 512))
    assert read(ctl, 0, CHUNK, BACKUP) == old


def test_fig6_write_spanning_chunks_copies_each():
    ctl = fw.boot()
    old = fw.pattern(8, 4 * CHUNK * 512)
    write(ctl, 0, old)
    fw.run(ctl, PRIMARY, INITIATE)
    write(ctl, CHUNK - 4, fw.pattern(9, (2 * CHUNK + 8) * 512))    # touches chunks 0..3
    assert ctl.engine.next_slot == 4
    assert read(ctl, 0, 4 * CHUNK, BACKUP) == old


def test_fig6_backup_lun_rejects_writes_with_data_protect():
    ctl = fw.boot()
    fw.run(ctl, PRIMARY, INITIATE)
    st, sn = write(ctl, 0, bytes(512), BACKUP)
    assert st == 2 and fw.sense3(sn) == (0x07, 0x27, 0x00)


def test_fig6_backup_lun_has_primary_geometry_and_write_protect_bit():
    ctl = fw.boot()
    fw.run(ctl, PRIMARY, INITIATE)
    rc = fw.cdb(0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    assert fw.run(ctl, BACKUP, rc)[2] == fw.run(ctl, PRIMARY, rc)[2]
    ms = fw.cdb(0x1A, 0, 0x3F, 0, 255, 0)
    assert fw.run(ctl, BACKUP, ms)[2][2] & 0x80
    assert not fw.run(ctl, PRIMARY, ms)[2][2] & 0x80


def small_log(ctl, mb=1, chunk_kb=64):
    # replace the factory log drive by a small one
    for port in (0, 1):
        ctl.command("lun_unmap", {"port": port, "lun": 1})
    ctl.command("log_clear", {"sd": 1})
    ctl.command("sd_delete", {"sd": 1})
    ctl.command("sd_create", {"raid": 1, "slots": [4, 5], "mb": mb, "sd": 1})
    ctl.command("log_set", {"sd": 1, "chunk_kb": chunk_kb})
    ctl.command("lun_map", {"port": 0, "lun": 1, "sd": 1})


def test_overflow_vendor_sense_once_then_not_ready_primary_unaffected():
    ctl = fw.boot()
    small_log(ctl)
    cap = ctl.engine.max_slots
    assert cap == (2048 - 8 - 8) // CHUNK         # 1 MiB less the header and the index records
    fw.run(ctl, PRIMARY, INITIATE)
    data = fw.pattern(10, 512)
    for c in range(cap + 3):
        assert write(ctl, c * CHUNK, data) == (0, None)
    # terminated by the overflow; the state shows it until the backup LUN has reported it
    assert ctl.command("snapshot_status")["state"] == "OVERFLOWED"
    st, sn, _ = fw.run(ctl, BACKUP, fw.read10(0, 1))
    assert st == 2 and fw.sense3(sn) == (0x09, 0x82, 0x00)
    assert ctl.command("snapshot_status")["state"] == "IDLE"
    for _ in range(2):
        st, sn, _ = fw.run(ctl, BACKUP, fw.read10(0, 1))
        assert st == 2 and fw.sense3(sn) == (0x02, 0x04, 0x03)
    assert read(ctl, (cap + 2) * CHUNK, 1) == data
    texts = [e["text"] for e in ctl.events.recent(20)]
    for pct in (75, 90, 98):
        assert "LOG DRIVE %d%% FULL" % pct in texts, texts
    assert any("LOG OVERFLOW" in t for t in texts)
    # the next initiate starts a fresh snapshot
    assert fw.run(ctl, PRIMARY, INITIATE)[0] == 0
    assert read(ctl, 0, 1, BACKUP) == data


def test_overflow_is_reported_after_a_restart_too():
    ctl = fw.boot()
    small_log(ctl)
    fw.run(ctl, PRIMARY, INITIATE)
    for c in range(ctl.engine.max_slots + 1):
        write(ctl, c * CHUNK, bytes(512))
    ctl = fw.reboot(ctl)
    st, sn, _ = fw.run(ctl, BACKUP, fw.cdb(0, 0, 0, 0, 0, 0))
    assert fw.sense3(sn) == (0x09, 0x82, 0x00)


def test_restart_mid_snapshot_keeps_it_active_and_exact():
    ctl = fw.boot()
    old = fw.pattern(11, 8 * CHUNK * 512)
    write(ctl, 0, old)
    fw.run(ctl, PRIMARY, INITIATE)
    for c in (1, 3, 5):
        write(ctl, c * CHUNK + 3, fw.pattern(20 + c, 1024))
    ctl = fw.reboot(ctl)
    assert ctl.command("snapshot_status")["state"] == "ACTIVE"
    assert ctl.engine.next_slot == 3
    assert read(ctl, 0, 8 * CHUNK, BACKUP) == old
    write(ctl, 7 * CHUNK, fw.pattern(30, 512))          # a new first write after the restart
    write(ctl, 3 * CHUNK, fw.pattern(31, 512))          # a rewrite: no new copy
    assert ctl.engine.next_slot == 4
    assert read(ctl, 0, 8 * CHUNK, BACKUP) == old


def test_a_board_rebooted_with_another_heap_keeps_its_snapshot_or_reports_it_lost():
    # the log layout depends on the drive only; an index that no longer fits in memory ends the
    # snapshot with the vendor-unique error rather than a backup LUN showing new data
    ctl = fw.boot()
    old = fw.pattern(14, 40 * CHUNK * 512)
    for c in range(0, 40, 8):
        assert write(ctl, c * CHUNK, old[c * CHUNK * 512:(c + 8) * CHUNK * 512]) == (0, None)
    fw.run(ctl, PRIMARY, INITIATE)
    for c in range(48):
        write(ctl, c * CHUNK, fw.pattern(15, 512))
    ctl.board["heap_kb"] *= 4                          # more memory: the same snapshot, exact
    ctl = fw.reboot(ctl)
    assert ctl.engine.next_slot == 48
    assert b"".join(read(ctl, c * CHUNK, 8 * CHUNK, BACKUP) for c in range(0, 40, 8)) == old
    ctl.board["heap_kb"] = 2                            # an index budget of 512 bytes: 43 slots
    ctl = fw.reboot(ctl)
    assert ctl.engine.max_slots == 43
    assert ctl.command("snapshot_status")["state"] == "OVERFLOWED"
    assert fw.sense3(fw.run(ctl, BACKUP, fw.read10(0, 1))[1]) == (0x09, 0x82, 0x00)
    assert any("DOES NOT FIT IN MEMORY" in e["text"] for e in ctl.events.recent(20))
    assert read(ctl, 0, 1) == fw.pattern(15, 512)


def test_a_damaged_log_header_means_no_snapshot_and_says_so():
    ctl = fw.boot()
    write(ctl, 0, fw.pattern(16, 512))
    fw.run(ctl, PRIMARY, INITIATE)
    write(ctl, 0, fw.pattern(17, 512))
    hdr = bytearray(512)
    ctl.engine.log.read(0, memoryview(hdr))
    hdr[20] ^= 0x01                                     # the chunk size field, CRC now wrong
    ctl.engine.log.write(0, memoryview(hdr))
    ctl = fw.reboot(ctl)
    assert ctl.command("snapshot_status")["state"] == "IDLE"
    st, sn, _ = fw.run(ctl, BACKUP, fw.read10(0, 1))
    assert st == 2 and fw.sense3(sn) == (0x02, 0x04, 0x03)
    assert any("HEADER DAMAGED" in e["text"] for e in ctl.events.recent(20))
    assert fw.run(ctl, PRIMARY, INITIATE)[0] == 0       # a new snapshot starts over it
    assert read(ctl, 0, 1, BACKUP) == fw.pattern(17, 512)


def test_terminate_then_initiate_forgets_the_old_exceptions():
    ctl = fw.boot()
    write(ctl, 0, fw.pattern(12, 512))
    fw.run(ctl, PRIMARY, INITIATE)
    write(ctl, 0, fw.pattern(13, 512))
    fw.run(ctl, PRIMARY, TERMINATE)
    fw.run(ctl, PRIMARY, INITIATE)
    assert read(ctl, 0, 1, BACKUP) == fw.pattern(13, 512)
    ctl = fw.reboot(ctl)
    assert read(ctl, 0, 1, BACKUP) == fw.pattern(13, 512)


def test_one_snapshot_board_wide_and_log_shared_by_primaries():
    b = fw.small_board(slots=8)
    ctl = fw.boot(b=b)
    ctl.command("sd_create", {"raid": 1, "slots": [6, 7], "sd": 2})
    ctl.command("lun_map", {"port": 0, "lun": 2, "sd": 2})
    fw.run(ctl, PRIMARY, INITIATE)
    st, sn, _ = fw.run(ctl, 2, INITIATE)
    assert fw.sense3(sn) == (0x09, 0x81, 0x10)
    # terminate through a LUN of an unrelated drive: not its snapshot
    assert fw.sense3(fw.run(ctl, 2, TERMINATE)[1]) == (0x09, 0x81, 0x0C)
    fw.run(ctl, PRIMARY, TERMINATE)
    old = fw.pattern(14, 1024)
    write(ctl, 0, old, lun=2)
    assert fw.run(ctl, 2, INITIATE)[0] == 0         # the same log drive serves the other primary
    write(ctl, 0, fw.pattern(15, 1024), lun=2)
    assert read(ctl, 0, 2, BACKUP) == old


def test_log_cannot_change_during_a_snapshot():
    ctl = fw.boot()
    fw.run(ctl, PRIMARY, INITIATE)
    for cmd in ("log_clear", "log_set"):
        try:
            ctl.command(cmd, {"sd": 1})
            assert False, cmd
        except Exception as e:
            assert e.code == "SNAPSHOT_ACTIVE", e.code


def test_initiate_is_constant_time_in_primary_size():
    # a header write and an index clear: the physical I/O does not depend on the primary's size
    ctl = fw.boot()
    ctl.iop.reset_counters()
    fw.run(ctl, PRIMARY, INITIATE)
    assert (ctl.iop.reads, ctl.iop.writes) == (0, 2)      # one header block on each log mirror


def test_write_back_primary_initiate_flushes_cache_and_snapshot_is_exact():
    ctl = fw.boot()
    ctl.command("sd_policy", {"sd": 0, "wb": True})
    ms = fw.run(ctl, PRIMARY, fw.cdb(0x1A, 0, 0x08, 0, 255, 0))[2]
    assert ms[4 + 8 + 2] & 0x04                          # caching page: WCE reflects WB_MSK
    old = fw.pattern(40, 2 * CHUNK * 512)
    write(ctl, 0, old)
    assert ctl.cache.dirty(0) > 0
    fw.run(ctl, PRIMARY, INITIATE)
    assert ctl.cache.dirty(0) == 0                       # claim 4: the snapshot point is on disk
    write(ctl, 10, fw.pattern(41, 4096))
    assert read(ctl, 0, 2 * CHUNK, BACKUP) == old
    ctl = fw.reboot(ctl)                                 # killed with dirty lines: journal replay
    assert read(ctl, 0, 2 * CHUNK, BACKUP) == old
    assert read(ctl, 10, 8) == fw.pattern(41, 4096)


def test_synchronize_cache_destages_a_write_back_drive():
    ctl = fw.boot()
    ctl.command("sd_policy", {"sd": 0, "wb": True})
    write(ctl, 0, fw.pattern(42, 4096))
    assert ctl.cache.dirty(0) > 0
    st, sn, _ = fw.run(ctl, PRIMARY, fw.cdb(0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0))
    assert st == 0 and ctl.cache.dirty(0) == 0


def test_a_run_of_chunks_that_does_not_fit_the_log_overflows():
    # a multi-chunk write when the log has room for only part of it: the part is copied, then the
    # log overflows — the chunks that did not fit are never left unprotected with the snapshot on
    ctl = fw.boot()
    small_log(ctl)
    cap = ctl.engine.max_slots
    fw.run(ctl, PRIMARY, INITIATE)
    for c in range(cap - 2):
        write(ctl, c * CHUNK, bytes(512))
    assert write(ctl, 100 * CHUNK, fw.pattern(50, 4 * CHUNK * 512)) == (0, None)
    assert ctl.command("snapshot_status")["state"] == "OVERFLOWED"
    assert fw.sense3(fw.run(ctl, BACKUP, fw.read10(100 * CHUNK, 1))[1]) == (0x09, 0x82, 0x00)


def test_device_identifiers_are_stable_and_distinct():
    def vpd83(ctl, lun, port=0):
        st, sn, d = fw.run(ctl, lun, fw.cdb(0x12, 1, 0x83, 0, 255, 0), port=port)
        assert st == 0 and d[1] == 0x83
        return d[4:]
    ctl = fw.boot()
    p, b, p1 = vpd83(ctl, PRIMARY), vpd83(ctl, BACKUP), vpd83(ctl, PRIMARY, port=1)
    assert p[4] >> 4 == 6                       # NAA 6 designator
    assert p[:20] != b[:20]                     # the backup LUN is a different logical unit
    assert p[:20] == p1[:20]                    # the same drive through the other host port
    ctl = fw.reboot(ctl)
    assert vpd83(ctl, PRIMARY) == p and vpd83(ctl, BACKUP) == b


def test_a_long_first_write_is_copied_with_one_read_and_one_log_write():
    ctl = fw.boot(b=fw.small_board(slots=8))
    ctl.command("sd_create", {"raid": 7, "slots": [6], "sd": 2})      # a JBOD primary
    ctl.command("lun_map", {"port": 0, "lun": 2, "sd": 2})
    old = fw.pattern(60, 16 * CHUNK * 512)
    write(ctl, 0, old, lun=2)
    fw.run(ctl, 2, INITIATE)
    ctl.iop.reset_counters()
    write(ctl, 0, fw.pattern(61, 16 * CHUNK * 512), lun=2)           # 1 MiB: 16 chunks
    assert ctl.engine.next_slot == 16
    # one read of the old megabyte; on the RAID 1 log the data and its record block on each
    # mirror; then the new megabyte
    assert (ctl.iop.reads, ctl.iop.writes) == (1, 2 + 2 + 1)
    assert read(ctl, 0, 16 * CHUNK, BACKUP) == old
    assert ctl.buffer.free == ctl.buffer.slots - ctl.cache.dirty()  # every span given back


def test_raid5_first_writes_reuse_the_old_data_the_log_needs():
    # claim 8's point: the old data a RAID 5 read-modify-write reads anyway is what the log needs,
    # so a first write costs the log writes on top of the normal read-modify-write and no more
    ctl = fw.boot()                                      # SD0: RAID 5 over 4 disks, 64 KiB units
    assert ctl.drives[0].level == 5 and ctl.drives[0].unit == CHUNK
    write(ctl, 0, fw.pattern(62, 64 * CHUNK * 512)[:1 << 20])
    ctl.iop.reset_counters()
    write(ctl, 10 * CHUNK + 4, fw.pattern(63, 4096))
    plain = (ctl.iop.reads, ctl.iop.writes)
    assert plain == (2, 2)                               # old data, old parity; data, parity
    fw.run(ctl, PRIMARY, INITIATE)
    for lba, n, extra_units in ((3 * CHUNK + 4, 8, 0), (7 * CHUNK - 4, 16, 1)):
        ctl.iop.reset_counters()
        write(ctl, lba, fw.pattern(64 + n, n * 512))
        # the chunk read(s) replace the old-data reads; the log's data and record block go to
        # both log mirrors; data and parity as without a snapshot
        assert (ctl.iop.reads, ctl.iop.writes) == (2 + extra_units, 2 + 4 + extra_units), \
            (lba, n, ctl.iop.reads, ctl.iop.writes)


def test_buffer_spans_are_adjacent_and_fall_back_to_what_is_free():
    from hw import buffer
    b = buffer.Buffer(8 * 1024, 1024)
    one = b.take()
    first, n = b.take_span(4)
    assert n == 4 and one not in range(first, first + 4)
    b.span(first, n)[:] = bytes(4096)
    x = [b.take() for _ in range(b.free)]
    assert b.take_span(2) == (-1, 0)
    b.give(x[0])
    assert b.take_span(2)[1] == 1                                 # only one slot is free
    b.give_span(first, n)
    assert b.free == 4


def last(ctl):
    return ctl.command("snapshot_status")["last"]


def test_an_overflowed_snapshot_keeps_its_outcome_past_the_report_until_the_next_initiate():
    ctl = fw.boot()
    small_log(ctl)
    cap = ctl.engine.max_slots
    assert last(ctl) is None
    fw.run(ctl, PRIMARY, INITIATE)
    for c in range(cap + 1):
        write(ctl, c * CHUNK, bytes(512))
    out = last(ctl)
    assert out["how"] == "overflow" and out["reason"] == "LOG OVERFLOW"
    assert (out["primary"], out["log"], out["exceptions"], out["capacity"]) == (0, 1, cap, cap)
    assert out["usage_pct"] == 100 and out["started"] <= out["ended"]
    # the backup LUN's one overflow report (a TUR from any initiator) leaves the outcome in place
    st, sn, _ = fw.run(ctl, BACKUP, fw.cdb(0, 0, 0, 0, 0, 0), ini="iqn.test:other")
    assert fw.sense3(sn) == (0x09, 0x82, 0x00)
    assert ctl.command("snapshot_status")["state"] == "IDLE" and last(ctl) == out
    assert lcd.snap_line(ctl.command("snapshot_status")) == "SNAP OVERFLOW 100%"
    assert lcd.snap_detail(ctl.command("snapshot_status")).startswith("SD0 ENDED ")
    try:
        ctl.command("snapshot_stop", {})
        assert False, "stop after an overflow must be refused"
    except Exception as e:
        assert e.code == "NO_SNAPSHOT" and "already ended by overflow (LOG OVERFLOW)" in e.message, e.message
    fw.run(ctl, PRIMARY, INITIATE)
    assert last(ctl) is None


def test_a_terminated_snapshot_keeps_its_outcome():
    ctl = fw.boot()
    fw.run(ctl, PRIMARY, INITIATE)
    write(ctl, 0, bytes(512))
    fw.run(ctl, BACKUP, TERMINATE)
    out = last(ctl)
    assert out["how"] == "terminated" and out["reason"] == "command"
    assert out["primary"] == 0 and out["exceptions"] == 1


def test_the_last_outcome_survives_a_restart_in_the_log_header():
    ctl = fw.boot()
    small_log(ctl)
    fw.run(ctl, PRIMARY, INITIATE)
    for c in range(ctl.engine.max_slots + 1):
        write(ctl, c * CHUNK, bytes(512))
    out = last(ctl)
    ctl = fw.reboot(ctl)
    kept = last(ctl)
    assert kept["how"] == "overflow" and kept["reason"] == "LOG OVERFLOW" and kept["ended"] == int(out["ended"])
    assert [kept[k] for k in ("primary", "log", "usage_pct", "exceptions", "capacity", "generation")] == \
        [out[k] for k in ("primary", "log", "usage_pct", "exceptions", "capacity", "generation")]
    assert fw.sense3(fw.run(ctl, BACKUP, fw.cdb(0, 0, 0, 0, 0, 0))[1]) == (0x09, 0x82, 0x00)
    ctl = fw.reboot(ctl)
    assert last(ctl)["how"] == "overflow"
    fw.run(ctl, PRIMARY, INITIATE)
    fw.run(ctl, PRIMARY, TERMINATE)
    ctl = fw.reboot(ctl)
    assert (last(ctl)["how"], last(ctl)["reason"]) == ("terminated", "command")
    fw.run(ctl, PRIMARY, INITIATE)
    ctl = fw.reboot(ctl)
    assert last(ctl) is None and ctl.command("snapshot_status")["state"] == "ACTIVE"


def _pair_on_one_set_of_disks(prepare=None):
    # two controllers on one set of disks stand for the pair: `owner` writes and puts each run of
    # exceptions in the follower's mirror memory (control/mirror.py), `follower` serves the
    # backup LUN from what it reads there. prepare(owner): a configuration both boot with
    from control import mirror as M
    owner = fw.boot()
    if prepare is not None:
        prepare(owner)
    follower = fw.boot(owner.state_dir)
    memory = fw.tmpdir("mirror")

    class Pair:
        partner_dir = memory

        def up(self):
            return True

    exc = M.ExceptionMirror(Pair())
    e, f = owner.engine, follower.engine
    f.absorb = M.ExceptionFeed(memory, f).absorb
    return owner, follower, exc, e, f


def _following(seed, chunks):
    # the pair of _pair_on_one_set_of_disks with `chunks` chunks of pattern `seed` on the
    # primary, a snapshot of them begun and the follower told -> the pair and that data
    owner, follower, exc, e, f = _pair_on_one_set_of_disks()
    old = fw.pattern(seed, CHUNK * 512 * chunks)
    write(owner, 0, old)
    fw.run(owner, PRIMARY, INITIATE)
    _follow(owner, follower)
    return owner, follower, exc, e, f, old


def _follow(owner, follower):
    # the follower told of the owner's snapshot, as a SNAP message tells it
    e = owner.engine
    follower.engine.follow(e.state, 0, follower.drives[0], e.snap_id, e.generation, e.started, None)


def test_a_follower_reads_an_announced_run_from_the_primary_until_its_records_are_on_the_log():
    # the owner announces a run before copying it, so the follower's backup LUN must not trust
    # the slots until the records say the copy is made
    owner, follower, exc, e, f, old = _following(40, 4)
    exc.start()

    def backup(c):
        buf = bytearray(CHUNK * 512)
        f.read_backup(c * CHUNK, memoryview(buf))
        return buf

    seen = []

    def announce(c, slot, k):
        exc.add(e.snap_id, c, slot, k)
        seen.append(backup(c))
    e.announce = announce
    assert write(owner, CHUNK + 3, fw.pattern(41, 4096)) == (0, None)          # chunk 1, slot 0
    chunk1 = old[CHUNK * 512:2 * CHUNK * 512]
    assert seen == [chunk1] and f.pending_k == 1              # no record yet: the primary, still old
    assert backup(1) == chunk1 and f.index.count == 1 and f.pending_k == 0   # the record: the slot

    # an announced run whose copy never came (the owner's copy failed) is announced again at the
    # same slot for the next chunk: the first stays out of the index and reads the primary
    exc.add(e.snap_id, 2, 1, 1)
    assert backup(2) == old[2 * CHUNK * 512:3 * CHUNK * 512]
    del seen[:]
    assert write(owner, 3 * CHUNK, fw.pattern(42, 4096)) == (0, None)          # chunk 3, slot 1 again
    assert f.pending_c == 3 and f.index.count == 1
    assert backup(3) == old[3 * CHUNK * 512:]                 # its record is there: from slot 1
    assert f.index.count == 2 and f.pending_k == 0
    assert backup(2) == old[2 * CHUNK * 512:3 * CHUNK * 512]   # the primary: slot 1 is chunk 3's


def test_a_run_copied_and_overwritten_while_the_follower_reads_the_primary_is_read_again():
    # nothing waits for the follower: the owner may announce, copy and overwrite a chunk between
    # the follower's look at its mirror memory and its read of the primary. The look after the
    # read finds the run, and the chunk is read again from the log
    owner, follower, exc, e, f, old = _following(43, 2)
    exc.start()
    e.announce = lambda c, slot, k: exc.add(e.snap_id, c, slot, k)
    primary = f.primary
    real = primary.read
    raced = []

    def read_after_the_owner_wrote(lba, mv):
        if not raced:
            raced.append(write(owner, 0, fw.pattern(44, 2 * CHUNK * 512)))    # both chunks
        real(lba, mv)
    primary.read = read_after_the_owner_wrote
    buf = bytearray(2 * CHUNK * 512)
    f.read_backup(0, memoryview(buf))
    assert raced == [(0, None)] and bytes(buf) == old
    assert f.index.count == 2


def test_a_follower_reads_what_was_copied_without_a_word_to_it_from_the_log_records():
    # a controller that begins to follow while its partner does not hear it yet (a restart):
    # runs copied meanwhile reach no mirror memory, but their records on the log do
    owner, follower, exc, e, f, old = _following(45, 2)
    assert write(owner, 0, fw.pattern(46, 2 * CHUNK * 512)) == (0, None)     # nothing announced
    buf = bytearray(2 * CHUNK * 512)
    f.read_backup(0, memoryview(buf))
    assert bytes(buf) == old and f.index.count == 2 and f.indexed == 2


def test_entries_left_by_an_earlier_snapshot_are_passed_over():
    # the owner could not empty the list when the snapshot began (the partner was away): it
    # appends to what an earlier snapshot left, and the follower reads past those entries
    owner, follower, exc, e, f = _pair_on_one_set_of_disks()
    exc.start()
    exc.add(12345, 7, 0, 1)                                   # another snapshot's run
    fw.run(owner, PRIMARY, INITIATE)
    _follow(owner, follower)
    exc.add(e.snap_id, 1, 0, 1)                               # this one's, appended
    assert f.absorb() == 1 and (f.pending_c, f.pending_slot, f.pending_k) == (1, 0, 1)
    assert f.absorb() == 0


def test_a_run_that_cannot_reach_the_mirror_memory_fails_the_write_and_leaves_the_primary():
    # the partner must know of a copy before the primary is overwritten: no entry, no write
    from control import mirror as M
    owner = fw.boot()
    old = fw.pattern(49, CHUNK * 512)
    write(owner, 0, old)
    fw.run(owner, PRIMARY, INITIATE)

    class Away:
        partner_dir = fw.tmpdir("gone") + "/no-such-directory"

        def up(self):
            return True

    exc = M.ExceptionMirror(Away())
    e = owner.engine
    e.announce = lambda c, slot, k: exc.add(e.snap_id, c, slot, k)
    st, sn = write(owner, 0, fw.pattern(50, 512))
    assert st == 2 and sn is not None
    assert read(owner, 0, CHUNK) == old and e.next_slot == 0


def test_runs_announced_after_a_gap_leave_the_gap_to_the_log_records():
    # runs copied without a word to the follower (slot 0), then announced ones (slots 1, 2): the
    # index takes the announced ones, and the slots below stay to be read from the log's records
    owner, follower, exc, e, f, old = _following(51, 3)
    for c in range(3):
        write(owner, c * CHUNK, fw.pattern(52, 512))         # chunks 0, 1, 2 -> slots 0, 1, 2
    f.follow_exceptions(1, 1, 1)
    f.follow_exceptions(2, 2, 1)                           # run 1 is on the log: indexed ...
    assert f.index.find(1) == 1 and f.indexed == 0         # ... but slot 0 is not yet
    buf = bytearray(3 * CHUNK * 512)
    f.read_backup(0, memoryview(buf))
    assert bytes(buf) == old and f.indexed == 3 and f.index.count == 3


def test_an_entry_a_failed_write_left_is_passed_over():
    owner, follower, exc, e, f = _pair_on_one_set_of_disks()
    fw.run(owner, PRIMARY, INITIATE)
    _follow(owner, follower)
    exc.start()
    exc.add(e.snap_id, 5, 0, 1)
    exc.f.write(b"\x01\x02\x03")                           # a write cut short, then the file closed
    exc.close()
    exc.add(e.snap_id, 6, 1, 1)                            # reopened: made whole first
    assert f.absorb() == 2 and (f.pending_c, f.pending_slot) == (6, 1)


def test_a_snapshot_s_end_reaches_the_follower_through_its_mirror_memory_before_any_message():
    # the owner's message may come late (a loaded partner), and writes after an overflow are not
    # copied: the end is in the follower's mirror memory before the write that overflowed reaches
    # the primary, so the follower's backup LUN reports the overflow rather than read that write
    # as the image. The message, when it comes, reports nothing twice
    from snapshot.engine import ACTIVE, OVERFLOWED
    owner, follower, exc, e, f = _pair_on_one_set_of_disks(small_log)
    cap = e.max_slots
    fw.run(owner, PRIMARY, INITIATE)
    _follow(owner, follower)
    exc.start()
    e.announce = lambda c, slot, k: exc.add(e.snap_id, c, slot, k)
    e.notify = lambda state: exc.start() if state == ACTIVE else exc.end(e.snap_id, state)   # as the
    # pair does (pair.snapshot_changed), before its message
    for c in range(cap + 1):                               # the last chunk finds the log full
        assert write(owner, c * CHUNK, fw.pattern(53, 512)) == (0, None)
    assert e.state == OVERFLOWED and f.state == ACTIVE     # no message has come
    st, sn, _ = fw.run(follower, BACKUP, fw.read10(cap * CHUNK, 1))
    assert st == 2 and fw.sense3(sn) == (0x09, 0x82, 0x00)
    f.follow(OVERFLOWED, 0, None, e.snap_id, e.generation, e.started, e.last)   # the message
    st, sn, _ = fw.run(follower, BACKUP, fw.read10(0, 1))
    assert st == 2 and fw.sense3(sn) == (0x02, 0x04, 0x03)
    assert f.last["how"] == "overflow"
    # the next snapshot is followed as before
    fw.run(owner, PRIMARY, INITIATE)
    _follow(owner, follower)
    assert f.state == ACTIVE and fw.run(follower, BACKUP, fw.read10(0, 1))[0] == 0


def test_a_terminate_reaches_the_follower_through_its_mirror_memory_too():
    # after a terminate the primary's writes are not copied either: the follower's backup LUN
    # stops at the end in its mirror memory, NOT READY, without waiting for the message
    from snapshot.engine import IDLE
    owner, follower, exc, e, f, old = _following(54, 2)
    exc.start()
    e.notify = lambda state: exc.end(e.snap_id, state)     # (pair.snapshot_changed)
    fw.run(owner, PRIMARY, TERMINATE)
    assert write(owner, 0, fw.pattern(55, CHUNK * 512)) == (0, None)
    st, sn, _ = fw.run(follower, BACKUP, fw.read10(0, CHUNK))
    assert st == 2 and fw.sense3(sn) == (0x02, 0x04, 0x03) and f.state == IDLE


def test_a_follower_that_cannot_index_the_snapshot_reports_its_end_once():
    # its own end (the partner's runs do not fit its memory), then the owner's overflow message
    # for the same snapshot: 09/82/00 once, then NOT READY
    from snapshot.engine import OVERFLOWED
    owner, follower, exc, e, f, old = _following(56, 2)
    f._not_followed()                    # a run the follower's index cannot take
    st, sn, _ = fw.run(follower, BACKUP, fw.read10(0, 1))
    assert st == 2 and fw.sense3(sn) == (0x09, 0x82, 0x00)
    f.follow(OVERFLOWED, 0, None, e.snap_id, e.generation, e.started, None)    # the owner's message
    st, sn, _ = fw.run(follower, BACKUP, fw.read10(0, 1))
    assert st == 2 and fw.sense3(sn) == (0x02, 0x04, 0x03)
