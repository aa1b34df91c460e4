"""Every file of the state directory damaged in turn (random bytes over it), then a boot: the board
comes up, answers on its console and iSCSI portals, and its event log names what it could not use.
The state comes from a real run: a write-back primary, a snapshot, a copy in progress, a kill -9."""
import os
import random
import shutil
import time

import pytest

import test_iscsi_initiator as I

INITIATE = bytes([0x20, 0, 0x60, 0, 0, 0, 0, 0, 0, 0])
COPY_TO_SD2 = bytes([0x20, 0, 0x44, 0x01, 1, 2, 0, 0, 2, 0])

# file -> what the event log must say about it
EXPECTED = {
    "nvram.bin": "NV MEMORY UNUSABLE",
    "slots.state": "not a slot state file",
    "cache.journal": "damaged",
    "intent.log": "damaged",
    "lop.state": "LONG OPERATION STATE UNREADABLE",
    "lop.track": "CHANGE TRACKING RESET",
}


def w10(lba, n):
    return bytes([0x2A, 0]) + lba.to_bytes(4, "big") + bytes([0]) + n.to_bytes(2, "big") + bytes([0])


@pytest.fixture(scope="module")
def killed_board(tmp_path_factory):
    b = I.BootedBoard.boot(tmp_path_factory.mktemp("damage"), disk_mb=16, populated_slots=10)
    b.command("sd_create", {"raid": 0, "slots": [6, 7, 8]})
    b.command("lun_map", {"port": 0, "lun": 2, "sd": 2})     # a host copies only onto a drive it sees
    b.command("sd_policy", {"sd": 0, "wb": True})
    c = I.Initiator(*b.portals[0])
    c.login()
    for i in range(16):
        assert c.command(0, w10(i * 256, 8), os.urandom(4096))["status"] == 0
    assert c.command(0, INITIATE)["status"] == 0
    assert c.command(0, COPY_TO_SD2, read_len=2)["data"] == b"\0\0"
    for i in range(16):
        assert c.command(0, w10(i * 512 + 7, 8), os.urandom(4096))["status"] == 0
    b.b.kill()
    keep = b.b.state.parent / "kept"
    keep.mkdir()
    for f in EXPECTED:
        assert (b.b.state / f).exists(), f
        shutil.copy(b.b.state / f, keep / f)
    yield b, keep
    b.b.kill()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_damaged_state_file_is_named_and_the_board_boots(killed_board, name):
    b, keep = killed_board
    for f in EXPECTED:
        for extra in ("", ".bad", ".bad0"):
            if extra and (b.b.state / (f + extra)).exists():
                os.remove(b.b.state / (f + extra))
        shutil.copy(keep / f, b.b.state / f)
    rng = random.Random(name)
    size = max(os.path.getsize(keep / name), 4096)
    (b.b.state / name).write_bytes(bytes(rng.getrandbits(8) for _ in range(size)))
    b.b.boot(timeout=30)
    try:
        assert b.command("status", {})["model"] == "DAC960SX"
        texts = [e["text"] for e in b.command("events", {"n": 64})["events"]]
        assert any(EXPECTED[name] in t for t in texts), texts
        c = I.Initiator(*b.b.portals[0])          # (this boot's ephemeral port)
        c.login()
        assert c.command(0, bytes(6))["status"] in (0, 2)       # TEST UNIT READY answers
        c.logout()
    finally:
        b.b.kill()
        time.sleep(0.1)
