"""Long operations: the snapshot copy of FIG. 8 against the ceiling of the same bytes copied
file-to-file by the same micropython interpreter (`--rounds` N, default 5, interleaved: the ratio
of each round's times, median and range), and an incremental re-sync (claim 22) after 1 % of the
primary's chunks changed (other chunks each of `--rounds` rounds: the median and range of their
times) against the full copy's median time (goal <= 0.05).

One micropython process boots a controller (firmware code: controller, snapshot, lop) on a board
of `--lop-disk-mib` (default 64) MiB disks: primary SD0 = RAID 5 of 4 disks, log SD1 = RAID 1,
backup SD2 = RAID 0 of 3 disks; it prints `FIG name value` lines.
"""
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import sys, os, time
sys.path.insert(0, %(fw)r)
sys.path.insert(0, %(tfw)r)
import fw
from lop import scheduler
D = %(dir)r
b = fw.small_board(disk_mb=%(disk)d, buffer_kb=4096, slots=10)
ctl = fw.boot(state=D + "/state", b=b)
ctl.io_thread()          # the I/O processor's thread, as the firmware starts it with its portals
ctl.command("sd_create", {"raid": 0, "slots": [6, 7, 8]})
P = ctl.drives[0]
blocks = P.blocks
IO = 512
buf = bytearray(IO * 512)
mv = memoryview(buf)
for lba in range(0, blocks, IO):
    mv[0:16] = lba.to_bytes(16, "little")
    P.write(lba, mv[:min(IO, blocks - lba) << 9])
total = blocks * 512

def us(t0):
    # (microseconds: an incremental copy takes a few milliseconds)
    return time.ticks_diff(time.ticks_us(), t0)

# the ceiling: the same bytes, file to file, same interpreter and I/O size, into a sparse
# pre-sized file as the disks are
src = D + "/plain-src.bin"
f = open(src, "wb")
for i in range(0, total, len(buf)):
    f.write(buf)
f.close()
f = open(D + "/plain-dst.bin", "wb")
f.seek(total - 1)
f.write(b"\0")
f.close()

# rounds interleaved (copy, file copy, copy, ...): the machine's page cache and write-back weigh
# on both alike; the first round of each also fills its sparse files
fulls = []
plains = []
for r in range(%(rounds)d):
    ctl.execute(("b", 0, 0), fw.cdb(0x20, 0, 0x60, 0, 0, 0, 0, 0, 0, 0))
    ctl.command("lop_start", {"op": "copy", "sd": 1, "to": 2, "full": True})
    t0 = time.ticks_us()
    scheduler.finish_all(ctl.lop_mgr)
    fulls.append(max(1, us(t0)))
    r = ctl.command("lop_status", {})["lops"][0]
    assert r["state"] == "COMPLETED" and r["mode"] == "full", r
    t0 = time.ticks_us()
    fw.copy_file(src, D + "/plain-dst.bin", mv, "r+b")
    plains.append(max(1, us(t0)))

def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if len(xs) %% 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2

ratios = [p / f for p, f in zip(plains, fulls)]
full = median(fulls)
print("FIG lop_full_copy_mbps", total / 1048576 / (full / 1e6))
print("FIG lop_plain_file_copy_mbps", total / 1048576 / (median(plains) / 1e6))
print("FIG lop_full_copy_vs_file_copy_ratio", median(ratios))
print("FIG lop_full_copy_vs_file_copy_ratio_min", min(ratios))
print("FIG lop_full_copy_vs_file_copy_ratio_max", max(ratios))

# rounds of: 1 %% of the tracker's chunks change (others each round), then snapshot + copy to
# the same backup drive, against the full copy's median
t = ctl.lop_mgr.tracker
nchunks = t.nchunks
k = max(1, nchunks // 100)
small = memoryview(bytearray(4096))
incs = []
for r in range(%(rounds)d):
    for i in range(k):
        c = (i * 7919 + r * 13) %% nchunks
        ctl.execute(("b", 0, 0), fw.write10(c * t.cb, 8), small)      # a host write to P
    ctl.execute(("b", 0, 0), fw.cdb(0x20, 0, 0x60, 0, 0, 0, 0, 0, 0, 0))
    ctl.command("lop_start", {"op": "copy", "sd": 1, "to": 2})
    t0 = time.ticks_us()
    scheduler.finish_all(ctl.lop_mgr)
    incs.append(us(t0))
    st = ctl.command("lop_status", {})["lops"][0]
    assert st["mode"] == "incremental" and st["chunks_copied"] == k, st
print("FIG lop_incremental_chunks", k)
print("FIG lop_incremental_ms", median(incs) / 1000)
print("FIG lop_full_copy_ms", full / 1000)
print("FIG lop_incremental_vs_full_ratio", median(incs) / full)
print("FIG lop_incremental_vs_full_ratio_min", min(incs) / full)
print("FIG lop_incremental_vs_full_ratio_max", max(incs) / full)
"""


def run(emit, argv):
    disk = 64
    if "--lop-disk-mib" in argv:
        disk = int(argv[argv.index("--lop-disk-mib") + 1])
    rounds = int(argv[argv.index("--rounds") + 1]) if "--rounds" in argv else 5
    mp = str(Path(sys.executable).with_name("micropython"))
    d = tempfile.mkdtemp(prefix="bench-lop-")
    try:
        os.mkdir(d + "/state")
        script = SCRIPT % {"fw": str(ROOT / "firmware"), "tfw": str(ROOT / "tests" / "firmware"), "dir": d,
                           "disk": disk, "rounds": rounds}
        env = dict(os.environ, RB_ROOT=str(ROOT), RB_TMP=d)
        p = subprocess.run([mp, "-X", "heapsize=32M", "-c", script], capture_output=True, text=True,
                           timeout=1200, env=env, cwd=str(ROOT / "tests" / "firmware"))
        if p.returncode != 0:
            raise RuntimeError("bench_lop failed:\n" + p.stdout[-2000:] + p.stderr[-3000:])
        units = {"mbps": "MB/s", "ratio": "x", "ms": "ms", "chunks": "chunks"}
        for line in p.stdout.splitlines():
            if line.startswith("FIG "):
                _, name, value = line.split()
                emit(name, float(value), units[name.replace("_min", "").replace("_max", "").rsplit("_", 1)[1]])
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    def _emit(name, value, unit):
        print("BENCH %s %s %s" % (name, ("%.4g" % value) if isinstance(value, float) else value, unit))
    run(_emit, sys.argv[1:])
