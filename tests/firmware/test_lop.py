# Long operations through the SCSI core (Tables 5-10, FIG. 8, claim 22) and the command table:
# every field rule and every status word from a real situation, copy under concurrent writes,
# incremental re-sync (counted), rebuild, initialization, consistency check, Table 2 rows with the
# real operations, and restarts in the middle of each.
import hashlib
import json
import time
import fw
from lop import ops
from lop import scheduler
from scsi import vendor
from storage import raid

PRIMARY, BACKUP, DEST = 0, 1, 2
INITIATE = fw.cdb(0x20, 0, 0x60, 0, 0, 0, 0, 0, 0, 0)
TERMINATE = fw.cdb(0x20, 0, 0x61, 0, 0, 0, 0, 0, 0, 0)
OP = vendor.COPY_OPCODE
INCOMPLETE = (0x02, 0x04, 0x80)    # not ready: a half-made copy (scsi/README.md)
TRACK_BLOCKS = 128                 # tracker chunk of a 12 MiB primary: 64 KiB
THREAD = [False]                   # boot with the I/O processor's thread (test_lop_chained.py)


def start(src=1, dst=2, alloc=2, b1=0, b6=0, ctrl=0, opcode=OP):
    return fw.cdb(0x20, b1, 0x44, opcode, src, dst, b6, alloc >> 8, alloc & 0xFF, ctrl)


def status(alloc=2, b1=0, b4=0, b5=0, b6=0, ctrl=0, opcode=OP):
    return fw.cdb(0x20, b1, 0x43, opcode, b4, b5, b6, alloc >> 8, alloc & 0xFF, ctrl)


def word(ctl, c, lun=PRIMARY):
    st, sn, d = fw.run(ctl, lun, c)
    assert st == 0 and sn is None and len(d) == 2, (st, sn, d)
    return (d[0] << 8) | d[1]


def setup(dst_raid=0, dst_slots=(6, 7, 8)):
    # 4 MiB disks: SD0 RAID 5 (12 MiB, primary, LUN 0), SD1 RAID 1 LOG (LUN 1), SD2 the backup
    # system drive (LUN 2), slot 9 an unused disk
    ctl = fw.boot(b=fw.small_board(disk_mb=4, slots=10))
    if THREAD[0]:
        ctl.io_thread()
    if dst_raid is not None:
        ctl.command("sd_create", {"raid": dst_raid, "slots": list(dst_slots)})
        ctl.command("lun_map", {"port": 0, "lun": DEST, "sd": 2})
    return ctl


def write(ctl, lba, data, lun=PRIMARY):
    st, sn, _ = fw.run(ctl, lun, fw.write10(lba, len(data) >> 9), data)
    assert st == 0, (st, sn)


def digest(ctl, lun, blocks):
    h = hashlib.sha1()
    lba = 0
    while lba < blocks:
        n = min(2048, blocks - lba)
        st, sn, d = fw.run(ctl, lun, fw.read10(lba, n))
        assert st == 0, (lun, lba, st, sn)
        h.update(d)
        lba += n
    return h.digest()


def fill(ctl, seed, chunks=None, lun=PRIMARY):
    # write a pattern into whole tracker chunks (all of the primary when chunks is None)
    blocks = ctl.drives[0].blocks
    if chunks is None:
        chunks = range(0, blocks // TRACK_BLOCKS, 16)
        step = 16
    else:
        step = 1
    for c in chunks:
        write(ctl, c * TRACK_BLOCKS, fw.pattern(seed * 1000 + c, step * TRACK_BLOCKS * 512), lun)


def refusal(ctl, name, args):
    # the CmdError code of a command that must be refused
    from control.errors import CmdError
    try:
        r = ctl.command(name, args)
    except CmdError as e:
        assert e.message, e.code
        return e.code
    raise AssertionError("%s %r was not refused: %r" % (name, args, r))


def test_start_and_status_field_rules():
    ctl = setup()
    ill = (0x05, 0x24, 0x00)
    for c in (start(b1=0x01), start(b1=0x10), start(b6=1), start(ctrl=0x80), start(opcode=0x7F),
              status(b1=0x02), status(b4=1), status(b5=1), status(b6=1), status(ctrl=1), status(opcode=0)):
        st, sn, d = fw.run(ctl, PRIMARY, c)
        assert st == 2 and fw.sense3(sn) == ill and d == b"", (c, st, sn)
    assert sn[15] == 0                     # "invalid field in CDB" exactly, no field pointer
    # the LUN field (byte 1 bits 7-5) is ignored, whatever LUN the command was addressed to
    assert word(ctl, status(b1=0xE0)) == 0x0105
    assert word(ctl, status(), lun=BACKUP) == 0x0105
    # allocation length: 0 is no data and not an error; 1 truncates; more than 2 gives 2
    for alloc, n in ((0, 0), (1, 1), (2, 2), (0x0100, 2), (0xFFFF, 2)):
        st, sn, d = fw.run(ctl, PRIMARY, status(alloc))
        assert st == 0 and sn is None and bytes(d) == b"\x01\x05"[:n], (alloc, d)
    st, sn, d = fw.run(ctl, PRIMARY, start(dst=9, alloc=1))
    assert st == 0 and bytes(d) == b"\x01"
    st, sn, d = fw.run(ctl, PRIMARY, start(alloc=0))   # a real start with no data returned
    assert st == 0 and d == b""


def test_table7_every_word():
    ctl = setup()
    # 0x0002: no snapshot, so the log drive has no image to copy
    assert word(ctl, start(1, 2)) == 0x0002
    fw.run(ctl, PRIMARY, INITIATE)
    # 0x0105: undefined drive numbers, beyond 7, the log or the primary as destination, source
    # neither the log nor the primary, destination smaller than the primary
    ctl.command("sd_create", {"raid": 7, "slots": [9], "mb": 2})
    small = 3
    for s, d in ((1, 7), (1, 8), (0xFF, 2), (1, 1), (1, 0), (small, 2), (1, small), (0, 0), (2, 2)):
        assert word(ctl, start(s, d)) == 0x0105, (s, d)
    # 0x0002: the destination is OFFLINE (a RAID 0 member failed)
    ctl.iop.fail(6)
    assert word(ctl, start(1, 2)) == 0x0002
    ctl.iop.set_online(6)
    # 0x0000: started, with the log drive as source (the seed's wording)
    assert word(ctl, start(1, 2)) == 0x0000
    # 0x0106: a copy is already in progress (whatever the drives)
    assert word(ctl, start(1, 2)) == 0x0106
    assert word(ctl, start(0, small)) == 0x0106
    scheduler.finish_all(ctl.lop_mgr)
    assert word(ctl, status()) == 0x0100


def test_table10_in_progress_completed_and_busy_destination():
    ctl = setup()
    assert word(ctl, status()) == 0x0105             # no copy yet
    fill(ctl, 1)
    image = digest(ctl, PRIMARY, ctl.drives[0].blocks)
    fw.run(ctl, PRIMARY, INITIATE)
    assert word(ctl, start(0, 2)) == 0x0000          # the primary named as source works too
    ctl.lop_mgr.step()
    assert word(ctl, status()) == 0x0000
    # FIG. 8 step 4: backup system drive LUNs answer BUSY, the log's LUN is the read-only image
    for c in (fw.read10(0, 1), fw.cdb(0, 0, 0, 0, 0, 0), fw.write10(0, 1)):
        st, sn, d = fw.run(ctl, DEST, c, bytes(512) if c[0] == 0x2A else None)
        assert st == 0x08 and sn is None, (c, st)
    assert digest(ctl, BACKUP, ctl.drives[0].blocks) == image
    st, sn, _ = fw.run(ctl, BACKUP, fw.write10(0, 1), bytes(512))
    assert st == 2 and fw.sense3(sn)[0] == 0x07
    info = ctl.command("lop_status", {})["lops"][0]
    assert info["state"] == "RUNNING" and 0 < info["percent"] < 100 and info["op"] == "copy"
    scheduler.finish_all(ctl.lop_mgr)
    # step 5: the backup system drive answers normally with the initiate image; snapshot ended
    assert word(ctl, status()) == 0x0100
    assert digest(ctl, DEST, ctl.drives[0].blocks) == image
    assert ctl.engine.state == 0
    out = ctl.command("snapshot_status", {})["last"]
    assert out["how"] == "copied" and out["reason"] == "copied to SD2" and out["primary"] == 0
    st, sn, _ = fw.run(ctl, BACKUP, fw.read10(0, 1))
    assert st == 2 and fw.sense3(sn) == (0x02, 0x04, 0x03)
    write(ctl, 5, fw.pattern(9, 512), DEST)
    texts = [e["text"] for e in ctl.events.recent(20)]
    assert any("COPY SD0 -> SD2 STARTED" in t for t in texts)
    assert any("COPY SD0 -> SD2 COMPLETED" in t for t in texts)


def test_table10_terminated_by_command_and_by_snapshot_terminate():
    ctl = setup()
    fw.run(ctl, PRIMARY, INITIATE)
    word(ctl, start())
    ctl.lop_mgr.step()
    r = ctl.command("lop_stop", {"sd": 2})
    assert r["state"] == "TERMINATED"
    assert word(ctl, status()) == 0x0107
    st, sn, _ = fw.run(ctl, DEST, fw.read10(0, 1))
    assert st == 2 and fw.sense3(sn) == INCOMPLETE   # no longer busy, never a backup
    assert ctl.engine.state == 1                     # the snapshot itself goes on
    # the snapshot terminate direct command during a copy ends the copy the same way
    assert word(ctl, start()) == 0
    ctl.lop_mgr.step()
    assert fw.run(ctl, PRIMARY, TERMINATE)[0] == 0
    ctl.lop_mgr.step()
    assert word(ctl, status()) == 0x0107
    assert ctl.command("lop_status", {})["lops"][0]["state"] == "TERMINATED"


def test_table10_not_ready_when_the_destination_fails():
    ctl = setup()
    fw.run(ctl, PRIMARY, INITIATE)
    word(ctl, start())
    ctl.lop_mgr.step()
    ctl.iop.fail(7)                                  # RAID 0 destination: OFFLINE
    scheduler.finish_all(ctl.lop_mgr)
    assert word(ctl, status()) == 0x0002
    assert ctl.command("lop_status", {})["lops"][0]["state"] == "FAILED"
    assert any(e["level"] == "error" and "COPY" in e["text"] for e in ctl.events.recent(10))


def test_table10_not_ready_when_the_log_overflows_during_the_copy():
    ctl = setup()
    fw.run(ctl, PRIMARY, INITIATE)
    word(ctl, start())
    ctl.lop_mgr.step()
    for c in range(100):                             # more chunks than the 4 MiB log holds
        write(ctl, c * TRACK_BLOCKS, fw.pattern(c, 512))
    ctl.lop_mgr.step()
    assert word(ctl, status()) == 0x0002
    assert "overflow" in ctl.command("lop_status", {})["lops"][0]["detail"]


def test_table10_irrecoverable_data_errors_when_the_source_is_lost():
    ctl = setup()
    fill(ctl, 2)
    fw.run(ctl, PRIMARY, INITIATE)
    word(ctl, start())
    ctl.lop_mgr.step()
    ctl.iop.fail(1)
    ctl.lop_mgr.step()                                    # degraded reads still reconstruct
    assert word(ctl, status()) == 0x0000
    ctl.iop.fail(2)                                  # beyond RAID 5 redundancy
    scheduler.finish_all(ctl.lop_mgr)
    assert word(ctl, status()) == 0x0001
    assert "unreadable" in ctl.command("lop_status", {})["lops"][0]["detail"]


def test_copy_under_concurrent_primary_writes_ends_equal_to_the_initiate_image():
    ctl = setup()
    fill(ctl, 3)
    blocks = ctl.drives[0].blocks
    image = digest(ctl, PRIMARY, blocks)
    fw.run(ctl, PRIMARY, INITIATE)
    assert word(ctl, start()) == 0
    i = 0
    while ctl.lop_mgr.step():
        # writes land ahead of, on and behind the copy position
        for lba in ((i * 997) % (40 * TRACK_BLOCKS), blocks - 8 - (i * 131) % (16 * TRACK_BLOCKS)):
            write(ctl, lba - lba % 8, fw.pattern(100 + i, 4096))
        i += 1
    assert i > 10
    assert word(ctl, status()) == 0x0100
    assert digest(ctl, DEST, blocks) == image
    assert digest(ctl, PRIMARY, blocks) != image


def test_incremental_copy_moves_exactly_the_changed_chunks_and_ends_equal():
    ctl = setup()
    fill(ctl, 4)
    blocks = ctl.drives[0].blocks
    fw.run(ctl, PRIMARY, INITIATE)
    word(ctl, start())
    write(ctl, 3 * TRACK_BLOCKS, fw.pattern(5, 512))     # during the first copy: after its image
    scheduler.finish_all(ctl.lop_mgr)
    first = ctl.command("lop_status", {})["lops"][0]
    assert first["mode"] == "full" and first["chunks_copied"] == blocks // TRACK_BLOCKS
    # after the snapshot ended: a known set of chunks changes (chunk 3 changed during the copy)
    changed = [0, 7, 8, 40, 95]
    for c in changed:
        write(ctl, c * TRACK_BLOCKS + 17, fw.pattern(200 + c, 1024))
    # a write to the backup drive itself makes its chunk stale too
    write(ctl, 60 * TRACK_BLOCKS, fw.pattern(6, 512), DEST)
    image = digest(ctl, PRIMARY, blocks)
    fw.run(ctl, PRIMARY, INITIATE)
    write(ctl, 50 * TRACK_BLOCKS, fw.pattern(7, 512))    # after the new point in time: not copied
    assert word(ctl, start()) == 0
    scheduler.finish_all(ctl.lop_mgr)
    r = ctl.command("lop_status", {})["lops"][0]
    assert r["mode"] == "incremental" and r["state"] == "COMPLETED"
    assert r["chunks"] == len(changed) + 2 and r["chunks_copied"] == len(changed) + 2, r
    assert r["blocks_copied"] == (len(changed) + 2) * TRACK_BLOCKS
    assert digest(ctl, DEST, blocks) == image
    # and once more with nothing changed but the write after the last point in time
    image = digest(ctl, PRIMARY, blocks)
    fw.run(ctl, PRIMARY, INITIATE)
    word(ctl, start())
    scheduler.finish_all(ctl.lop_mgr)
    r = ctl.command("lop_status", {})["lops"][0]
    assert r["chunks_copied"] == 1 and digest(ctl, DEST, blocks) == image


def test_incremental_tracking_survives_a_restart():
    ctl = setup()
    fill(ctl, 8)
    blocks = ctl.drives[0].blocks
    fw.run(ctl, PRIMARY, INITIATE)
    word(ctl, start())
    scheduler.finish_all(ctl.lop_mgr)
    for c in (2, 30, 31):
        write(ctl, c * TRACK_BLOCKS, fw.pattern(300 + c, 512))
    ctl = fw.reboot(ctl)
    write(ctl, 90 * TRACK_BLOCKS, fw.pattern(9, 512))
    image = digest(ctl, PRIMARY, blocks)
    fw.run(ctl, PRIMARY, INITIATE)
    assert word(ctl, start()) == 0
    scheduler.finish_all(ctl.lop_mgr)
    r = ctl.command("lop_status", {})["lops"][0]
    assert r["mode"] == "incremental" and r["chunks_copied"] == 4, r
    assert digest(ctl, DEST, blocks) == image
    # a torn tracking file forgets the pair: the next copy is full, never a wrong incremental one
    with open(ctl.state_dir + "/lop.track", "r+b") as f:
        f.seek(20)
        f.write(b"\xAA")
    ctl = fw.reboot(ctl)
    assert any("CHANGE TRACKING RESET" in e["text"] for e in ctl.events.recent(20))
    fw.run(ctl, PRIMARY, INITIATE)
    word(ctl, start())
    scheduler.finish_all(ctl.lop_mgr)
    assert ctl.command("lop_status", {})["lops"][0]["mode"] == "full"


def test_a_changed_drive_drops_tracking_so_the_next_copy_is_full():
    ctl = setup()
    fw.run(ctl, PRIMARY, INITIATE)
    word(ctl, start())
    scheduler.finish_all(ctl.lop_mgr)
    ctl.lop_mgr.drive_changed(5)                        # not part of the pair: nothing happens
    assert ctl.command("lop_status", {})["tracking"]["backup"] == 2
    ctl.lop_mgr.drive_changed(2)
    assert ctl.command("lop_status", {})["tracking"] is None
    fw.run(ctl, PRIMARY, INITIATE)
    word(ctl, start())
    scheduler.finish_all(ctl.lop_mgr)
    assert ctl.command("lop_status", {})["lops"][0]["mode"] == "full"


def test_restart_mid_copy_resumes_and_ends_with_the_image():
    ctl = setup()
    fill(ctl, 10)
    blocks = ctl.drives[0].blocks
    image = digest(ctl, PRIMARY, blocks)
    fw.run(ctl, PRIMARY, INITIATE)
    word(ctl, start())
    for i in range(20):
        ctl.lop_mgr.step()
        write(ctl, (i * 509) % (blocks - 8), fw.pattern(400 + i, 4096))
    ctl.lop_mgr.save()
    ctl = fw.reboot(ctl)
    assert word(ctl, status()) == 0x0000
    assert fw.run(ctl, DEST, fw.read10(0, 1))[0] == 0x08
    assert any("RESUMED" in e["text"] for e in ctl.events.recent(20))
    scheduler.finish_all(ctl.lop_mgr)
    assert word(ctl, status()) == 0x0100
    assert digest(ctl, DEST, blocks) == image


def dest_answers(ctl):
    # (status, sense key/ASC/ASCQ) of TEST UNIT READY and READ(10) on the destination's LUN
    return [(st, fw.sense3(sn) if sn else None)
            for st, sn, _ in (fw.run(ctl, DEST, c) for c in (fw.cdb(0, 0, 0, 0, 0, 0), fw.read10(0, 1)))]


def test_a_stopped_copy_leaves_its_destination_not_ready_until_a_copy_completes():
    ctl = setup()
    fw.run(ctl, PRIMARY, INITIATE)
    assert not ctl.command("sd_list", {})["drives"][2]["incomplete"]
    word(ctl, start())
    # marked in lop.state before the first block moves: a kill here already finds the mark
    assert ctl.command("sd_list", {})["drives"][2]["incomplete"]
    ctl.lop_mgr.step()
    ctl.command("lop_stop", {"sd": 2})
    assert dest_answers(ctl) == [(2, INCOMPLETE)] * 2
    st, sn, _ = fw.run(ctl, DEST, fw.write10(0, 1), bytes(512))
    assert st == 2 and fw.sense3(sn) == INCOMPLETE
    assert [d["incomplete"] for d in ctl.command("status", {})["drives"]] == [False, False, True]
    ctl = fw.reboot(ctl)
    assert dest_answers(ctl) == [(2, INCOMPLETE)] * 2
    assert word(ctl, start()) == 0                  # a copy onto it again is allowed
    scheduler.finish_all(ctl.lop_mgr)
    assert word(ctl, status()) == 0x0100
    assert dest_answers(ctl) == [(0, None)] * 2
    assert not ctl.command("sd_list", {})["drives"][2]["incomplete"]
    ctl = fw.reboot(ctl)
    assert dest_answers(ctl) == [(0, None)] * 2


def test_the_operator_clears_the_incomplete_mark_and_a_redefined_drive_has_none():
    ctl = setup()
    fw.run(ctl, PRIMARY, INITIATE)
    word(ctl, start())
    ctl.lop_mgr.step()
    assert refusal(ctl, "lop_clear", {"sd": 2}) == "COPY_ACTIVE"       # the copy still writes it
    ctl.command("lop_stop", {"sd": 2})
    assert refusal(ctl, "lop_clear", {"sd": 0}) == "NOT_INCOMPLETE"
    for bad in ({}, {"sd": 8}, {"sd": "2"}, {"sd": -1}):
        assert refusal(ctl, "lop_clear", bad) == "BAD_ARGUMENT"
    assert ctl.command("lop_clear", {"sd": 2}) == {"sd": 2, "incomplete": False}
    assert dest_answers(ctl) == [(0, None)] * 2
    assert any("SD2: INCOMPLETE COPY MARK CLEARED" in e["text"] for e in ctl.events.recent(5))
    ctl = fw.reboot(ctl)
    assert dest_answers(ctl) == [(0, None)] * 2
    # a drive deleted and made again holds nothing of the old copy
    word(ctl, start())
    ctl.lop_mgr.step()
    ctl.command("lop_stop", {"sd": 2})
    ctl.command("lun_unmap", {"port": 0, "lun": DEST})
    ctl.command("sd_delete", {"sd": 2})
    ctl.command("sd_create", {"raid": 0, "slots": [6, 7, 8]})
    ctl.command("lun_map", {"port": 0, "lun": DEST, "sd": 2})
    assert dest_answers(ctl) == [(0, None)] * 2


def test_a_drive_that_becomes_the_log_drive_loses_its_incomplete_mark():
    ctl = setup()
    fw.run(ctl, PRIMARY, INITIATE)
    word(ctl, start())
    ctl.lop_mgr.step()
    fw.run(ctl, PRIMARY, TERMINATE)
    ctl.lop_mgr.step()
    assert ctl.command("sd_list", {})["drives"][2]["incomplete"]
    for port, lun in ((0, DEST), (0, BACKUP), (1, BACKUP)):
        ctl.command("lun_unmap", {"port": port, "lun": lun})
    ctl.command("log_clear", {"sd": 1})
    ctl.command("log_set", {"sd": 2})
    assert not ctl.command("sd_list", {})["drives"][2]["incomplete"]
    assert "incomplete\": []" in open(ctl.state_dir + "/lop.state").read()


def test_a_copy_is_found_by_every_drive_it_involves():
    # started through the log drive (SD1) onto SD2: the primary SD0 names it too
    for sd in (0, 1, 2):
        ctl = setup()
        fw.run(ctl, PRIMARY, INITIATE)
        word(ctl, start(1, 2))
        assert [o["op"] for o in ctl.command("lop_status", {"sd": sd})["lops"]] == ["copy"]
        r = ctl.command("lop_stop", {"sd": sd})
        assert r["state"] == "TERMINATED" and r["source"] == 1 and r["to"] == 2
    assert refusal(ctl, "lop_stop", {"sd": 3}) == "NO_OPERATION"


def test_restart_after_the_snapshot_is_lost_reports_not_ready_never_completed():
    ctl = setup()
    fw.run(ctl, PRIMARY, INITIATE)
    word(ctl, start())
    ctl.lop_mgr.step()
    ctl.lop_mgr.save()
    # the log header says no snapshot (as after an overflow reported before the kill)
    ctl.engine.state = 0
    ctl.engine._write_header()
    ctl = fw.reboot(ctl)
    assert word(ctl, status()) == 0x0002
    r = ctl.command("lop_status", {})["lops"][0]
    assert r["state"] == "TERMINATED" and "not resumed" in r["detail"]
    st, sn, _ = fw.run(ctl, DEST, fw.read10(0, 1))
    assert st == 2 and fw.sense3(sn) == INCOMPLETE


def _expected(ctl, blocks):
    return digest(ctl, PRIMARY, blocks)


def test_rebuild_after_replacement_restores_redundancy():
    ctl = setup(dst_raid=None)
    fill(ctl, 11)
    blocks = ctl.drives[0].blocks
    ctl.command("disk_fail", {"slot": 1})
    ctl.command("params_set", {"auto_rebuild": False})
    assert ctl.command("disk_replace", {"slot": 1})["rebuild"] == []
    assert ctl.drives[0].status() == raid.CRITICAL and not ctl.lops.ops
    r = ctl.command("lop_start", {"op": "rebuild", "sd": 0})
    assert r["state"] == "RUNNING"
    n = 0
    while ctl.lop_mgr.step():
        if n % 5 == 0:
            write(ctl, (n * 613) % (blocks - 16), fw.pattern(500 + n, 8192))   # host I/O carries on
        n += 1
    expect = _expected(ctl, blocks)
    assert ctl.iop.state(1) == "online" and ctl.drives[0].status() == raid.ONLINE
    st = ctl.command("lop_status", {"sd": 0})["lops"][0]
    assert st["state"] == "COMPLETED" and st["percent"] == 100
    # redundancy is real: lose a different member and everything reads back the same
    ctl.command("disk_fail", {"slot": 3})
    assert digest(ctl, PRIMARY, blocks) == expect
    ctl.command("disk_fail", {"slot": 2})
    st, sn, _ = fw.run(ctl, PRIMARY, fw.read10(0, 1))
    assert st == 2                       # and then it is gone, never wrong data


def test_rebuild_onto_a_standby_disk_and_after_a_restart():
    ctl = setup(dst_raid=None)
    fill(ctl, 12)
    blocks = ctl.drives[0].blocks
    expect = _expected(ctl, blocks)
    ctl.command("disk_fail", {"slot": 2})
    ctl.command("lop_start", {"op": "rebuild", "sd": 0, "standby": 9})
    assert [m["slot"] for m in ctl.command("sd_list")["drives"][0]["members"]] == [0, 1, 9, 3]
    for i in range(10):
        ctl.lop_mgr.step()
    ctl.lop_mgr.save()
    ctl = fw.reboot(ctl)
    assert ctl.lops.running(ops.REBUILD, 0) is not None
    scheduler.finish_all(ctl.lop_mgr)
    assert ctl.iop.state(9) == "online"
    ctl.command("disk_fail", {"slot": 0})
    assert digest(ctl, PRIMARY, blocks) == expect


def test_rebuild_refusals():
    ctl = setup(dst_raid=None)
    for args, code in (({"op": "rebuild", "sd": 0}, "NOTHING_TO_REBUILD"),
                       ({"op": "rebuild", "sd": 5}, "NO_SUCH_DRIVE"),
                       ({"op": "rebuild", "sd": 0, "standby": 4}, "DISK_IN_USE"),
                       ({"op": "rebuild", "sd": 0, "standby": 9}, "NOTHING_TO_REBUILD"),
                       ({"op": "rebuild", "sd": 0, "standby": 99}, "NO_SUCH_SLOT")):
        assert refusal(ctl, "lop_start", args) == code, args


def test_consistency_check_finds_a_corrupted_parity_block_and_fixes_it():
    ctl = setup(dst_raid=None)
    fill(ctl, 13)
    d = ctl.drives[0]
    row = 7
    pm = d._pm(row)
    junk = fw.pattern(14, 512)
    ctl.iop.write(d.slots[pm], d.starts[pm] + row * d.unit + 3, junk)
    ctl.command("lop_start", {"op": "check", "sd": 0})
    scheduler.finish_all(ctl.lop_mgr)
    r = ctl.command("lop_status", {"sd": 0})["lops"][0]
    assert r["found"] == 1 and r["unit"] == "rows" and r["state"] == "COMPLETED"
    assert any(e["level"] == "warn" and "1 inconsistent rows" in e["text"] for e in ctl.events.recent(5))
    ctl.command("lop_start", {"op": "check", "sd": 0, "fix": True})
    scheduler.finish_all(ctl.lop_mgr)
    assert ctl.command("lop_status", {"sd": 0})["lops"][0]["found"] == 1
    ctl.command("lop_start", {"op": "check", "sd": 0})
    scheduler.finish_all(ctl.lop_mgr)
    assert ctl.command("lop_status", {"sd": 0})["lops"][0]["found"] == 0
    # the mirrored log drive: one sector differs
    ctl.iop.write(5, 1000, junk)
    ctl.command("lop_start", {"op": "check", "sd": 1})
    scheduler.finish_all(ctl.lop_mgr)
    r = ctl.command("lop_status", {"sd": 1})["lops"][0]
    assert r["found"] == 1 and r["unit"] == "sectors"


def test_check_of_a_critical_drive_is_refused_and_a_member_lost_midway_fails_it():
    ctl = setup(dst_raid=None)
    ctl.iop.fail(0)
    assert refusal(ctl, "lop_start", {"op": "check", "sd": 0}) == "NOT_READY"
    ctl.iop.set_online(0)
    ctl.command("lop_start", {"op": "check", "sd": 0})
    ctl.lop_mgr.step()
    ctl.iop.fail(0)
    scheduler.finish_all(ctl.lop_mgr)
    assert ctl.command("lop_status", {"sd": 0})["lops"][0]["state"] == "FAILED"


def test_initialization_zeroes_and_guards_host_io_ahead_of_it():
    ctl = setup()
    fill(ctl, 15, lun=DEST)
    blocks = ctl.drives[2].blocks
    ctl.command("lop_start", {"op": "init", "sd": 2})
    # ahead of the zeroing, reads and writes: not ready, format in progress (never the old data)
    for c, data in ((fw.write10(blocks - 8, 1), bytes(512)), (fw.read10(blocks - 8, 1), None)):
        st, sn, _ = fw.run(ctl, DEST, c, data)
        assert st == 2 and fw.sense3(sn) == (0x02, 0x04, 0x04), c
    for i in range(4):
        ctl.lop_mgr.step()
    write(ctl, 0, fw.pattern(16, 512), DEST)                      # behind the zeroing: accepted
    st, sn, got = fw.run(ctl, DEST, fw.read10(0, 1))
    assert st == 0 and got == fw.pattern(16, 512)
    scheduler.finish_all(ctl.lop_mgr)
    lba = 0
    while lba < blocks:
        st, sn, got = fw.run(ctl, DEST, fw.read10(lba, 2048))
        if lba == 0:
            assert got[:512] == fw.pattern(16, 512)
            got = got[512:]
        assert got == bytes(len(got)), lba
        lba += 2048
    assert ctl.command("lop_status", {"sd": 2})["lops"][0]["state"] == "COMPLETED"


def test_a_replaced_disk_is_rebuilt_automatically_unless_turned_off():
    ctl = setup(dst_raid=None)
    fill(ctl, 12)
    blocks = ctl.drives[0].blocks
    expect = digest(ctl, PRIMARY, blocks)
    assert ctl.command("params_get", {}) == {"auto_rebuild": True}       # the default
    ctl.command("disk_fail", {"slot": 2})
    assert ctl.command("disk_replace", {"slot": 2})["rebuild"] == [0]
    assert ctl.command("lop_status", {"sd": 0})["lops"][0]["op"] == "rebuild"
    scheduler.finish_all(ctl.lop_mgr)
    assert ctl.iop.state(2) == "online" and ctl.drives[0].status() == raid.ONLINE
    ctl.command("disk_fail", {"slot": 0})                                 # a different member
    assert digest(ctl, PRIMARY, blocks) == expect
    # off (kept in NV memory across a restart): the replaced disk waits for a rebuild by hand
    assert ctl.command("params_set", {"auto_rebuild": False}) == {"auto_rebuild": False}
    ctl = fw.reboot(ctl)
    assert ctl.command("params_get", {}) == {"auto_rebuild": False}
    assert ctl.command("disk_replace", {"slot": 0})["rebuild"] == []
    assert not ctl.lops.ops and ctl.iop.state(0) == "rebuild"
    # on, but the drive is busy with another operation: the event log says why it did not start
    ctl.command("params_set", {"auto_rebuild": True})
    ctl.command("lop_start", {"op": "rebuild", "sd": 0})
    ctl.command("disk_fail", {"slot": 3})
    ctl.command("disk_replace", {"slot": 3})
    assert any("AUTOMATIC REBUILD NOT STARTED" in e["text"] for e in ctl.events.recent(10))
    for bad in ({"auto_rebuild": 1}, {"autorebuild": True}):
        assert refusal(ctl, "params_set", bad) == "BAD_ARGUMENT"


def test_table2_rows_with_the_real_operations():
    ctl = setup(dst_raid=None)
    ctl.command("disk_fail", {"slot": 0})
    ctl.command("disk_replace", {"slot": 0})            # the rebuild starts by itself
    ctl.lop_mgr.step()
    st, sn, _ = fw.run(ctl, PRIMARY, INITIATE)
    assert st == 2 and fw.sense3(sn) == (0x09, 0x81, 0x06)
    scheduler.finish_all(ctl.lop_mgr)
    ctl.command("lop_start", {"op": "init", "sd": 0})
    ctl.lop_mgr.step()
    st, sn, _ = fw.run(ctl, PRIMARY, INITIATE)
    assert st == 2 and fw.sense3(sn) == (0x09, 0x81, 0x0C)
    scheduler.finish_all(ctl.lop_mgr)
    ctl.command("lop_start", {"op": "check", "sd": 1})          # on the log drive
    ctl.lop_mgr.step()
    st, sn, _ = fw.run(ctl, PRIMARY, INITIATE)
    assert st == 2 and fw.sense3(sn) == (0x09, 0x81, 0x0D)
    ctl.command("lop_stop", {"sd": 1})
    assert fw.run(ctl, PRIMARY, INITIATE)[0] == 0
    # and the other way round: no initialization of a drive in the active snapshot
    assert refusal(ctl, "lop_start", {"op": "init", "sd": 0}) == "SNAPSHOT_ACTIVE"


def test_command_table_bad_input_rate_and_progress():
    ctl = setup()
    bad = (({"op": "defrag", "sd": 0}, "BAD_ARGUMENT"), ({"op": "check"}, "BAD_ARGUMENT"),
           ({"op": "check", "sd": "0"}, "BAD_ARGUMENT"), ({"op": "check", "sd": 0, "rate": 0}, "BAD_ARGUMENT"),
           ({"op": "check", "sd": 0, "fix": "yes"}, "BAD_ARGUMENT"), ({"op": "copy", "sd": 1}, "BAD_ARGUMENT"),
           ({"op": "copy", "sd": 1, "to": 2}, "NO_SNAPSHOT"), ({"op": 5}, "BAD_ARGUMENT"),
           ({"op": "rate", "rate": 101}, "BAD_ARGUMENT"))
    for args, code in bad:
        assert refusal(ctl, "lop_start", args) == code, args
    for args, code in (({"sd": 0}, "NO_OPERATION"), ({"id": 77}, "NO_SUCH_OPERATION"), ({}, "BAD_ARGUMENT")):
        assert refusal(ctl, "lop_stop", args) == code, args
    assert ctl.command("lop_start", {"op": "rate", "rate": 30}) == {"rate": 30}
    # the resync op needs an earlier copy to the same drive
    assert fw.run(ctl, PRIMARY, INITIATE)[0] == 0
    assert refusal(ctl, "lop_start", {"op": "resync", "sd": 0, "to": 2}) == "NO_BASE"
    ctl.command("lop_start", {"op": "check", "sd": 0})
    ctl.lop_mgr.step()
    s = ctl.command("status")["lops"][0]
    assert s["op"] == "check" and s["rate"] == 30 and 0 < s["percent"] < 100 and s["state"] == "RUNNING"
    # a drive in use by an operation cannot be deleted
    assert refusal(ctl, "sd_delete", {"sd": 0}) in ("LOP_ACTIVE", "SNAPSHOT_ACTIVE", "LUN_IN_USE")
    r = ctl.command("lop_stop", {"id": s["id"]})
    assert r["state"] == "TERMINATED" and r["word"] == 0x0107


def test_unreadable_state_file_is_reported_not_fatal():
    ctl = setup()
    # not JSON, not text, JSON of another shape, and the right shape with nonsense inside
    for junk in (b"{not json", bytes([0xFF, 0xFE, 0x80]) * 40, b"[1, 2]", b'{"ops": 7}',
                 b'{"v": 1, "rate": "fast", "copy_word": [], "history": [3, {"op": 1}], "ops": [5, {}]}'):
        with open(ctl.state_dir + "/lop.state", "wb") as f:
            f.write(junk)
        ctl = fw.reboot(ctl)
        m = ctl.lop_mgr
        assert m.rate == 100, junk
        if junk.startswith(b'{"v"'):
            assert any("NOT RESUMED" in e["text"] for e in ctl.events.recent(10)), junk
        else:
            assert any("LONG OPERATION STATE UNREADABLE" in e["text"] for e in ctl.events.recent(10)), junk
            assert word(ctl, status()) == 0x0105


def test_initialization_of_a_raid5_with_rows_wider_than_a_buffer_slot():
    ctl = setup(dst_raid=None)
    ctl.command("sd_create", {"raid": 5, "slots": [6, 7, 8, 9], "stripe_kb": 256})
    ctl.command("lun_map", {"port": 0, "lun": DEST, "sd": 2})
    d = ops.raw(ctl.drives[2])
    assert d.row_blocks > ops.SLICE_BLOCKS
    fill(ctl, 17, lun=DEST)
    ctl.command("lop_start", {"op": "init", "sd": 2})
    scheduler.finish_all(ctl.lop_mgr)
    st, sn, got = fw.run(ctl, DEST, fw.read10(0, 2048))
    assert st == 0 and got == bytes(len(got))
    ctl.command("lop_start", {"op": "check", "sd": 2})
    scheduler.finish_all(ctl.lop_mgr)
    r = ctl.command("lop_status", {"sd": 2})["lops"][0]
    assert r["op"] == "check" and r["state"] == "COMPLETED" and r["found"] == 0


def test_scheduler_task_runs_operations_at_their_rate_and_leaves_the_loop_free():
    # the scheduler's clock and pause are driven by the test: each slice takes SLICE_US on that
    # clock and each pause is recorded (and only yields), so the rate is proved by the pauses owed
    import asyncio
    ctl = setup(dst_raid=None)
    m = ctl.lop_mgr
    SLICE_US = 700

    async def main(rate):
        clock, trace, pauses = [0], [], []     # trace: "S" a slice, "o" a turn of another task
        step = m.step

        def timed_step():
            trace.append("S")
            clock[0] += SLICE_US
            return step()

        async def pause(ms):
            pauses.append(ms)
            await asyncio.sleep_ms(0)

        async def other():
            # stands for the console and the host ports: must keep running during the operation
            while True:
                trace.append("o")
                await asyncio.sleep_ms(0)

        m.step = timed_step
        ctl.command("lop_start", {"op": "check", "sd": 0, "rate": rate})
        task = asyncio.create_task(scheduler.run(ctl.lop_mgr, lambda: clock[0], pause))
        o = asyncio.create_task(other())
        while ctl.lops.ops:
            await asyncio.sleep_ms(0)
        task.cancel()
        o.cancel()
        del m.step
        slices = trace.count("S")
        return slices, pauses[:slices], "".join(trace)

    fast, fast_pauses, fast_trace = asyncio.run(main(100))
    slow, slow_pauses, slow_trace = asyncio.run(main(20))
    assert ctl.command("lop_status", {"sd": 0})["lops"][0]["state"] == "COMPLETED"
    assert fast == slow > 1, (fast, slow)              # the rate changes the pauses, not the work
    assert sum(fast_pauses) == 0, fast_pauses          # 100 %: back to back
    # 20 %: each slice that leaves work behind owes four times its length (carried over in
    # microseconds); the last one finished the operation and owes nothing
    assert sum(slow_pauses[:-1]) == (slow - 1) * SLICE_US * 80 // 20 // 1000, (slow, slow_pauses)
    assert slow_pauses[-1] == 0, slow_pauses
    assert "SS" not in fast_trace and "SS" not in slow_trace   # the loop ran between any two slices


def test_history_entries_keep_their_times_and_older_entries_without_them_load():
    ctl = fw.boot()
    before = time.time()
    ctl.command("lop_start", {"op": "check", "sd": 0})
    scheduler.finish_all(ctl.lop_mgr)
    h = ctl.command("lop_status", {})["lops"][0]
    assert h["state"] == "COMPLETED" and before - 1 <= h["started"] <= h["finished"] <= time.time() + 1, h
    ctl = fw.reboot(ctl)                       # the times survive a restart
    assert ctl.command("lop_status", {})["lops"][0]["finished"] == h["finished"]
    # a state file from before history entries had times: kept as it is, nothing invented
    with open(ctl.state_dir + "/lop.state", "w") as f:
        f.write(json.dumps({"v": 1, "rate": 100, "copy_word": 0xFFFF, "history": [
            {"op": "check", "sd": 0, "state": "COMPLETED", "percent": 100}], "ops": []}))
    ctl = fw.reboot(ctl)
    old = ctl.command("lop_status", {})["lops"][0]
    assert old["state"] == "COMPLETED" and "finished" not in old and "started" not in old, old


SLICE_BYTES = ops.SLICE_BLOCKS * 512


def test_a_copy_whose_snapshot_ends_under_a_slice_s_read_writes_nothing_of_it():
    # a follower of a pair hears of the end in the middle of its read of the image (control/
    # pair.md): what its buffer holds then is not the image, and the copy fails without writing it
    from snapshot.engine import OVERFLOWED, Ended
    ctl = setup()
    fill(ctl, 5)
    fw.run(ctl, PRIMARY, INITIATE)
    eng = ctl.engine

    def ended_during_the_read(lba, mv):
        eng.follow_end(OVERFLOWED)        # what a follower's read does when the end is in its memory
        raise Ended()
    eng.read_backup = ended_during_the_read
    for _ in range(ctl.buffer.slots):    # whatever the buffer held before
        b = ctl.buffer.take()
        v = ctl.buffer.view(b)
        v[:] = b"\xee" * len(v)
    for b in range(ctl.buffer.slots):
        ctl.buffer.give(b)
    word(ctl, start())
    scheduler.finish_all(ctl.lop_mgr)
    assert word(ctl, status()) == 0x0002
    assert "overflow" in ctl.command("lop_status", {})["lops"][0]["detail"]
    d = bytearray(SLICE_BYTES)
    ctl.drives[2].read(0, memoryview(d))                   # (its LUN is not ready after a failed copy)
    assert b"\xee" not in d
