"""Long operations on a booted board: the copy of FIG. 8 through iSCSI (Tables 5-10 over the wire,
BUSY on the backup system drive), firmware killed with -9 during a copy, a rebuild, a consistency
check and an initialization (each must resume or say it was terminated, never claim a completed
copy with a wrong image), the line protocol `cdb` fallback, and the CLI's progress bar."""
import hashlib
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

import test_iscsi_initiator as I
from harness import answer

RAIDBOARD = str(Path(sys.executable).with_name("raidboard"))
INITIATE = bytes([0x20, 0, 0x60, 0, 0, 0, 0, 0, 0, 0])
LOP_STATUS = bytes([0x20, 0, 0x43, 0x01, 0, 0, 0, 0, 2, 0])
MIB = 1 << 20


def lop_start(src, dst):
    return bytes([0x20, 0, 0x44, 0x01, src, dst, 0, 0, 2, 0])


@pytest.fixture
def lboard(make_board):
    # 16 MiB disks, 10 slots: SD0 RAID 5 (48 MiB primary), SD1 RAID 1 LOG; SD2 RAID 0 over slots
    # 6-8 (48 MiB, the backup system drive) on LUN 2 of port 0; slot 9 unused
    b = I.BootedBoard(make_board(disk_mb=16, populated_slots=10))
    b.command("sd_create", {"raid": 0, "slots": [6, 7, 8]})
    b.command("lun_map", {"port": 0, "lun": 2, "sd": 2})
    return b


def login(b):
    c = I.Initiator(*b.portals[0])
    c.login()
    return c


def word(c, cdb, lun=0):
    r = c.command(lun, cdb, read_len=2)
    assert r["status"] == 0 and len(r["data"]) == 2, r
    return int.from_bytes(r["data"], "big")


def digest(c, lun, nbytes):
    h = hashlib.sha1()
    for off in range(0, nbytes, MIB):
        r = c.read(lun, off // 512, min(MIB, nbytes - off) // 512)
        assert r["status"] == 0, (lun, off, I.sense_key(r["sense"]))
        h.update(r["data"])
    return h.digest()


def fill(c, seed, nbytes):
    rnd = random.Random(seed)
    for off in range(0, nbytes, MIB):
        assert c.write(0, off // 512, rnd.randbytes(MIB))["status"] == 0


def reboot(b):
    b.b.kill()
    b.b.boot()
    b.portals = b.b.portals


def wait_status(b, pred, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        st = b.command("lop_status", {})
        if pred(st):
            return st
        time.sleep(0.1)
    raise AssertionError("lop_status never got there: %r" % st)


def test_copy_over_iscsi_with_writes_killed_midway_resumes_to_the_exact_image(lboard):
    b = lboard
    size = 48 * MIB
    c = login(b)
    fill(c, 1, size)
    image = digest(c, 0, size)
    assert word(c, LOP_STATUS) == 0x0105                 # no copy yet
    b.command("lop_start", {"op": "rate", "rate": 10})   # slow enough to be caught midway
    assert c.command(0, INITIATE)["status"] == 0
    assert word(c, lop_start(1, 2)) == 0x0000
    assert word(c, lop_start(1, 2)) == 0x0106
    assert word(c, LOP_STATUS) == 0x0000
    r = c.command(2, bytes([0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0]), read_len=512)
    assert r["status"] == 0x08                           # BUSY, the seed's step 4
    # the primary carries on while the copy runs
    rnd = random.Random(2)
    for i in range(20):
        assert c.write(0, rnd.randrange(0, size // 512 - 64), rnd.randbytes(32 * 1024))["status"] == 0
    st = wait_status(b, lambda s: s["lops"] and 5 <= s["lops"][0]["percent"])
    assert st["lops"][0]["state"] == "RUNNING" and st["lops"][0]["percent"] < 100
    reboot(b)
    c = login(b)
    assert word(c, LOP_STATUS) == 0x0000                 # resumed, not lost, not "completed"
    assert any("RESUMED" in e["text"] for e in b.command("events", {"n": 30})["events"])
    b.command("lop_start", {"op": "rate", "rate": 100})
    deadline = time.time() + 120
    while word(c, LOP_STATUS) == 0x0000 and time.time() < deadline:
        time.sleep(0.1)
    assert word(c, LOP_STATUS) == 0x0100
    assert digest(c, 2, size) == image
    assert b.command("snapshot_status")["state"] == "IDLE"
    # the line protocol's cdb command says the same (the transport-free path)
    r = b.command("cdb", {"port": 0, "lun": 0, "cdb": LOP_STATUS.hex()})
    assert r["status"] == 0 and r["data"] == "0100"


def test_repeated_kills_never_report_a_completed_copy_with_a_wrong_image(lboard):
    b = lboard
    size = 48 * MIB
    c = login(b)
    fill(c, 3, size)
    image = digest(c, 0, size)
    assert c.command(0, INITIATE)["status"] == 0
    # (the slowest rate: the copy must outlast four kills however fast the board moves it)
    b.command("lop_start", {"op": "rate", "rate": 1})
    assert word(c, lop_start(0, 2)) == 0
    rnd = random.Random(4)
    kills = 0
    while True:
        w = word(c, LOP_STATUS)
        assert w in (0x0000, 0x0100), hex(w)
        if w == 0x0100:
            break
        if kills == 4:
            b.command("lop_start", {"op": "rate", "rate": 100})
            time.sleep(0.2)
            continue
        time.sleep(rnd.uniform(0.3, 1.0))
        reboot(b)
        kills += 1
        c = login(b)
    assert kills == 4
    assert digest(c, 2, size) == image


def _kill_and_finish(b, op, sd):
    wait_status(b, lambda s: any(o["op"] == op and o["state"] == "RUNNING" and o["percent"] >= 3 for o in s["lops"]))
    reboot(b)
    st = b.command("lop_status", {"sd": sd})
    now = st["lops"][0]
    assert now["op"] == op and now["state"] in ("RUNNING", "COMPLETED"), now
    b.command("lop_start", {"op": "rate", "rate": 100})
    return wait_status(b, lambda s: s["lops"] and s["lops"][0]["state"] != "RUNNING")["lops"][0]


def test_rebuild_killed_midway_resumes_and_restores_redundancy(lboard):
    b = lboard
    size = 48 * MIB
    c = login(b)
    fill(c, 5, size)
    image = digest(c, 0, size)
    b.command("disk_fail", {"slot": 2})
    b.command("lop_start", {"op": "rate", "rate": 5})
    assert b.command("disk_replace", {"slot": 2})["rebuild"] == [0]     # automatic rebuild
    assert b.command("lop_status", {"sd": 0})["lops"][0]["state"] == "RUNNING"
    end = _kill_and_finish(b, "rebuild", 0)
    assert end["state"] == "COMPLETED", end
    assert {d["slot"]: d["state"] for d in b.command("disk_list")["disks"]}[2] == "online"
    b.command("disk_fail", {"slot": 0})                 # a different member
    c = login(b)
    assert digest(c, 0, size) == image
    texts = [e["text"] for e in b.command("events", {"n": 40})["events"]]
    assert any("REBUILD SD0 RESUMED" in t for t in texts) and any("REBUILD SD0 COMPLETED" in t for t in texts)


def test_check_and_init_killed_midway_resume(lboard):
    b = lboard
    b.command("lop_start", {"op": "rate", "rate": 5})
    b.command("lop_start", {"op": "check", "sd": 0})
    end = _kill_and_finish(b, "check", 0)
    assert end["state"] == "COMPLETED" and end["found"] == 0
    b.command("lop_start", {"op": "rate", "rate": 5})
    b.command("lop_start", {"op": "init", "sd": 2})
    end = _kill_and_finish(b, "init", 2)
    assert end["state"] == "COMPLETED"
    c = login(b)
    r = c.read(2, 0, 2048)
    assert r["status"] == 0 and r["data"] == bytes(MIB)


def test_cli_copy_with_progress_bar_and_json(lboard):
    b = lboard
    url = "socket://%s:%d" % tuple(b.b.console)
    b.command("snapshot_start", {"sd": 0})
    p = subprocess.run([RAIDBOARD, "--port", url, "lop", "start", "copy", "sd0", "--to", "sd2", "--force", "--wait",
                        "--interval", "0.1"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "%" in p.stderr + p.stdout
    p = subprocess.run([RAIDBOARD, "--port", url, "--json", "lop", "status"], capture_output=True, text=True, timeout=30)
    st = answer(p.stdout)
    assert st["copy_word"] == "0x0100" and st["lops"][0]["state"] == "COMPLETED" and st["lops"][0]["to"] == 2
    p = subprocess.run([RAIDBOARD, "--port", url, "lop", "start", "copy", "sd0", "--to", "sd2", "--force"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and "NO_SNAPSHOT" in p.stderr
