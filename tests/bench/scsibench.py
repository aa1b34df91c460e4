# SCSI core per-command cost, measured inside the firmware (run on micropython by bench_scsi.py).
# Prints "BENCH <name> <value> <unit>"; the drive's own cost is measured beside the core's so the
# core's overhead is the difference, in the same run.
import sys
import os

HERE = __file__.rsplit("/", 1)[0]
sys.path.insert(0, HERE + "/../firmware")
sys.path.insert(0, HERE + "/../../firmware")
if os.getenv("RB_FW"):                         # another firmware tree (an A/B comparison by hand)
    sys.path.insert(0, os.getenv("RB_FW"))
import fw

NEX = ("iqn.bench", 0, 0)
N = int(sys.argv[2]) if len(sys.argv) > 2 else 1000


def emit(name, value, unit):
    print("BENCH %s %s %s" % (name, ("%.4g" % value) if isinstance(value, float) else value, unit))


def cdb10(op, lba, n):
    return bytes((op, 0)) + lba.to_bytes(4, "big") + b"\0" + n.to_bytes(2, "big") + b"\0"


def cdb16(op, lba, n):
    return bytes((op, 0)) + lba.to_bytes(8, "big") + n.to_bytes(4, "big") + b"\0\0"


def timed(fn):
    return fw.best_of(fn, N)


def main():
    ctl = fw.boot(fw.tmpdir("scsibench"))
    lu = ctl.logical_unit(NEX)
    blocks = 128                                   # 64 KiB per command
    span = min(lu.capacity(), 8192) // blocks      # stay within 4 MiB: page-cached files
    buf = memoryview(bytearray(2048 * 512))
    mv = buf[:blocks * 512]
    reads = [cdb10(0x28, (i % span) * blocks, blocks) for i in range(span)]
    reads16 = [cdb16(0x88, (i % span) * blocks, blocks) for i in range(span)]
    writes = [cdb10(0x2A, (i % span) * blocks, blocks) for i in range(span)]
    tur = bytes(6)
    ex = ctl.execute
    for c in writes:                              # fill, so reads hit written data
        ex(NEX, c, mv, buf)

    def drive():
        rb = lu.read
        for i in range(N):
            rb((i % span) * blocks, mv)

    def core10():
        for i in range(N):
            ex(NEX, reads[i % span], None, buf)

    def core16():
        for i in range(N):
            ex(NEX, reads16[i % span], None, buf)

    def wcore():
        for i in range(N):
            ex(NEX, writes[i % span], mv, buf)

    def wdrive():
        wb = lu.write
        for i in range(N):
            wb((i % span) * blocks, mv, False)

    def turs():
        for i in range(N):
            ex(NEX, tur, None, buf)

    st = ex(NEX, reads[0], None, buf)[0]
    assert st == 0, st
    d, r10, r16, t = timed(drive), timed(core10), timed(core16), timed(turs)
    wd, w10 = timed(wdrive), timed(wcore)
    emit("scsi_read10_64k", r10, "us")
    emit("scsi_read16_64k", r16, "us")
    emit("scsi_read_drive_64k", d, "us")
    emit("scsi_read10_core_overhead", r10 - d, "us")
    emit("scsi_write10_64k", w10, "us")
    emit("scsi_write10_core_overhead", w10 - wd, "us")
    emit("scsi_tur", t, "us")


main()
