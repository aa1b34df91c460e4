# A snapshot through restarts with write-back drives, cache policy changes and disk failures: the
# backup LUN stays exact, or the snapshot ends with a documented answer (scsi/vendor.md, snapshot/README.md
# "Failures") — never a firmware fault.
import fw

PRIMARY, BACKUP = 0, 1
INITIATE = fw.cdb(0x20, 0, 0x60, 0, 0, 0, 0, 0, 0, 0)
TERMINATE = fw.cdb(0x20, 0, 0x61, 0, 0, 0, 0, 0, 0, 0)
TUR = fw.cdb(0, 0, 0, 0, 0, 0)
CHUNK = 128                      # blocks in the default 64 KiB chunk
PRIMARY_SLOTS = (0, 1, 2, 3)     # factory layout: SD0 RAID 5, SD1 RAID 1 log
LOG_SLOTS = (4, 5)
OVERFLOW, NOT_READY = (0x09, 0x82, 0x00), (0x02, 0x04, 0x03)


def answer(ctl, lun, c, data=None):
    # None for GOOD, else the sense key / ASC / ASCQ
    st, sn, _ = fw.run(ctl, lun, c, data)
    return fw.sense3(sn) if st else None


def write(ctl, lba, data):
    return answer(ctl, PRIMARY, fw.write10(lba, len(data) >> 9), data)


def read(ctl, lba, n, lun=PRIMARY):
    st, sn, d = fw.run(ctl, lun, fw.read10(lba, n))
    assert st == 0, fw.sense3(sn)
    return d


def snapshot_with_copies(ctl, chunks=8):
    # an image of `chunks` chunks, a snapshot of it, then chunks 1, 3 and 5 rewritten (copied)
    old = fw.pattern(70, chunks * CHUNK * 512)
    assert write(ctl, 0, old) is None
    assert answer(ctl, PRIMARY, INITIATE) is None
    for c in (1, 3, 5):
        assert write(ctl, c * CHUNK + 3, fw.pattern(71 + c, 1024)) is None
    return old


def texts(ctl):
    return [e["text"] for e in ctl.events.recent(50)]


def assert_no_fault(ctl):
    assert not [t for t in texts(ctl) if "FIRMWARE FAULT" in t or "UNREADABLE" in t], texts(ctl)


def fail(ctl, slots):
    for s in slots:
        ctl.command("disk_fail", {"slot": s})


class BrokenDisk:
    # a disk file whose every access fails with EIO
    def seek(self, *args):
        raise OSError(5)
    readinto = write = seek

    def close(self):
        pass


def break_files(ctl, slots):
    # the disks fail under the firmware (an I/O error, not a command): the next access to each
    # takes its slot out, as a real drive the controller gives up on
    ctl.iop.drain()
    for s in slots:
        ctl.iop._close(s)
        ctl.iop.files[s] = ctl.iop.tfiles[s] = BrokenDisk()


def state(ctl):
    return ctl.command("snapshot_status")["state"]


def overflow_reported_once(ctl, probe=TUR):
    assert state(ctl) == "OVERFLOWED"
    assert answer(ctl, BACKUP, probe) == OVERFLOW
    assert state(ctl) == "IDLE"
    assert answer(ctl, BACKUP, TUR) == NOT_READY
    assert answer(ctl, BACKUP, fw.read10(0, 1)) == NOT_READY


# ---- write-back drives across restarts --------------------------------------------------------
def restart_keeps_snapshot(wb_sds):
    ctl = fw.boot()
    for sd in wb_sds:
        ctl.command("sd_policy", {"sd": sd, "wb": True})
    old = snapshot_with_copies(ctl)
    for sd in wb_sds:
        assert ctl.cache.dirty(sd) > 0       # the restart finds the journal to replay
    ctl = fw.reboot(ctl)
    assert state(ctl) == "ACTIVE" and ctl.engine.next_slot == 3
    assert read(ctl, 0, 8 * CHUNK, BACKUP) == old
    assert write(ctl, 7 * CHUNK, fw.pattern(80, 512)) is None     # a first write after the restart
    ctl = fw.reboot(ctl)
    assert state(ctl) == "ACTIVE" and ctl.engine.next_slot == 4
    assert read(ctl, 0, 8 * CHUNK, BACKUP) == old
    assert read(ctl, 7 * CHUNK, 1) == fw.pattern(80, 512)
    assert_no_fault(ctl)


def test_a_write_back_log_keeps_its_snapshot_across_restarts():
    restart_keeps_snapshot((1,))


def test_a_write_back_primary_and_log_keep_their_snapshot_across_restarts():
    restart_keeps_snapshot((0, 1))


def test_cache_policy_of_primary_and_log_may_change_during_a_snapshot():
    # accepted (snapshot/README.md): write-through destages first; the engine follows the rebuilt drive,
    # so copy-on-write goes on and the backup LUN stays exact
    ctl = fw.boot()
    old = snapshot_with_copies(ctl, chunks=12)
    steps = ((1, True), (0, True), (1, False), (0, False))
    for i, (sd, wb) in enumerate(steps):
        ctl.command("sd_policy", {"sd": sd, "wb": wb})
        assert write(ctl, (6 + i) * CHUNK, fw.pattern(90 + i, 512)) is None
        assert state(ctl) == "ACTIVE" and ctl.engine.next_slot == 4 + i
        assert read(ctl, 0, 12 * CHUNK, BACKUP) == old
    ctl = fw.reboot(ctl)
    assert read(ctl, 0, 12 * CHUNK, BACKUP) == old


# ---- disk failures during a snapshot ----------------------------------------------------------
def test_a_degraded_log_drive_keeps_the_snapshot_exact():
    ctl = fw.boot()
    old = snapshot_with_copies(ctl)
    fail(ctl, LOG_SLOTS[:1])
    assert state(ctl) == "ACTIVE" and answer(ctl, BACKUP, TUR) is None
    assert write(ctl, 6 * CHUNK, fw.pattern(81, 512)) is None
    assert read(ctl, 0, 8 * CHUNK, BACKUP) == old
    ctl = fw.reboot(ctl)
    assert read(ctl, 0, 8 * CHUNK, BACKUP) == old
    assert_no_fault(ctl)


def test_a_degraded_primary_keeps_the_snapshot_exact():
    ctl = fw.boot()
    old = snapshot_with_copies(ctl)
    fail(ctl, PRIMARY_SLOTS[:1])
    assert state(ctl) == "ACTIVE" and answer(ctl, BACKUP, TUR) is None
    assert write(ctl, 6 * CHUNK, fw.pattern(82, 512)) is None
    assert read(ctl, 0, 8 * CHUNK, BACKUP) == old
    assert_no_fault(ctl)


def log_offline_is_an_overflow(wb):
    ctl = fw.boot()
    if wb:
        ctl.command("sd_policy", {"sd": 1, "wb": True})
        ctl.command("sd_policy", {"sd": 0, "wb": True})
    snapshot_with_copies(ctl)
    fail(ctl, LOG_SLOTS)
    # the moment the log drive is OFFLINE the snapshot has ended, before any command notices
    assert state(ctl) == "OVERFLOWED"
    assert ctl.cache.dirty(1) == 0           # what the cache held for the log can never land
    assert any("LOG SD1 OFFLINE: SNAPSHOT TERMINATED" in t for t in texts(ctl)), texts(ctl)
    out = ctl.command("snapshot_status")["last"]
    assert (out["how"], out["reason"], out["exceptions"]) == ("log failed", "LOG SD1 OFFLINE", 3)
    for c in range(8, 8 + 2 * ctl.cache.max_lines):          # the primary carries on
        assert write(ctl, c * CHUNK, fw.pattern(83, 4096)) is None
    overflow_reported_once(ctl)
    assert read(ctl, 9 * CHUNK, 8) == fw.pattern(83, 4096)
    assert answer(ctl, PRIMARY, INITIATE) == NOT_READY     # no new snapshot on an OFFLINE log
    assert_no_fault(ctl)
    # a restart cannot report it again: the log that would remember it is OFFLINE
    ctl = fw.reboot(ctl)
    assert state(ctl) == "IDLE" and answer(ctl, BACKUP, TUR) == NOT_READY


def test_an_offline_log_drive_is_a_log_overflow():
    log_offline_is_an_overflow(False)


def test_an_offline_write_back_log_drive_is_a_log_overflow():
    log_offline_is_an_overflow(True)


def test_a_log_drive_failing_under_a_backup_read_reports_the_overflow_on_that_read():
    ctl = fw.boot()
    snapshot_with_copies(ctl)
    break_files(ctl, LOG_SLOTS)
    assert answer(ctl, BACKUP, fw.read10(CHUNK, 8)) == OVERFLOW      # chunk 1 is on the log
    assert state(ctl) == "IDLE" and answer(ctl, BACKUP, TUR) == NOT_READY
    assert_no_fault(ctl)


def test_a_log_drive_failing_under_the_copy_on_write_ends_the_snapshot_primary_write_done():
    ctl = fw.boot()
    snapshot_with_copies(ctl)
    break_files(ctl, LOG_SLOTS)
    data = fw.pattern(84, 4096)
    assert write(ctl, 6 * CHUNK, data) is None
    assert read(ctl, 6 * CHUNK, 8) == data
    overflow_reported_once(ctl)
    assert_no_fault(ctl)


def test_a_write_back_log_failing_under_the_cache_never_fails_a_primary_write():
    # the log's disks fail while its lines sit in the cache: the destage that finds them gone runs
    # inside some other write, which must still complete (GOOD); the snapshot then ends as an
    # overflow at the next command
    ctl = fw.boot()
    ctl.command("sd_policy", {"sd": 1, "wb": True})
    ctl.command("sd_policy", {"sd": 0, "wb": True})
    snapshot_with_copies(ctl)
    break_files(ctl, LOG_SLOTS)
    for c in range(8, 8 + 4 * ctl.cache.max_lines):
        assert write(ctl, c * CHUNK, fw.pattern(88, 4096)) is None, c
    overflow_reported_once(ctl)
    for c in range(8, 8 + 4 * ctl.cache.max_lines):
        assert read(ctl, c * CHUNK, 8) == fw.pattern(88, 4096)
    assert_no_fault(ctl)


def test_a_log_drive_failing_unnoticed_is_found_by_the_next_backup_command():
    # a disk taken out by an I/O error below the snapshot engine (here: a primary read that is
    # served from the primary only) is seen at the backup LUN's next command
    ctl = fw.boot()
    snapshot_with_copies(ctl)
    break_files(ctl, LOG_SLOTS)
    for s in LOG_SLOTS:
        try:
            ctl.iop.read(s, 0, memoryview(bytearray(512)))
        except Exception:
            pass
    assert answer(ctl, BACKUP, TUR) == OVERFLOW
    assert state(ctl) == "IDLE" and answer(ctl, BACKUP, TUR) == NOT_READY
    assert_no_fault(ctl)


def test_a_log_drive_failing_during_initiate_starts_no_snapshot():
    ctl = fw.boot()
    break_files(ctl, LOG_SLOTS)
    assert answer(ctl, PRIMARY, INITIATE) == NOT_READY
    assert state(ctl) == "IDLE" and answer(ctl, BACKUP, TUR) == NOT_READY
    assert write(ctl, 0, fw.pattern(85, 512)) is None
    assert_no_fault(ctl)
    try:
        ctl.command("snapshot_start", {"sd": 0})
        assert False, "started"
    except Exception as e:
        assert e.code == "NOT_READY", e.code


def test_a_log_drive_failing_during_terminate_still_ends_the_snapshot():
    ctl = fw.boot()
    snapshot_with_copies(ctl)
    break_files(ctl, LOG_SLOTS)
    assert answer(ctl, PRIMARY, TERMINATE) is None
    assert state(ctl) == "IDLE" and answer(ctl, BACKUP, TUR) == NOT_READY
    assert any("LOG HEADER WRITE FAILED" in t for t in texts(ctl)), texts(ctl)
    assert_no_fault(ctl)


def test_an_offline_primary_ends_the_snapshot_as_an_overflow():
    ctl = fw.boot()
    snapshot_with_copies(ctl)
    fail(ctl, PRIMARY_SLOTS[:2])
    assert any("PRIMARY SD0 OFFLINE: SNAPSHOT TERMINATED" in t for t in texts(ctl)), texts(ctl)
    assert answer(ctl, PRIMARY, fw.read10(0, 1)) == NOT_READY
    ctl = fw.reboot(ctl)                          # the log remembers it: reported after a restart
    overflow_reported_once(ctl, probe=fw.read10(0, 1))
    assert_no_fault(ctl)


def test_a_primary_failing_under_a_backup_read_reports_the_overflow_on_that_read():
    ctl = fw.boot()
    snapshot_with_copies(ctl)
    break_files(ctl, PRIMARY_SLOTS[:2])
    assert answer(ctl, BACKUP, fw.read10(0, 8)) == OVERFLOW          # chunk 0 is on the primary
    assert state(ctl) == "IDLE"
    assert_no_fault(ctl)


def test_a_primary_failing_under_the_copy_on_write_answers_not_ready():
    ctl = fw.boot()
    snapshot_with_copies(ctl)
    break_files(ctl, PRIMARY_SLOTS[:2])
    assert write(ctl, 8 * CHUNK, fw.pattern(86, 4 * CHUNK * 512)) == NOT_READY     # every member
    overflow_reported_once(ctl)
    assert_no_fault(ctl)


def test_a_log_drive_failing_while_its_index_is_read_at_boot_is_an_overflow():
    from hw import iop
    ctl = fw.boot()
    snapshot_with_copies(ctl)
    real = iop.IOP.read

    def eio_on_index(self, slot, lba, mv):
        # the header (one block) reads; the index records (a longer read) hit EIO
        if slot in LOG_SLOTS and len(mv) > 512:
            raise self._io_failed(slot, OSError(5))
        real(self, slot, lba, mv)
    iop.IOP.read = eio_on_index
    try:
        ctl = fw.reboot(ctl)
    finally:
        iop.IOP.read = real
    assert any("LOG SD1 UNREADABLE" in t for t in texts(ctl)), texts(ctl)
    overflow_reported_once(ctl)
    assert read(ctl, 0, 8) == fw.pattern(70, 4096)
