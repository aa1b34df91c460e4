# LUN masking holds for every command: a direct command acts only on system drives the caller sees
# through some LUN (on either host port), status answers say nothing of other tenants' copies, a
# copy does not pass a reservation on a drive it names, and a target reset reaches only the LUs
# of the initiator that sent it. scsi/vendor.md, lop/README.md and scsi/README.md document each answer.
import json
import fw
from lop import scheduler

A = "iqn.2026-11.org.example:tenant-a"    # SD0 (LUN 0, both ports), the backup LUN and SD3, port 1
B = "iqn.2026-11.org.example:tenant-b"    # SD2 (LUN 2 of port 0) only
C = "iqn.2026-11.org.example:backup"      # the backup LUN of port 0 only: a backup server
PRIMARY, BACKUP, B_LUN, A_LUN = 0, 1, 2, 3
INITIATE = fw.cdb(0x20, 0, 0x60, 0, 0, 0, 0, 0, 0, 0)
TERMINATE = fw.cdb(0x20, 0, 0x61, 0, 0, 0, 0, 0, 0, 0)
STATUS = fw.cdb(0x20, 0, 0x43, 0x01, 0, 0, 0, 0, 2, 0)
TUR = fw.cdb(0, 0, 0, 0, 0, 0)
RESERVE6 = fw.cdb(0x16, 0, 0, 0, 0, 0)
RELEASE6 = fw.cdb(0x17, 0, 0, 0, 0, 0)
RESERVATION_CONFLICT = 0x18


def start(src, dst):
    return fw.cdb(0x20, 0, 0x44, 0x01, src, dst, 0, 0, 2, 0)


def tenants():
    # 4 MiB disks, 12 slots: SD0 primary (12 MiB) and SD1 log as from the factory; SD2 B's drive
    # on LUN 2 of port 0, SD3 A's backup system drive on LUN 3 of port 1
    ctl = fw.boot(b=fw.small_board(disk_mb=4, slots=12))
    ctl.command("sd_create", {"raid": 0, "slots": [6, 7, 8]})
    ctl.command("sd_create", {"raid": 0, "slots": [9, 10, 11]})
    ctl.command("lun_map", {"port": 0, "lun": B_LUN, "sd": 2})
    ctl.command("lun_map", {"port": 1, "lun": A_LUN, "sd": 3})
    mask(ctl, A, [0, PRIMARY], [1, PRIMARY], [1, BACKUP], [1, A_LUN])
    mask(ctl, B, [0, B_LUN])
    mask(ctl, C, [0, BACKUP])
    return ctl


def mask(ctl, who, *luns):
    ctl.command("mask_set", {"initiator": who, "luns": list(luns)})


def word(ctl, ini, c, lun, port=0):
    st, sn, d = fw.run(ctl, lun, c, port=port, ini=ini)
    assert st == 0 and sn is None and len(d) == 2, (st, sn, d)
    return (d[0] << 8) | d[1]


def refused(ctl, ini, c, lun, sk, asc, ascq):
    st, sn, _ = fw.run(ctl, lun, c, ini=ini)
    assert st == 2 and fw.sense3(sn) == (sk, asc, ascq), (st, sn)


def test_a_copy_onto_a_drive_the_caller_cannot_see_is_an_invalid_system_drive():
    ctl = tenants()
    theirs = fw.pattern(1, 64 * 512)
    assert fw.run(ctl, B_LUN, fw.write10(0, 64), theirs, ini=B)[0] == 0
    # the attack: A initiates on its own LUN, then copies onto SD2, which it cannot see
    assert fw.run(ctl, PRIMARY, INITIATE, ini=A)[0] == 0
    assert word(ctl, A, start(0, 2), PRIMARY) == 0x0105
    assert word(ctl, A, start(1, 2), PRIMARY) == 0x0105
    assert word(ctl, A, start(0, 7), PRIMARY) == 0x0105     # the word of an undefined drive
    # C sees the log drive but not the primary: it may not name the primary as the source
    assert word(ctl, C, start(0, 1), BACKUP) == 0x0105
    assert not ctl.lops.ops
    assert fw.run(ctl, B_LUN, fw.read10(0, 64), ini=B)[2] == theirs
    # A sees SD3 and the log drive through port 1 only: enough, from either port
    assert word(ctl, A, start(1, 3), PRIMARY) == 0x0000
    scheduler.finish_all(ctl.lop_mgr)
    assert word(ctl, A, STATUS, PRIMARY) == 0x0100
    assert fw.run(ctl, B_LUN, fw.read10(0, 64), ini=B)[2] == theirs


def test_status_reports_a_copy_only_to_initiators_that_see_both_its_drives():
    ctl = tenants()
    fw.run(ctl, PRIMARY, INITIATE, ini=A)
    assert word(ctl, A, start(0, 3), PRIMARY) == 0x0000
    ctl.lop_mgr.step()
    assert word(ctl, A, STATUS, PRIMARY, port=1) == 0x0000
    assert word(ctl, B, STATUS, B_LUN) == 0x0105            # as if no copy had ever run
    assert word(ctl, C, STATUS, BACKUP) == 0x0105           # sees neither SD0 nor SD3
    # the board runs one copy at a time: B learns that one runs, not where
    assert word(ctl, B, start(2, 2), B_LUN) == 0x0106
    scheduler.finish_all(ctl.lop_mgr)
    assert word(ctl, A, STATUS, PRIMARY) == 0x0100
    assert word(ctl, B, STATUS, B_LUN) == 0x0105
    ctl = fw.reboot(ctl)                                    # the last copy's drives persist
    assert word(ctl, A, STATUS, PRIMARY) == 0x0100
    assert word(ctl, B, STATUS, B_LUN) == 0x0105
    # a lop.state written before the drives were kept: they come from the copy in the history
    path = ctl.state_dir + "/lop.state"
    with open(path) as f:
        st = json.loads(f.read())
    del st["copy_pair"]
    with open(path, "w") as f:
        f.write(json.dumps(st))
    ctl = fw.reboot(ctl)
    assert word(ctl, A, STATUS, PRIMARY) == 0x0100
    assert word(ctl, B, STATUS, B_LUN) == 0x0105
    for who in (A, B, C):
        ctl.command("mask_clear", {"initiator": who})
    assert word(ctl, B, STATUS, B_LUN) == 0x0100            # nothing masked: everyone sees it


def test_a_copy_does_not_pass_a_reservation_on_a_drive_it_names():
    ctl = tenants()
    mask(ctl, C, [0, BACKUP], [1, A_LUN])                   # the backup server also sees SD3
    fw.run(ctl, PRIMARY, INITIATE, ini=A)
    # C reserves the destination: A's copy onto it would write past the reservation
    assert fw.run(ctl, A_LUN, RESERVE6, port=1, ini=C)[0] == 0
    st, sn, d = fw.run(ctl, PRIMARY, start(1, 3), ini=A)
    assert (st, sn, d) == (RESERVATION_CONFLICT, None, b"")
    assert not ctl.lops.ops
    assert fw.run(ctl, A_LUN, RELEASE6, port=1, ini=C)[0] == 0
    # C reserves the backup LUN: A's copy may not read the image through it either
    assert fw.run(ctl, BACKUP, RESERVE6, ini=C)[0] == 0
    st, sn, d = fw.run(ctl, PRIMARY, start(1, 3), ini=A)
    assert (st, sn, d) == (RESERVATION_CONFLICT, None, b"")
    assert not ctl.lops.ops
    # the holder itself copies
    assert word(ctl, C, start(1, 3), BACKUP) == 0x0000


def test_a_target_reset_reaches_only_the_logical_units_its_initiator_sees():
    ctl = tenants()
    mask(ctl, C, [0, B_LUN])                                # C shares SD2 with B
    for who, lun in ((A, PRIMARY), (C, B_LUN)):             # nexuses the board knows
        assert fw.run(ctl, lun, TUR, ini=who)[0] == 0
    assert fw.run(ctl, B_LUN, RESERVE6, ini=B)[0] == 0
    ctl.task_mgmt((A, 0, PRIMARY), "target_warm_reset")
    assert fw.run(ctl, B_LUN, TUR, ini=C)[0] == RESERVATION_CONFLICT   # B still holds SD2
    assert fw.run(ctl, B_LUN, TUR, ini=B)[0] == 0           # and got no unit attention
    refused(ctl, A, TUR, PRIMARY, 0x06, 0x29, 0x02)         # A's own LUN was reset
    ctl.task_mgmt((C, 0, B_LUN), "target_warm_reset")       # C sees SD2: B's reservation ends
    for who in (B, C):
        refused(ctl, who, TUR, B_LUN, 0x06, 0x29, 0x02)
    assert fw.run(ctl, B_LUN, TUR, ini=C)[0] == 0


def test_initiate_needs_a_log_lun_the_caller_sees_and_terminate_a_lun_of_the_snapshot():
    ctl = tenants()
    refused(ctl, B, INITIATE, PRIMARY, 0x05, 0x25, 0x00)    # LUN 0 is not B's
    # B's own drive: B sees no LUN of the log drive, so for B no log LUN is defined
    refused(ctl, B, INITIATE, B_LUN, 0x09, 0x81, 0x19)
    assert ctl.engine.state == 0
    assert fw.run(ctl, PRIMARY, INITIATE, ini=A)[0] == 0
    # and while A's snapshot is active B still gets that answer, not "already in progress"
    refused(ctl, B, INITIATE, B_LUN, 0x09, 0x81, 0x19)
    # terminate through B's drive: "not in progress", the answer of a board with no snapshot
    refused(ctl, B, TERMINATE, B_LUN, 0x09, 0x81, 0x0C)
    assert ctl.engine.state == 1
    # the backup server ends the snapshot through the backup LUN, as Table 3 allows
    refused(ctl, C, INITIATE, BACKUP, 0x09, 0x81, 0x20)
    assert fw.run(ctl, BACKUP, TERMINATE, ini=C)[0] == 0
    assert ctl.engine.state == 0
