"""The board's command queue seen by a real initiator (libiscsi, through tests/bench/rbload.c): a
storm of 1 MiB writes 32 deep on one session, far past the board's four transfer buffers, is held
and served in turn — no BUSY, no TASK SET FULL, no error — and every block holds what was written."""
import struct
import sys
from pathlib import Path

import pytest

import test_iscsi_initiator as I
from harness import in_ci, need_tool

sys.path.insert(0, str(Path(__file__).parent / "bench"))
import bench_qd  # noqa: E402

MIB = 1 << 20


def rbload(tmp_path):
    need_tool("cc", "gcc")
    exe, why = bench_qd.build(tmp_path)
    if exe is None:
        if in_ci():
            pytest.fail("rbload cannot be built: %s; .ci/run must install libiscsi-dev" % why)
        pytest.skip("rbload cannot be built: %s" % why)
    return exe


def test_a_1_mib_write_storm_32_deep_is_queued_not_refused_and_lands_whole(make_board, tmp_path):
    exe = rbload(tmp_path)
    board = I.BootedBoard(make_board(disk_mb=32))
    out = bench_qd.load(exe, [board.url(0)], "write", "seq", MIB, 32, count=96)
    assert out["commands"] == 96 and out["errors"] == 0
    assert out["busy"] == 0 and out["task_set_full"] == 0
    # rbload writes the same pattern everywhere: byte i of each MiB is (7i + 1) mod 256
    pattern = bytes((7 * i + 1) & 0xFF for i in range(MIB))
    c = I.Initiator(*board.portals[0])
    c.login()
    size = (int.from_bytes(c.command(0, bytes([0x25]) + bytes(9), read_len=8)["data"][:4], "big") + 1) * 512
    for lba in range(0, min(size, 96 * MIB) // 512, 2048):
        got = c.read(0, lba, 2048)
        assert got["status"] == 0 and got["data"] == pattern[:len(got["data"])], lba
    c.logout()


def _fire_writes(c, n, lba0, blocks=128):
    # n WRITE(16) of `blocks` blocks, each all in its command PDU (immediate data), sent one after
    # the other without waiting for an answer: the board has the next PDU at hand, so it hands the
    # writes to its I/O processor's thread and answers each once that has run it
    assert c.target_mrdsl >= blocks * 512 and int(c.params.get("FirstBurstLength", "0")) >= blocks * 512
    itts = []
    for i in range(n):
        itt = c.next_itt()
        b = I.bhs(0x01, 0x80 | 0x20 | 1, 0, itt, [(20, blocks * 512), (24, c.cmdsn), (28, c.expstatsn)])
        b[32:48] = struct.pack(">BBQIBB", 0x8A, 0, lba0 + i * blocks, blocks, 0, 0)
        c.send(b, bytes([i + 1]) * (blocks * 512))
        c.cmdsn += 1
        itts.append(itt)
    return itts


def test_task_management_is_answered_after_every_write_in_flight(make_board):
    # RFC 7143: the answers of the tasks a task management function covers come before its own
    board = I.BootedBoard(make_board(disk_mb=32))
    c = I.Initiator(*board.portals[0])
    c.login()
    itts = _fire_writes(c, 16, 0)
    tmf = c.next_itt()
    c.send(I.bhs(0x42, 0x80 | 2, 0, tmf, [(20, 0xFFFFFFFF), (24, c.cmdsn), (28, c.expstatsn)]))
    answered = []
    while True:
        r = c.recv()
        if r.op == 0x22:
            break
        assert r.op == 0x21 and r.bhs[3] == 0, r
        answered.append(r.u32(16))
    assert sorted(answered) == itts and r.bhs[2] == 0
    for i in range(16):                       # and each write is there
        assert c.read(0, i * 128, 128)["data"] == bytes([i + 1]) * (128 * 512)
    c.logout()


def test_a_host_that_vanishes_with_writes_in_flight_leaves_no_buffer_held(make_board, tmp_path):
    # 30 writes from one address fill its parking places; the host closes its socket without
    # reading an answer. Once the board has run them, every buffer is back: a 1 MiB storm 32 deep
    # from the same address is served without BUSY
    exe = rbload(tmp_path)
    board = I.BootedBoard(make_board(disk_mb=32))
    c = I.Initiator(*board.portals[0])
    c.login()
    _fire_writes(c, 30, 0)
    c.sock.close()
    board.command("status")                   # (a command runs once every chain given has)
    out = bench_qd.load(exe, [board.url(0)], "write", "seq", MIB, 32, count=64)
    assert out["errors"] == 0 and out["busy"] == 0 and out["task_set_full"] == 0
    assert board.alive()
