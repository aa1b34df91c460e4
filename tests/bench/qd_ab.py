"""A/B of two firmware trees at queue depth: the board of tree A, the board of tree B and tgtd
serving a file of the same size, driven by rbload (bench_qd.py) in interleaved rounds (A, B, tgtd,
A, B, tgtd, ...), each board's IOPS as a ratio to tgtd's of the same round, and B/A. Not run by
`make bench` (bench_qd.py compares the board with tgtd); for deciding whether a change is kept.

Usage: qd_ab.py TREE_A TREE_B PARTS [ROUNDS [SECONDS]]
  TREE_*: a checkout of this repository (its firmware/ is booted), e.g. a `git worktree` of an
  older commit; PARTS: comma-separated OP:PATTERN:BYTES:QD (read:seq:65536:8), a part ending in
  `:two` measures two sessions (one per host port) against one instead."""
import statistics
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
from bench_iscsi import Tgtd  # noqa: E402


def main(argv):
    if len(argv) < 3 or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    trees, parts = {"A": argv[0], "B": argv[1]}, argv[2].split(",")
    rounds = int(argv[3]) if len(argv) > 3 else 5
    secs = float(argv[4]) if len(argv) > 4 else 1.0
    tmp = Path(tempfile.mkdtemp(prefix="qd-ab-"))
    exe, why = Q.build(tmp)
    if exe is None:
        print("qd_ab: " + why, file=sys.stderr)
        return 1
    boards, tgt = {}, None
    try:
        for name, root in trees.items():
            harness.ROOT = Path(root).resolve()
            (tmp / name).mkdir()
            boards[name] = I.BootedBoard.boot(tmp / name, disk_mb=Q.DISK_MB, **harness.default_memory())
        c = I.Initiator(*boards["B"].portals[0])
        c.login()
        size = (int.from_bytes(c.command(0, bytes([0x25]) + bytes(9), read_len=8)["data"][:4], "big") + 1) * 512
        c.logout()
        tgt = Tgtd(str(tmp / "tgt.img"), size)
        one = {k: [b.url(0)] for k, b in boards.items()}
        one["T"] = [tgt.url]
        two = {k: [b.url(0), b.url(0, port=1)] for k, b in boards.items()}
        two["T"] = [tgt.url, tgt.url]
        for urls in one.values():      # every read reads written data
            Q.load(exe, urls, "write", "seq", 1 << 20, 8, count=size >> 20)
        for part in parts:
            op, pattern, bs, qd = part.split(":")[:4]
            got = {k: [] for k in one}
            for _ in range(rounds):
                for k in ("A", "B", "T"):
                    r = Q.load(exe, one[k], op, pattern, int(bs), int(qd), secs)["iops"]
                    if part.endswith(":two"):
                        r = Q.load(exe, two[k], op, pattern, int(bs), int(qd), secs)["iops"] / r
                    got[k].append(r)
            if part.endswith(":two"):
                print("%s scaling: A %.2f  B %.2f  tgtd %.2f" % ((part,) + tuple(statistics.median(got[k]) for k in "ABT")))
                continue
            ra = [a / t for a, t in zip(got["A"], got["T"])]
            rb = [b / t for b, t in zip(got["B"], got["T"])]
            print("%s A %.3f (%.2f-%.2f)  B %.3f (%.2f-%.2f)  B/A %.3f  tgtd %.0f IOPS" % (
                part, statistics.median(ra), min(ra), max(ra), statistics.median(rb), min(rb), max(rb),
                statistics.median([b / a for a, b in zip(got["A"], got["B"])]), statistics.median(got["T"])), flush=True)
    finally:
        if tgt is not None:
            tgt.stop()
        for b in boards.values():
            b.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
