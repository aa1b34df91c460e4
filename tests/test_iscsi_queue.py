"""The board's command queue seen by a real initiator (libiscsi, through tests/bench/rbload.c): a
storm of 1 MiB writes 32 deep on one session, far past the board's four transfer buffers, is held
and served in turn — no BUSY, no TASK SET FULL, no error — and every block holds what was written."""
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
