"""Reservations across the dual-active pair (firmware/control/pair.md "Reservations across the
pair"), through the real endpoints: two firmware processes, hosts on their portals.

A cluster fences a node with a persistent reservation; the fence must hold whichever controller
serves the drive. Proven here: a reservation made through either controller is in the partner's
memory before it is answered, so after the owner is killed the survivor fences the same hosts and
reports the same keys and generation; what changed on the survivor goes back with the drive at
failback; a drive moved by command takes its reservations along; a RESERVE(6) ends with the
sessions of a controller that died, and holds for the sessions that did not; while the link is
lost no change is made (none is answered and then lost); a change through the console is told
too; after a failback the partner hears that the backup LUN is reserved.
"""
import struct

import test_iscsi_initiator as I
from test_pair import pair, host  # noqa: F401  (the fixture)

ISID_A = b"\x80\x00\x00\x00\xa0\x01"
ISID_B = b"\x80\x00\x00\x00\xb0\x01"
NODE_A, NODE_B = I.INITIATOR + ":node-a", I.INITIATOR + ":node-b"
WR_EX, EX_AC, WR_EX_RO = 1, 3, 5
CONFLICT = 0x18


def login(pair, n, name, isid):
    return host(pair, n, name=name, isid=isid)


def settled(i, lun=0):
    """Unit attentions (2A/06 after a failover) cleared, as a host's first command clears them."""
    for _ in range(8):
        r = i.command(lun, bytes(6))
        if r["status"] != 2:          # GOOD, or a RESERVE(6) of another's that conflicts
            return i
    raise AssertionError("TEST UNIT READY kept answering CHECK CONDITION: %r" % r)


def prout(i, sa, rkey=0, sakey=0, type_=0, lun=0):
    cdb = bytes([0x5F, sa, type_, 0, 0, 0, 0, 0, 24, 0])
    return i.command(lun, cdb, data_out=struct.pack(">QQ", rkey, sakey) + bytes(8))["status"]


def prin(i, sa, lun=0):
    r = i.command(lun, bytes([0x5E, sa, 0, 0, 0, 0, 0, 4, 0, 0]), read_len=1024)
    assert r["status"] == 0, r
    return r["data"]


def write(i):
    return i.write(0, 64, b"w" * 512)["status"]


def read(i):
    return i.read(0, 64, 1)["status"]


def test_a_persistent_reservation_fences_the_same_hosts_after_failover_and_failback(pair):
    a = login(pair, 1, NODE_A, ISID_A)            # the cluster's live node, at controller 1
    b = login(pair, 0, NODE_B, ISID_B)            # the fenced node, at controller 0 (the owner)
    assert prout(a, 0, sakey=0xA) == 0            # REGISTER
    assert prout(a, 1, rkey=0xA, type_=WR_EX) == 0            # RESERVE, forwarded to the owner
    assert write(b) == CONFLICT and read(b) == 0
    keys, res = prin(a, 0), prin(a, 1)

    pair.kill(0)
    pair.wait(1, lambda s: s["serving"] == [0, 1], "serving both")
    settled(a)
    b = settled(login(pair, 0, NODE_B, ISID_B))   # the fenced node logs in again, now at controller 1
    assert write(b) == CONFLICT and read(b) == 0              # still fenced
    assert write(a) == 0
    assert (prin(a, 0), prin(a, 1)) == (keys, res)           # the same keys and generation

    # while controller 1 serves it, the fenced node registers (the generation moves on)
    assert prout(b, 6, sakey=0xB) == 0
    keys = prin(a, 0)
    assert struct.unpack(">II", keys[:8]) == (struct.unpack(">I", res[:4])[0] + 1, 16)

    pair.restart(0)
    pair.wait(1, lambda s: s["serving"] == [1] and s["partner"] == "UP", "gave back")
    pair.wait(0, lambda s: s["serving"] == [0], "own drives again")
    b = settled(login(pair, 0, NODE_B, ISID_B))   # at the returned owner, not forwarded
    assert write(b) == CONFLICT
    assert prin(b, 0) == keys and prin(b, 1) == keys[:4] + res[4:]   # the reservation, the new generation
    assert write(settled(a)) == 0
    ev = "\n".join(e["text"] for e in pair.c[0].command("events", {"n": 64})["events"])
    assert "REFUSED THE RESERVATIONS" not in ev


def test_a_reservation_moves_with_its_drive(pair):
    a = login(pair, 0, NODE_A, ISID_A)
    b = login(pair, 1, NODE_B, ISID_B)
    assert prout(a, 0, sakey=0xA) == 0
    assert prout(a, 1, rkey=0xA, type_=EX_AC) == 0             # exclusive access: no reads either
    assert read(b) == CONFLICT
    full = prin(a, 3)
    assert pair.c[0].command("sd_owner", {"sd": 0, "controller": 1})["owner"] == 1
    pair.wait(1, lambda s: s["drives"][0]["owner"] == 1, "SD0 owned by controller 1")
    before = pair.c[0].command("pair_status")["disk_reads"]
    assert read(settled(b)) == CONFLICT           # executed by controller 1 now, fenced as before
    assert write(b) == CONFLICT
    assert pair.c[0].command("pair_status")["disk_reads"] == before      # not forwarded
    assert read(settled(a)) == 0 and prin(b, 3) == full


def test_a_reserve_6_ends_with_the_sessions_of_a_controller_that_died_and_no_other(pair):
    # held through the survivor's own portal: the session lives on, so does its reservation
    a = login(pair, 1, NODE_A, ISID_A)
    b = login(pair, 0, NODE_B, ISID_B)
    assert a.command(0, bytes([0x16, 0, 0, 0, 0, 0]))["status"] == 0      # RESERVE(6)
    assert write(b) == CONFLICT
    pair.kill(0)
    pair.wait(1, lambda s: s["serving"] == [0, 1], "serving both")
    b = settled(login(pair, 0, NODE_B, ISID_B))
    assert write(b) == CONFLICT
    assert write(settled(a)) == 0
    assert a.command(0, bytes([0x17, 0, 0, 0, 0, 0]))["status"] == 0      # RELEASE(6)
    pair.restart(0)
    pair.wait(1, lambda s: s["serving"] == [1] and s["partner"] == "UP", "gave back")
    pair.wait(0, lambda s: s["serving"] == [0], "own drives again")
    # held through the owner's portal: the session dies with the owner, and so does the reservation
    b = settled(login(pair, 0, NODE_B, ISID_B))
    assert b.command(0, bytes([0x16, 0, 0, 0, 0, 0]))["status"] == 0
    assert write(settled(a)) == CONFLICT
    pair.kill(0)
    pair.wait(1, lambda s: s["serving"] == [0, 1], "serving both")
    assert write(settled(a)) == 0


def test_no_reservation_changes_while_the_link_is_lost_and_none_lost_after(pair):
    # controller 1's own drive: its reservations are made there and copied to controller 0
    assert pair.c[1].command("sd_create", {"raid": 1, "slots": [6, 7], "mb": 8})["sd"] == 2
    pair.c[1].command("lun_map", {"port": 0, "lun": 2, "sd": 2})
    a, b = login(pair, 1, NODE_A, ISID_A), login(pair, 1, NODE_B, ISID_B)
    for i in (a, b):
        settled(i, 2)
    assert prout(b, 0, sakey=0xB, lun=2) == 0
    assert prout(a, 0, sakey=0xA, lun=2) == 0
    assert prout(a, 1, rkey=0xA, type_=WR_EX_RO, lun=2) == 0        # registrants (b too) write
    keys = prin(a, 0, lun=2)
    pair.c[0].command("pair_link", {"state": "down"})
    # controller 1 cannot tell controller 0 any more: a change now is refused (02/04/0A, retried
    # by hosts), never answered GOOD and then lost when controller 1 stands down
    r = a.command(2, bytes([0x5F, 4, WR_EX_RO, 0, 0, 0, 0, 0, 24, 0]),
                  data_out=struct.pack(">QQ", 0xA, 0xB) + bytes(8))          # PREEMPT node b
    assert r["status"] == 2 and r["sense"][2] & 0x0F == 2 and r["sense"][12:14] == b"\x04\x0a", r
    pair.wait(0, lambda s: s["serving"] == [0, 1], "took over")
    a = settled(login(pair, 1, NODE_A, ISID_A), 2)           # controller 1's portal, served by 0
    assert prin(a, 0, lun=2) == keys                          # nothing was changed, nothing lost
    assert prout(a, 4, rkey=0xA, sakey=0xB, type_=WR_EX_RO, lun=2) == 0   # decided: it goes through
    b = settled(login(pair, 1, NODE_B, ISID_B), 2)
    assert b.write(2, 0, b"x" * 512)["status"] == CONFLICT


def test_a_reservation_changed_through_the_console_is_in_the_partner_s_memory_too(pair):
    data = struct.pack(">QQ", 0, 0xC0) + bytes(8)
    r = pair.c[0].command("cdb", {"cdb": bytes([0x5F, 0, 0, 0, 0, 0, 0, 0, 24, 0]).hex(),
                                  "data": data.hex(), "port": 0, "lun": 0})       # REGISTER
    assert r["status"] == 0, r
    pair.kill(0)
    pair.wait(1, lambda s: s["serving"] == [0, 1], "serving both")
    a = settled(login(pair, 1, NODE_A, ISID_A))
    assert prin(a, 0)[4:16] == struct.pack(">IQ", 8, 0xC0)


def test_after_failback_the_partner_reads_a_reserved_backup_lun_through_its_holder(pair):
    a, b = login(pair, 1, NODE_A, ISID_A), login(pair, 1, NODE_B, ISID_B)
    assert a.write(0, 0, b"i" * 65536)["status"] == 0
    pair.c[0].command("snapshot_start", {"sd": 0})
    assert a.command(1, bytes([0x16, 0, 0, 0, 0, 0]))["status"] == 0     # RESERVE(6), backup LUN
    pair.kill(0)
    pair.wait(1, lambda s: s["serving"] == [0, 1], "serving both")
    assert settled(b, 1).read(1, 0, 128)["status"] == CONFLICT
    pair.restart(0)
    pair.wait(1, lambda s: s["serving"] == [1] and s["partner"] == "UP", "gave back")
    pair.wait(0, lambda s: s["serving"] == [0], "own drives again")
    # controller 1 follows the snapshot and reads the backup LUN from the disks itself, except
    # while its owner holds a reservation of it: it heard so when the owner took it back
    assert settled(b, 1).read(1, 0, 128)["status"] == CONFLICT
    assert settled(a, 1).read(1, 0, 128)["data"] == b"i" * 65536
