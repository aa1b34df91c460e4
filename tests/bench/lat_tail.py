"""The latency tail before and after the board's first garbage collection (firmware/README.md
"After a collection"): each tree's board is filled, taken through every part of the qd
bench (bench_qd.PARTS, SECONDS each), then runs ROUNDS rounds of 50,000 4 KiB random reads at
QD 1; each round prints p50, p99.9, max, the commands over 5 ms and the board's heap in use before
and after it (a drop: a collection came in the round). Not run by `make bench`.

Usage: lat_tail.py TREE [TREE ...] [--rounds N] [--seconds S]
  TREE: a checkout of this repository (its firmware/ is booted); the boards run side by side, their
  rounds interleaved."""
import sys
import tempfile
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
import bench_qd as Q  # noqa: E402
import harness  # noqa: E402
import test_iscsi_initiator as I  # noqa: E402


def main(argv):
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    rounds, secs = Q.arg(argv, "--rounds", 3), Q.arg(argv, "--seconds", 2.0, float)
    trees = [a for i, a in enumerate(argv) if not a.startswith("--") and (i == 0 or not argv[i - 1].startswith("--"))]
    tmp = Path(tempfile.mkdtemp(prefix="lat-tail-"))
    exe, why = Q.build(tmp)
    if exe is None:
        print("lat_tail: " + why, file=sys.stderr)
        return 1
    boards = []
    try:
        for n, root in enumerate(trees):
            harness.ROOT = Path(root).resolve()
            (tmp / str(n)).mkdir()
            boards.append(I.BootedBoard.boot(tmp / str(n), disk_mb=Q.DISK_MB, **harness.default_memory()))
        c = I.Initiator(*boards[0].portals[0])
        c.login()
        size = (int.from_bytes(c.command(0, bytes([0x25]) + bytes(9), read_len=8)["data"][:4], "big") + 1) * 512
        c.logout()
        for b in boards:               # every read reads written data
            Q.load(exe, [b.url(0)], "write", "seq", 1 << 20, 8, count=size >> 20)
        for name, op, pattern, bs, qd in Q.PARTS:
            for b in boards:
                Q.load(exe, [b.url(0)], op, pattern, bs, qd, secs)
        for r in range(rounds):
            for tree, b in zip(trees, boards):
                u0 = b.command("status")["heap"]["used"]
                out = Q.load(exe, [b.url(0)], "read", "rand", 4096, 1, count=Q.LAT_READS)
                u1 = b.command("status")["heap"]["used"]
                lat = out["lat_us"]
                print("%s round %d: p50 %s us, p99.9 %s us, max %s us, over 5 ms %d, heap %d -> %d%s" % (
                    tree, r + 1, lat["p50"], lat["p999"], lat["max"], out["stalls_over_5ms"], u0, u1,
                    " (collected)" if u1 < u0 else ""), flush=True)
    finally:
        for b in boards:
            b.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
