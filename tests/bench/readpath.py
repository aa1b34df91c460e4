# Cost of each layer of the host read path for 64 KiB READ(10)s, measured inside the firmware (run
# on micropython): the file read alone, the IOP, the system drive (RAID), the logical unit and the
# SCSI core, each over the same sequential LBAs (iscsi-perf's pattern), so each layer's own cost is
# the difference to the one below. Prints "BENCH <name> <value> <unit>".
#   micropython readpath.py [N]     (RB_TMP: a temp dir; RB_FW: another firmware tree to compare)
import sys
import os

HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
sys.path.insert(0, HERE + "/../firmware")
sys.path.insert(0, HERE + "/../../firmware")
if os.getenv("RB_FW"):
    sys.path.insert(0, os.getenv("RB_FW"))
import fw

NEX = ("iqn.bench", 0, 0)
N = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
BLK = 128


def emit(name, value, unit):
    print("BENCH %s %s %s" % (name, ("%.4g" % value) if isinstance(value, float) else value, unit))


def timed(fn):
    return fw.best_of(fn, N)


def main():
    ctl = fw.boot(fw.tmpdir("readpath"), fw.small_board(disk_mb=64, buffer_kb=16384))
    lu = ctl.logical_unit(NEX)
    sd = ctl.drives[lu.sd]
    d = getattr(sd, "drive", sd)
    span = min(lu.capacity(), 65536) // BLK           # 32 MiB: stays in the page cache
    buf = memoryview(bytearray(2048 * 512))
    mv = buf[:BLK * 512]
    iop = ctl.iop
    f = open(iop.paths[d.slots[0]], "rb")   # its own descriptor: the IOP tracks its files' offsets
    cdbs = [bytes((0x28, 0)) + (i * BLK).to_bytes(4, "big") + b"\0" + BLK.to_bytes(2, "big") + b"\0"
            for i in range(span)]
    for c in cdbs:   # touch every block once, so each layer reads cached pages
        ctl.execute(NEX, c, None, buf)

    def raw():
        for i in range(N):
            f.seek((i % span) * BLK * 512)
            f.readinto(mv)

    def iopr():
        s = d.slots[0]
        for i in range(N):
            iop.read(s, (i % span) * BLK, mv)

    def drive():
        for i in range(N):
            d.read((i % span) * BLK, mv)

    def ctlr():
        rb = lu.read
        for i in range(N):
            rb((i % span) * BLK, mv)

    def core():
        ex = ctl.execute
        for i in range(N):
            ex(NEX, cdbs[i % span], None, buf)

    t = [timed(x) for x in (raw, iopr, drive, ctlr, core)]
    emit("read64k_file", t[0], "us")
    emit("read64k_iop", t[1], "us")
    emit("read64k_drive", t[2], "us")
    emit("read64k_controller", t[3], "us")
    emit("read64k_core", t[4], "us")
    emit("read64k_iop_own", t[1] - t[0], "us")
    emit("read64k_raid_own", t[2] - t[1], "us")
    emit("read64k_controller_own", t[3] - t[2], "us")
    emit("read64k_core_own", t[4] - t[3], "us")
    emit("read64k_raid_level", d.level, "level")
    emit("read64k_stripe_blocks", d.unit, "blocks")


main()
