"""The dual-active pair (FIG. 7, claims 9-12) through its real endpoints: two firmware processes on
one state directory, the back-end link between them, hosts on all four portals.

What is proven here: both join and serve their own drives; a command for a drive the other
controller owns is forwarded and answered as the owner answers it; ALUA (INQUIRY TPGS, VPD 0x83,
REPORT TARGET PORT GROUPS) tells hosts which port group is optimized; a configuration change on
either is in both NV memories; ownership moves by command; one snapshot at a time pair-wide, its
backup LUN reachable through both; a killed, hung or failed controller is taken over at its own
portal addresses with every acknowledged write and the snapshot intact; failback; a cut link makes
controller 1 stand down and no drive is written by both. The rules: firmware/control/pair.md.
"""
import json
import os
import socket
import signal
import struct
import sys
import threading
import time
import zlib

import pytest

import test_iscsi_initiator as I
import harness
from harness import Pair

RTPG = bytes([0xA3, 0x0A, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0])
RTPG_EXT = bytes([0xA3, 0x2A, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0])
OPTIMIZED, NON_OPTIMIZED, STANDBY = 0, 1, 2


@pytest.fixture
def pair(tmp_path):
    # eight disks: the factory layout takes six, two are left for a drive of controller 1's
    p = Pair(tmp_path, populated_slots=8)
    yield p
    p.kill()


def host(pair, n, port=0, name=I.INITIATOR, isid=None):
    """An initiator logged in at controller n's host port `port` (its board-file address); with
    `isid`, the same I_T nexus each time, as open-iscsi keeps its ISID across logins."""
    h, p = pair.portal(n, port)
    deadline = time.time() + 30
    while True:
        try:
            i = I.Initiator(h, p, name=name, isid=isid)
            i.login()
            return i
        except (OSError, I.ISCSIError):
            if time.time() > deadline:
                raise
            time.sleep(0.02)      # the portal is being taken over: hosts retry the same way


def groups(data):
    """REPORT TARGET PORT GROUPS (length-only header) -> {group: (state, pref, [rel ports])}"""
    out, off = {}, 4
    while off < 4 + struct.unpack(">I", data[:4])[0]:
        state, pref = data[off] & 0x0F, bool(data[off] & 0x80)
        tpg, count = struct.unpack(">H", data[off + 2:off + 4])[0], data[off + 7]
        ports = [struct.unpack(">H", data[off + 10 + 4 * k:off + 12 + 4 * k])[0] for k in range(count)]
        out[tpg] = (state, pref, ports)
        off += 8 + 4 * count
    return out


def designators(vpd83):
    """VPD page 0x83 -> {designator type: value bytes}"""
    out, off = {}, 4
    while off < 4 + struct.unpack(">H", vpd83[2:4])[0]:
        out[vpd83[off + 1] & 0x0F] = vpd83[off + 4:off + 4 + vpd83[off + 3]]
        off += 4 + vpd83[off + 3]
    return out


def events(ctl):
    return [e["text"] for e in ctl.command("events", {"n": 64})["events"]]


def test_both_join_and_each_serves_its_own_ports(pair):
    for n in (0, 1):
        st = pair.c[n].command("pair_status")
        assert st["partner"] == "UP" and st["mode"] == "ACTIVE"
        assert st["serving"] == [n]
        assert [d["owner"] for d in st["drives"]] == [0, 0]     # the factory drives are controller 0's
    assert any("CONTROLLER 1 JOINED" in t for t in events(pair.c[0]))


def test_a_write_through_the_partner_is_done_by_the_owner_and_read_back_anywhere(pair):
    a, b = host(pair, 1), host(pair, 0, port=1)
    data = os.urandom(8192)
    before = [pair.c[n].command("pair_status")["disk_writes"] for n in (0, 1)]
    assert a.write(0, 300, data)["status"] == 0          # SD0 is controller 0's: forwarded
    after = [pair.c[n].command("pair_status")["disk_writes"] for n in (0, 1)]
    assert after[0] > before[0] and after[1] == before[1]   # only the owner touched the disks
    assert b.read(0, 300, 16)["data"] == data
    assert a.read(0, 300, 16)["data"] == data


def test_alua_tells_hosts_which_port_group_is_optimized(pair):
    a, b = host(pair, 0), host(pair, 1, port=1)
    assert a.command(0, bytes([0x12, 0, 0, 0, 96, 0]), read_len=96)["data"][5] & 0x30 == 0x10   # TPGS 01
    for h, rel, tpg in ((a, 1, 1), (b, 4, 2)):
        d = designators(h.command(0, bytes([0x12, 1, 0x83, 0, 255, 0]), read_len=255)["data"])
        assert struct.unpack(">I", d[0x4])[0] == rel and struct.unpack(">I", d[0x5])[0] == tpg
        r = h.command(0, RTPG, read_len=256)
        assert r["status"] == 0
        assert groups(r["data"]) == {1: (OPTIMIZED, True, [1, 2]), 2: (NON_OPTIMIZED, False, [3, 4])}
    # the extended header: format 1, a transition time, and the same descriptors after it (its
    # length counts the four header bytes more, as Linux's scsi_dh_alua reads it)
    ext, plain = b.command(0, RTPG_EXT, read_len=256)["data"], a.command(0, RTPG, read_len=256)["data"]
    assert ext[4] == 0x10 and ext[5] == 1 and ext[8:] == plain[4:]
    assert struct.unpack(">I", ext[:4])[0] == struct.unpack(">I", plain[:4])[0] + 4


def test_a_configuration_change_on_either_controller_is_in_both_nv_memories(pair):
    pair.c[1].command("lun_map", {"port": 1, "lun": 5, "sd": 0})
    for n in (0, 1):
        dump = pair.c[n].command("nvram_dump")
        assert {"port": 1, "lun": 5, "sd": 0} in dump["lun_map"]
    assert pair.c[0].command("nvram_dump")["generation"] == pair.c[1].command("nvram_dump")["generation"]
    # and on the NV memory files themselves, after both restart
    pair.kill()
    for c in pair.c:
        c.launch()
    for c in pair.c:
        c.wait_ready()
    assert {"port": 1, "lun": 5, "sd": 0} in pair.c[0].command("nvram_dump")["lun_map"]


def test_ownership_moves_by_command_and_hosts_hear_the_change(pair):
    a = host(pair, 1)
    assert a.read(0, 0, 1)["status"] == 0
    r = pair.c[0].command("sd_owner", {"sd": 0, "controller": 1})
    assert r == {"sd": 0, "affinity": 1, "owner": 1}
    pair.wait(1, lambda s: s["drives"][0]["owner"] == 1, "SD0 owned here")
    r = a.read(0, 0, 1)
    assert r["status"] == 2 and r["sense"][2] & 0x0F == 6 and r["sense"][12:14] == b"\x2a\x06"
    assert groups(a.command(0, RTPG, read_len=256)["data"])[2][0] == OPTIMIZED
    before = pair.c[0].command("pair_status")["disk_writes"]
    assert a.write(0, 0, b"o" * 512)["status"] == 0
    assert pair.c[0].command("pair_status")["disk_writes"] == before     # controller 1 wrote it


def test_one_snapshot_at_a_time_pair_wide_and_its_backup_lun_answers_on_both(pair):
    a, b = host(pair, 0), host(pair, 1)
    old = os.urandom(4096)
    assert a.write(0, 64, old)["status"] == 0
    pair.c[1].command("snapshot_start", {"sd": 0})              # run where SD0 is: controller 0
    assert pair.c[0].command("snapshot_status")["state"] == "ACTIVE"
    with pytest.raises(Exception) as e:
        pair.c[1].command("snapshot_start", {"sd": 0})
    assert "SNAPSHOT_ACTIVE" in str(e.value)
    assert b.write(0, 64, b"n" * 4096)["status"] == 0         # a first write through the partner
    assert a.read(1, 64, 8)["data"] == old and b.read(1, 64, 8)["data"] == old
    assert b.read(0, 64, 8)["data"] == b"n" * 4096


def test_a_killed_controller_is_taken_over_at_its_own_portal_with_every_write_and_the_snapshot(pair):
    a = host(pair, 1)
    old, new = os.urandom(4096), os.urandom(4096)
    assert a.write(0, 8, old)["status"] == 0
    pair.c[0].command("snapshot_start", {"sd": 0})
    assert a.write(0, 8, new)["status"] == 0
    pair.kill(0)
    st = pair.wait(1, lambda s: s["serving"] == [0, 1], "serving both")
    assert st["partner"] == "FAILED"
    b = host(pair, 0)                                   # controller 0's address, served by 1
    assert b.read(0, 8, 8)["data"] == new
    assert b.read(1, 8, 8)["data"] == old                # the backup LUN: the image at initiate
    r = a.read(0, 8, 8)                                   # the host that stayed: 2A/06 once
    assert r["status"] == 2 and r["sense"][12:14] == b"\x2a\x06"
    assert a.read(0, 8, 8)["data"] == new
    assert groups(a.command(0, RTPG, read_len=256)["data"])[1][0] == OPTIMIZED
    assert pair.c[1].command("snapshot_status")["state"] == "ACTIVE"
    assert any("FAILOVER" in t for t in events(pair.c[1]))


def test_a_restarted_controller_gets_its_drives_and_ports_back(pair):
    a = host(pair, 1)
    pair.kill(0)
    pair.wait(1, lambda s: s["serving"] == [0, 1], "took over")
    assert a.write(0, 40, b"s" * 512)["status"] in (0, 2)
    pair.restart(0)
    pair.wait(1, lambda s: s["serving"] == [1] and s["partner"] == "UP", "gave back")
    assert pair.c[0].command("pair_status")["serving"] == [0]
    assert host(pair, 0).read(0, 40, 1)["data"] == b"s" * 512


def test_manual_failback_waits_for_the_command(pair):
    pair.c[0].command("params_set", {"failback": "manual"})
    pair.kill(0)
    pair.wait(1, lambda s: s["serving"] == [0, 1], "took over")
    pair.c[0].launch()
    st = pair.wait(1, lambda s: s["partner"] == "UP", "partner back")
    assert st["serving"] == [0, 1]
    pair.c[0].wait_ready()
    assert pair.c[0].command("pair_status")["serving"] == []        # waits, serving nothing
    assert pair.c[1].command("pair_failback") == {"started": True}
    pair.wait(0, lambda s: s["serving"] == [0], "own ports again")
    pair.wait(1, lambda s: s["serving"] == [1], "gave back")
    assert host(pair, 0).read(0, 0, 1)["status"] == 0


def test_a_hung_controller_is_reset_and_taken_over(pair):
    os.kill(pair.c[0].proc.pid, signal.SIGSTOP)
    pair.wait(1, lambda s: s["serving"] == [0, 1], "took over")
    assert pair.c[0].proc.wait(timeout=30) == -signal.SIGKILL       # the reset line
    assert any("RESET (its heartbeat stopped)" in t for t in events(pair.c[1]))
    assert host(pair, 0).read(0, 0, 1)["status"] == 0


def test_a_firmware_that_declares_itself_failed_is_taken_over(pair):
    pair.c[0].command("pair_fail", {"controller": 0})
    assert pair.c[0].proc.wait(timeout=30) == 6
    pair.wait(1, lambda s: s["serving"] == [0, 1], "took over")


def test_console_commands_for_each_other_s_drives_at_once_never_wait_for_each_other(pair):
    # each console's pass-through to a drive the other controller serves blocks its controller
    # until the answer (FWDW): two at once would each wait for the other until the 5 s ran out,
    # stalling every host of both. Controller 1 answers a crossing one BUSY at once, so every
    # command comes back GOOD, or BUSY on controller 0 (pair.md "Requests that cross")
    assert pair.c[1].command("sd_create", {"raid": 1, "slots": [6, 7], "mb": 8})["sd"] == 2   # controller 1's
    pair.c[1].command("lun_map", {"port": 0, "lun": 2, "sd": 2})
    sys.path.insert(0, str(harness.ROOT / "host"))
    from raidboard import proto
    verify = "2f000000000000080000"    # VERIFY(10) of 1 MiB: a while on the owner, no data back
    got = {0: [], 1: []}
    failed = []
    done = threading.Event()

    def ask(n, lun):          # SD0 is controller 0's, SD2 controller 1's: the other one runs it
        try:
            with proto.Link("socket://%s:%d" % pair.c[n].console, timeout=30) as link:
                while (len(got[n]) < 100 or not done.is_set()) and not failed:
                    got[n].append(link.request("cdb", {"port": 0, "lun": lun, "cdb": verify})["status"])
                    # controller 0 goes on until one of its own crossed (most do: pair.md)
                    if n == 0 and len(got[0]) >= 100 and (8 in got[0] or len(got[0]) >= 3000):
                        done.set()
        except Exception as e:
            failed.append("controller %d's console: %r" % (n, e))
        finally:
            if n == 0:
                done.set()
    threads = [threading.Thread(target=ask, args=(0, 2)), threading.Thread(target=ask, args=(1, 0))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seen = {n: {st: got[n].count(st) for st in set(got[n])} for n in (0, 1)}     # status: how many
    assert not failed, failed
    assert set(got[1]) == {0}, seen                 # controller 1's always go through
    assert set(got[0]) == {0, 8}, seen              # controller 0's: GOOD, or BUSY where they crossed
    assert not [t for t in events(pair.c[0]) + events(pair.c[1]) if "PARTNER" in t and "LOST" in t]


def test_a_cut_link_makes_controller_1_stand_down_and_no_drive_is_written_by_both(pair):
    assert pair.c[1].command("sd_create", {"raid": 1, "slots": [6, 7], "mb": 8})["sd"] == 2   # controller 1's
    pair.c[1].command("lun_map", {"port": 0, "lun": 2, "sd": 2})
    a, b = host(pair, 0), host(pair, 1)
    assert b.write(2, 0, b"1" * 512)["status"] == 0
    pair.c[0].command("pair_link", {"state": "down"})
    st0 = pair.wait(0, lambda s: s["serving"] == [0, 1], "took over")
    st1 = pair.c[1].command("pair_status")
    assert st1["mode"] == "STOOD DOWN" and st1["serving"] == []
    frozen = st1["disk_writes"]
    for lun in (0, 2):                          # every drive, through both controllers' addresses
        for n in (0, 1):
            assert host(pair, n).write(lun, 8, b"w" * 512)["status"] == 0
    assert pair.c[1].command("pair_status")["disk_writes"] == frozen
    assert any("STANDS DOWN" in t for t in events(pair.c[1]))
    assert any("stood down after the link was lost" in t for t in events(pair.c[0]))
    assert st0["partner"] == "LINK LOST"
    # nor through the console of the one that stood down (it serves nothing: 02/04/0B, standby)
    w = bytes([0x2A, 0, 0, 0, 0, 8, 0, 0, 1, 0])
    r = pair.c[1].command("cdb", {"cdb": w.hex(), "data": (b"c" * 512).hex(), "port": 0, "lun": 0})
    sense = bytes.fromhex(r["sense"])
    assert r["status"] == 2 and (sense[2] & 0x0F, sense[12], sense[13]) == (2, 0x04, 0x0B), r
    assert pair.c[1].command("pair_status")["disk_writes"] == frozen


def test_a_controller_restarted_beside_one_that_stood_down_serves_both_whether_the_link_heals_or_not(pair):
    # the survivor of a cut link is restarted; the one that stood down lives on, serving nothing
    pair.c[1].command("pair_link", {"state": "down"})     # held by controller 1: it stays cut
    pair.wait(0, lambda s: s["serving"] == [0, 1], "took over")
    pair.kill(0)
    pair.restart(0)                                        # not heard: taken over, never reset
    st = pair.wait(0, lambda s: s["serving"] == [0, 1], "serving both")
    assert st["partner"] == "LINK LOST" and pair.c[1].proc.poll() is None
    pair.c[1].command("pair_link", {"state": "up"})
    pair.kill(0)
    pair.restart(0)                                        # the link heals: they meet
    st = pair.wait(0, lambda s: s["serving"] == [0, 1] and s["partner"] == "UP", "met, serving both")
    assert pair.c[1].command("pair_status")["serving"] == []
    assert host(pair, 1).write(0, 8, b"m" * 512)["status"] == 0


def test_a_simplex_board_has_no_pair_commands(board):
    import raidboard.proto as proto
    with proto.Link("socket://%s:%d" % board.console) as link:
        with pytest.raises(proto.BoardError) as e:
            link.request("pair_status", {})
    assert e.value.code == "NOT_A_PAIR"


def test_write_back_data_is_in_the_partners_memory_and_survives_the_owners_death(pair):
    pair.c[1].command("sd_policy", {"sd": 0, "wb": True})          # run on SD0's owner, controller 0
    assert pair.c[0].command("sd_list")["drives"][0]["wb"] is True
    a = host(pair, 1)
    data = os.urandom(65536)
    assert a.write(0, 2048, data)["status"] == 0                    # forwarded, cached, mirrored
    assert os.path.getsize(pair.state / "c1" / "mirror.journal") > len(data)
    pair.kill(0)                                                     # dirty lines die with it
    pair.wait(1, lambda s: s["serving"] == [0, 1], "took over")
    replayed = [t for t in events(pair.c[1]) if "PARTNER'S WRITE-BACK DATA REPLAYED" in t]
    assert replayed and not replayed[0].startswith("PAIR: PARTNER'S WRITE-BACK DATA REPLAYED: 0 records")
    assert host(pair, 0).read(0, 2048, 128)["data"] == data
    assert os.path.getsize(pair.state / "c0" / "cache.journal") == 0    # cannot be applied twice
    # the survivor writes back alone (no copy anywhere else), then hands SD0 back destaged
    more = os.urandom(65536)
    assert host(pair, 1).write(0, 4096, more)["status"] in (0, 2)
    assert host(pair, 1).write(0, 4096, more)["status"] == 0
    pair.restart(0)
    pair.wait(1, lambda s: s["serving"] == [1] and s["partner"] == "UP", "gave back")
    b = host(pair, 0)
    assert b.read(0, 2048, 128)["data"] == data and b.read(0, 4096, 128)["data"] == more


def test_the_backup_lun_is_read_from_the_disks_by_the_partner_with_every_exception_mirrored(pair):
    a, b = host(pair, 0), host(pair, 1)
    old = os.urandom(65536)
    assert a.write(0, 0, old)["status"] == 0
    pair.c[0].command("snapshot_start", {"sd": 0})
    assert pair.c[1].command("pair_status")["snapshot_follower"] is True
    for lba in range(0, 128, 8):                     # first writes: the chunk copied, mirrored
        assert a.write(0, lba, b"n" * 4096)["status"] == 0
    reads = [pair.c[n].command("pair_status")["disk_reads"] for n in (0, 1)]
    assert b.read(1, 0, 128)["data"] == old           # through controller 1 ...
    after = [pair.c[n].command("pair_status")["disk_reads"] for n in (0, 1)]
    assert after[0] == reads[0] and after[1] > reads[1]      # ... from the disks, by controller 1
    assert b.read(0, 0, 128)["data"] == b"n" * 65536
    # the end of the snapshot reaches the backup LUN on both controllers
    pair.c[1].command("snapshot_stop")
    for h in (a, b):
        r = h.read(1, 0, 1)
        assert r["status"] == 2 and r["sense"][2] & 0x0F == 2


def test_a_reserved_backup_lun_is_read_through_its_owner_so_the_reservation_holds(pair):
    # the partner reads the backup LUN from the disks itself, but not while the snapshot's owner
    # holds a reservation of it: then its reads go to the owner, which checks the reservation
    a, b = host(pair, 0), host(pair, 1, name=I.INITIATOR + ":other")
    old = os.urandom(65536)
    assert a.write(0, 0, old)["status"] == 0
    pair.c[0].command("snapshot_start", {"sd": 0})
    assert b.read(1, 0, 128)["data"] == old                                  # served by controller 1
    assert a.command(1, bytes([0x16, 0, 0, 0, 0, 0]))["status"] == 0          # RESERVE(6) on the owner
    assert b.read(1, 0, 128)["status"] == 0x18                                # RESERVATION CONFLICT
    assert a.read(1, 0, 128)["data"] == old                                  # the holder reads on
    reads = pair.c[0].command("pair_status")["disk_reads"]
    assert a.command(1, bytes([0x17, 0, 0, 0, 0, 0]))["status"] == 0          # RELEASE(6)
    assert b.read(1, 0, 128)["data"] == old
    assert pair.c[0].command("pair_status")["disk_reads"] == reads           # controller 1 read it again
    # a reservation that ends with its holder's session is heard of too
    assert a.command(1, bytes([0x16, 0, 0, 0, 0, 0]))["status"] == 0
    assert b.read(1, 0, 128)["status"] == 0x18
    a.close()
    deadline = time.time() + 10
    while b.read(1, 0, 128)["status"] != 0:
        assert time.time() < deadline, "the reservation outlived its holder's session"
        time.sleep(0.05)


def test_first_writes_with_a_write_back_log_drive_mirror_both_and_keep_the_backup_exact(pair):
    # the log's cache goes to the partner during the copy, so the run of exceptions goes after it
    a, b = host(pair, 0), host(pair, 1)
    old = os.urandom(4 * 65536)
    assert a.write(0, 0, old)["status"] == 0
    pair.c[0].command("sd_policy", {"sd": 1, "wb": True})
    pair.c[0].command("snapshot_start", {"sd": 0})
    for lba in range(0, 512, 128):
        assert a.write(0, lba + 8, b"w" * 4096)["status"] == 0
    assert b.read(1, 0, 512)["data"] == old              # forwarded to the owner: its cache has the log
    assert a.read(1, 0, 512)["data"] == old
    assert pair.c[0].command("snapshot_status")["exceptions"] == 4
    assert not [t for t in events(pair.c[0]) if "failed" in t.lower()]


def test_configurations_changed_apart_are_a_reported_conflict_not_a_merge(pair):
    pair.kill(1)
    pair.wait(0, lambda s: s["serving"] == [0, 1], "took over")
    pair.c[0].command("lun_map", {"port": 0, "lun": 6, "sd": 0})       # changed on 0 alone
    pair.kill(0)
    pair.restart(1)                                                  # 1 boots alone: serves both
    pair.c[1].command("lun_map", {"port": 0, "lun": 7, "sd": 0})       # changed on 1 alone
    pair.restart(0)
    pair.wait(1, lambda s: s["partner"] == "UP" and s["serving"] == [1], "met again")
    for n in (0, 1):
        assert any("CONFIGURATION CONFLICT" in t for t in events(pair.c[n])), (n, events(pair.c[0]), events(pair.c[1]))
    lun_maps = [pair.c[n].command("nvram_dump")["lun_map"] for n in (0, 1)]
    assert lun_maps[0] == lun_maps[1]                                # controller 0's, on both
    assert {"port": 0, "lun": 6, "sd": 0} in lun_maps[1] and {"port": 0, "lun": 7, "sd": 0} not in lun_maps[1]
    assert list((pair.state / "c1").glob("nvram.conflict-*.bin"))         # 1's own, kept aside


def frame(kind, seq, payload):
    """One back-end link frame (firmware/endpoints/link/linkproto.md)."""
    words = payload + bytes(-len(payload) % 4)
    s1 = s2 = 0
    for (w,) in struct.iter_unpack("<I", words):
        s1 = (s1 + w) & 0xFFFFFFFF
        s2 = (s2 + s1) & 0xFFFFFFFF
    head = struct.pack("<2sBBIIII", b"RL", 2, kind, seq, 0, len(payload), s1 ^ ((s2 << 16 | s2 >> 16) & 0xFFFFFFFF))
    return head + struct.pack("<I", zlib.crc32(head)) + payload


def test_a_stranger_on_the_back_end_link_cannot_join_nor_change_the_configuration(pair):
    pair.kill(0)
    pair.wait(1, lambda s: s["serving"] == [0, 1], "took over")
    gen = pair.c[1].command("nvram_dump")["generation"]
    host_, port = pair.d["link"].rsplit(":", 1)
    hello = json.dumps({"controller": 0, "pid": os.getpid(), "generation": gen + 50, "image": 0,
                        "serving": [], "mode": "ACTIVE", "agreed": -1, "nonce": "00" * 16}).encode()
    with socket.create_connection((host_, int(port)), timeout=10) as s:
        s.sendall(frame(1, 1, hello) + frame(25, 2, b"\0" * 32) + frame(16, 3, b"\xff" * 3173))
        s.settimeout(10)
        try:
            while s.recv(65536):
                pass                                   # until the board drops the connection
        except OSError:
            pass
    st = pair.c[1].command("pair_status")
    assert st["serving"] == [0, 1] and st["partner"] == "FAILED"
    assert pair.c[1].command("nvram_dump")["generation"] == gen
    assert any("FAILED TO PROVE THE PAIR KEY" in t for t in events(pair.c[1]))
    assert host(pair, 0).read(0, 0, 1)["status"] == 0


def test_a_fig8_copy_running_on_a_killed_controller_continues_on_the_survivor(tmp_path):
    pair = Pair(tmp_path, populated_slots=12)
    try:
        c0, c1 = pair.c
        assert c0.command("sd_create", {"raid": 0, "slots": [6, 7, 8]})["sd"] == 2     # controller 0's
        a = host(pair, 0)
        old = os.urandom(65536)
        assert a.write(0, 1024, old)["status"] == 0
        c0.command("snapshot_start", {"sd": 0})
        assert a.write(0, 1024, os.urandom(65536))["status"] == 0       # after the point in time
        c0.command("lop_start", {"op": "copy", "sd": 0, "to": 2, "rate": 1})
        pair.kill(0)
        pair.wait(1, lambda s: s["serving"] == [0, 1], "took over")
        assert any("COPY" in t and "RESUMED" in t and "FAILOVER" in t for t in events(c1)), events(c1)
        c1.command("lop_start", {"op": "rate", "rate": 100})
        deadline = time.time() + 120
        while any(op["state"] == "RUNNING" for op in c1.command("lop_status")["lops"]):
            assert time.time() < deadline, c1.command("lop_status")
            time.sleep(0.2)
        assert [op["state"] for op in c1.command("lop_status")["lops"]] == ["COMPLETED"]
        c1.command("lun_map", {"port": 0, "lun": 2, "sd": 2})
        assert host(pair, 1).read(2, 1024, 128)["data"] == old             # the image at initiate
    finally:
        pair.kill()


def test_a_long_operation_moves_with_its_drive_at_failback(pair):
    pair.kill(0)
    pair.wait(1, lambda s: s["serving"] == [0, 1], "took over")
    pair.c[1].command("lop_start", {"op": "check", "sd": 0, "rate": 1})      # runs on the survivor
    pair.restart(0)
    pair.wait(1, lambda s: s["serving"] == [1], "gave back")
    assert any("CHECK" in t and "HANDED TO CONTROLLER 0" in t for t in events(pair.c[1]))
    assert any("RESUMED" in t and "AFTER FAILBACK" in t for t in events(pair.c[0]))
    assert [op["state"] for op in pair.c[0].command("lop_status")["lops"]] == ["RUNNING"]
    assert not any(op["state"] == "RUNNING" for op in pair.c[1].command("lop_status")["lops"])


def test_an_overflow_reaches_the_backup_lun_on_both_controllers(pair):
    c0, c1 = pair.c
    for port in (0, 1):
        c1.command("lun_unmap", {"port": port, "lun": 1})
    c1.command("log_clear", {"sd": 1})                          # a log of few, large chunks
    c1.command("log_set", {"sd": 1, "chunk_kb": 256})
    for port in (0, 1):
        c1.command("lun_map", {"port": port, "lun": 1, "sd": 1})
    capacity = c0.command("snapshot_status")["capacity"]
    a, b = host(pair, 0), host(pair, 1)
    c1.command("snapshot_start", {"sd": 0})
    for chunk in range(capacity + 1):                          # one first write a chunk: the last overflows
        assert a.write(0, chunk * 512, b"f" * 512)["status"] == 0
    for h in (a, b):                                           # each controller says it once ...
        r = h.read(1, 0, 1)
        assert r["status"] == 2 and r["sense"][2] & 0x0F == 9 and r["sense"][12:14] == b"\x82\x00"
        r = h.read(1, 0, 1)                                    # ... then NOT READY
        assert r["status"] == 2 and r["sense"][2] & 0x0F == 2
    assert c1.command("snapshot_status")["last"]["how"] == "overflow"
