# LUN masking holds for every command: a direct command acts only on system drives the caller sees
# through some LUN (on either host port), status answers say nothing of other tenants' copies, a
# copy does not pass a reservation on a drive it names, and a target reset reaches only the LUs
# of the initiator that sent it. vendor.md and lop.md document each answer.
import fw
import lop

A = "iqn.2026-11.org.example:tenant-a"    # masked to LUN 0 (SD0, the primary) on both ports
B = "iqn.2026-11.org.example:tenant-b"    # masked to LUN 1 (the backup LUN) and LUN 2 (SD2), port 0
C = "iqn.2026-11.org.example:tenant-c"    # masked to LUN 1 and LUN 2 as well: shares SD2 with B
PRIMARY, BACKUP, DEST = 0, 1, 2
INITIATE = fw.cdb(0x20, 0, 0x60, 0, 0, 0, 0, 0, 0, 0)
STATUS = fw.cdb(0x20, 0, 0x43, 0x01, 0, 0, 0, 0, 2, 0)
TUR = fw.cdb(0, 0, 0, 0, 0, 0)
RESERVE6 = fw.cdb(0x16, 0, 0, 0, 0, 0)
RESERVATION_CONFLICT = 0x18


def start(src, dst):
    return fw.cdb(0x20, 0, 0x44, 0x01, src, dst, 0, 0, 2, 0)


def tenants():
    # the board of test_lop (SD0 primary, SD1 log, SD2 a RAID 0 on LUN 2 of port 0) shared by
    # three masked initiators
    ctl = fw.boot(b=fw.small_board(disk_mb=4, slots=10))
    lop.boot(ctl)
    ctl.command("sd_create", {"raid": 0, "slots": [6, 7, 8]})
    ctl.command("lun_map", {"port": 0, "lun": DEST, "sd": 2})
    ctl.command("mask_set", {"initiator": A, "luns": [[0, PRIMARY], [1, PRIMARY]]})
    for who in (B, C):
        ctl.command("mask_set", {"initiator": who, "luns": [[0, BACKUP], [0, DEST]]})
    return ctl


def word(ctl, ini, c, lun):
    st, sn, d = fw.run(ctl, lun, c, ini=ini)
    assert st == 0 and sn is None and len(d) == 2, (st, sn, d)
    return (d[0] << 8) | d[1]


def read(ctl, ini, lun, lba, n):
    st, sn, d = fw.run(ctl, lun, fw.read10(lba, n), ini=ini)
    assert st == 0, (st, sn)
    return d


def test_a_copy_onto_a_drive_the_caller_cannot_see_is_an_invalid_system_drive():
    ctl = tenants()
    mine = fw.pattern(1, 64 * 512)
    assert fw.run(ctl, DEST, fw.write10(0, 64), mine, ini=B)[0] == 0
    # the attack: A initiates on its own LUN, then copies onto SD2, which it cannot see
    assert fw.run(ctl, PRIMARY, INITIATE, ini=A)[0] == 0
    assert word(ctl, A, start(0, 2), PRIMARY) == 0x0105
    assert word(ctl, A, start(1, 2), PRIMARY) == 0x0105     # nor from the log drive it cannot see
    assert word(ctl, A, start(0, 7), PRIMARY) == 0x0105     # the same word as an undefined drive
    assert not ctl.lops.ops
    assert read(ctl, B, DEST, 0, 64) == mine
    # seeing SD2 through a LUN of the other host port is enough
    ctl.command("lun_map", {"port": 1, "lun": 3, "sd": 2})
    ctl.command("mask_set", {"initiator": A, "luns": [[0, PRIMARY], [1, PRIMARY], [1, 3]]})
    assert word(ctl, A, start(1, 2), PRIMARY) == 0x0105     # the log drive: still not A's
    assert word(ctl, A, start(0, 2), PRIMARY) == 0x0000
    lop.finish_all(ctl)
    assert word(ctl, A, STATUS, PRIMARY) == 0x0100


def test_status_reports_a_copy_only_to_initiators_that_see_both_its_drives():
    ctl = tenants()
    fw.run(ctl, PRIMARY, INITIATE, ini=A)
    assert word(ctl, B, start(1, 2), DEST) == 0x0000
    lop.step(ctl)
    assert word(ctl, B, STATUS, BACKUP) == 0x0000
    assert word(ctl, A, STATUS, PRIMARY) == 0x0105          # as if no copy had ever run
    # the board runs one copy at a time: A learns that one runs, not where
    assert word(ctl, A, start(0, 5), PRIMARY) == 0x0106
    lop.finish_all(ctl)
    assert word(ctl, B, STATUS, BACKUP) == 0x0100
    assert word(ctl, A, STATUS, PRIMARY) == 0x0105
    ctl = fw.reboot(ctl)                                    # the last copy's drives persist
    lop.boot(ctl)
    assert word(ctl, B, STATUS, DEST) == 0x0100
    assert word(ctl, A, STATUS, PRIMARY) == 0x0105
    ctl.command("mask_clear", {"initiator": A})
    ctl.command("mask_clear", {"initiator": B})
    ctl.command("mask_clear", {"initiator": C})
    assert word(ctl, A, STATUS, PRIMARY) == 0x0100          # nothing masked: everyone sees it


def test_a_copy_does_not_pass_a_reservation_on_a_drive_it_names():
    ctl = tenants()
    fw.run(ctl, PRIMARY, INITIATE, ini=A)
    # C reserves the destination: B's copy onto it would write past the reservation
    assert fw.run(ctl, DEST, RESERVE6, ini=C)[0] == 0
    st, sn, d = fw.run(ctl, BACKUP, start(1, 2), ini=B)
    assert (st, sn, d) == (RESERVATION_CONFLICT, None, b"")
    assert not ctl.lops.ops
    assert fw.run(ctl, DEST, fw.cdb(0x17, 0, 0, 0, 0, 0), ini=C)[0] == 0
    # C reserves the backup LUN: reading the image through a copy is excluded as well
    assert fw.run(ctl, BACKUP, RESERVE6, ini=C)[0] == 0
    st, sn, d = fw.run(ctl, DEST, start(1, 2), ini=B)
    assert (st, sn, d) == (RESERVATION_CONFLICT, None, b"")
    assert not ctl.lops.ops
    # the holder itself copies
    assert word(ctl, C, start(1, 2), BACKUP) == 0x0000


def test_a_target_reset_reaches_only_the_logical_units_its_initiator_sees():
    ctl = tenants()
    for who, lun in ((A, PRIMARY), (C, DEST)):             # nexuses the board knows
        assert fw.run(ctl, lun, TUR, ini=who)[0] == 0
    assert fw.run(ctl, DEST, RESERVE6, ini=B)[0] == 0
    ctl.task_mgmt((A, 0, PRIMARY), "target_warm_reset")
    assert fw.run(ctl, DEST, TUR, ini=C)[0] == RESERVATION_CONFLICT   # B still holds SD2
    assert fw.run(ctl, DEST, TUR, ini=B)[0] == 0            # and got no unit attention
    st, sn, _ = fw.run(ctl, PRIMARY, TUR, ini=A)
    assert st == 2 and fw.sense3(sn) == (0x06, 0x29, 0x02)  # A's own LUN was reset
    ctl.task_mgmt((C, 0, DEST), "target_warm_reset")        # C sees SD2: B's reservation ends
    for who in (B, C):
        st, sn, _ = fw.run(ctl, DEST, TUR, ini=who)
        assert st == 2 and fw.sense3(sn) == (0x06, 0x29, 0x02)
    assert fw.run(ctl, DEST, TUR, ini=C)[0] == 0


def test_snapshot_commands_reach_only_drives_the_caller_sees():
    ctl = tenants()
    assert fw.run(ctl, PRIMARY, INITIATE, ini=B)[0] == 2    # LUN 0 is not B's: 05/25/00
    assert fw.sense3(fw.run(ctl, PRIMARY, INITIATE, ini=B)[1]) == (0x05, 0x25, 0x00)
    assert fw.run(ctl, PRIMARY, INITIATE, ini=A)[0] == 0
    # terminate through B's own drive: "not in progress", the answer of a board with no snapshot
    st, sn, _ = fw.run(ctl, DEST, fw.cdb(0x20, 0, 0x61, 0, 0, 0, 0, 0, 0, 0), ini=B)
    assert st == 2 and fw.sense3(sn) == (0x09, 0x81, 0x0C)
    assert ctl.engine.state == 1
