"""Quick side-by-side iscsi-perf rounds (board vs tgtd, interleaved) for transport tuning.
Usage: iscsi_quick.py [rounds] [seconds]. Not run by `make bench` (bench_iscsi.py is)."""
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_iscsi as B   # noqa: E402


def main(rounds=3, seconds=3):
    tmp = Path(tempfile.mkdtemp(prefix="iscsi-quick-"))
    board = tgt = None
    try:
        (tmp / "board").mkdir()
        board = B.I.BootedBoard.boot(tmp / "board", disk_mb=B.DISK_MB, **B.default_memory())
        size = 2 * B.DISK_MB << 20
        tgt = B.Tgtd(str(tmp / "tgt.img"), size)
        bs, ts = [], []
        for _ in range(rounds):
            bs.append(B.iscsi_perf(board.url(0), seconds))
            ts.append(B.iscsi_perf(tgt.url, seconds))
        print("board", bs, "tgtd", ts, "ratio(best) %.3f ratio(median) %.3f"
              % (max(bs) / max(ts), sorted(bs)[len(bs) // 2] / sorted(ts)[len(ts) // 2]))
    finally:
        if tgt is not None:
            tgt.stop()
        if board is not None:
            board.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    a = [int(x) for x in sys.argv[1:]]
    main(*a)
