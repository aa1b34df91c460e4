"""Sequential throughput of RAID 0 and RAID 5 system drives in the firmware, against the ceiling: the
same bytes copied file-to-file by the same micropython interpreter, measured in the same run.

Runs one micropython process (the board's code: iop, raid) that prints `FIG name value` lines.
Options (argv): --raid-mib N (bytes moved per figure, default 128), --io-kib N (I/O size, default
1024), --stripe-kib N (stripe unit, default 64).
"""
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import sys, time, os
sys.path.insert(0, %(fw)r)
from iop import IOP
from raid import SystemDrive, RAID0, RAID5
D = %(dir)r
MIB = %(mib)d
IO = %(io)d * 1024
STRIPE = %(stripe)d * 2
DISK = 64 * 2048 if MIB <= 128 else (MIB // 2 + 16) * 2048
names = ["0:%%d" %% i for i in range(8)]
iop = IOP(D, 8, DISK, names)
buf = bytearray(os.urandom(IO))
mv = memoryview(buf)
total = MIB * 1024 * 1024
blk = IO // 512

def mbps(t0):
    return total / 1048576 / (time.ticks_diff(time.ticks_us(), t0) / 1e6)

def seq(sd, name):
    t0 = time.ticks_us()
    for lba in range(0, total // 512, blk):
        sd.write(lba, mv)
    print("FIG", name + "_seq_write_mbps", mbps(t0))
    t0 = time.ticks_us()
    for lba in range(0, total // 512, blk):
        sd.read(lba, mv)
    print("FIG", name + "_seq_read_mbps", mbps(t0))

r0 = SystemDrive(0, RAID0, [(i, 0, DISK) for i in range(4)], STRIPE, iop)
seq(r0, "raid0")
r5 = SystemDrive(1, RAID5, [(i, 0, DISK) for i in range(4, 8)], STRIPE, iop)
seq(r5, "raid5")
iop.fail(5)
t0 = time.ticks_us()
for lba in range(0, total // 512, blk):
    r5.read(lba, mv)
print("FIG raid5_degraded_seq_read_mbps", mbps(t0))
iop.close()

# the ceiling: the same bytes file to file, same interpreter, same I/O size
src = D + "/copy-src.bin"
f = open(src, "wb")
for i in range(total // IO):
    f.write(mv)
f.close()
t0 = time.ticks_us()
fi = open(src, "rb")
fo = open(D + "/copy-dst.bin", "wb")
while True:
    n = fi.readinto(mv)
    if not n:
        break
    fo.write(mv[:n])
fi.close()
fo.close()
print("FIG file_copy_mbps", mbps(t0))
"""


def _opt(argv, name, default):
    if name in argv:
        return int(argv[argv.index(name) + 1])
    return default


def run(emit, argv=()):
    argv = list(argv)
    mib = _opt(argv, "--raid-mib", 128)
    io = _opt(argv, "--io-kib", 1024)
    stripe = _opt(argv, "--stripe-kib", 64)
    exe = Path(sys.executable).with_name("micropython")
    exe = str(exe) if exe.exists() else "micropython"
    d = tempfile.mkdtemp(prefix="bench-raid-")
    try:
        script = Path(d) / "bench.py"
        script.write_text(SCRIPT % {"fw": str(ROOT / "firmware"), "dir": d, "mib": mib, "io": io,
                                    "stripe": stripe})
        proc = subprocess.run([exe, "-X", "heapsize=16M", str(script)], capture_output=True, text=True,
                              timeout=1800)
        if proc.returncode:
            raise RuntimeError("bench script failed:\n" + proc.stdout + proc.stderr)
        figs = {}
        for line in proc.stdout.splitlines():
            w = line.split()
            if len(w) == 3 and w[0] == "FIG":
                figs[w[1]] = float(w[2])
        for name in ("raid0_seq_write_mbps", "raid0_seq_read_mbps", "raid5_seq_write_mbps",
                     "raid5_seq_read_mbps", "raid5_degraded_seq_read_mbps", "file_copy_mbps"):
            emit(name, figs[name], "MB/s")
        ceiling = figs["file_copy_mbps"]
        for name in ("raid0_seq_write", "raid0_seq_read", "raid5_seq_write", "raid5_seq_read"):
            emit(name + "_ratio", figs[name + "_mbps"] / ceiling, "x_file_copy")
        emit("raid_bench_io_kib", io, "KiB")
        emit("raid_bench_stripe_kib", stripe, "KiB")
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    def _emit(name, value, unit):
        print("BENCH %s %s %s" % (name, ("%.4g" % value) if isinstance(value, float) else value, unit))
    run(_emit, sys.argv[1:])
