# Snapshot figures measured inside the firmware (run on micropython by bench_snapshot.py).
# Prints "BENCH <name> <value> <unit>" lines; every ratio is measured side by side in this run.
import sys
import os
import gc
import time

sys.path.insert(0, __file__.rsplit("/", 1)[0] + "/../firmware")
sys.path.insert(0, __file__.rsplit("/", 1)[0] + "/../../firmware")
from hw import nvram
from control import controller
from hw import board as boardmod
from snapshot import index as snapshot

ROOT = __file__.rsplit("/", 1)[0] + "/../.."
TMP = sys.argv[1]
MB = 1 << 20
INITIATE = bytes((0x20, 0, 0x60, 0, 0, 0, 0, 0, 0, 0))
TERMINATE = bytes((0x20, 0, 0x61, 0, 0, 0, 0, 0, 0, 0))
NEX = ("iqn.bench", 0, 0)
n_boards = [0]
ROUNDS = 15         # each figure is the best of this many interleaved rounds (the machine is noisy)


def emit(name, value, unit):
    print("BENCH %s %s %s" % (name, ("%.4g" % value) if isinstance(value, float) else value, unit))


def rw10(op, lba, n):
    return bytes((op, 0)) + lba.to_bytes(4, "big") + b"\0" + n.to_bytes(2, "big") + b"\0"


def make(layout, disk_mb=512, chunk_kb=64, stripe_kb=64):
    # a controller whose NV memory holds `layout`: [(sd, level, [slots], log?, extent MB or None)],
    # LUN i -> sd i
    n_boards[0] += 1
    state = "%s/b%d" % (TMP, n_boards[0])
    os.mkdir(state)
    b = boardmod.load(ROOT + "/boards/dac960sx.json")
    b["disk_mb"], b["populated_slots"] = disk_mb, 12
    tpc = b["targets_per_channel"]
    blocks = disk_mb * 2048
    cfg = nvram.Config()
    from storage import raid
    for sd, level, slots, log, mb in layout:
        ext = mb * 2048 if mb else blocks
        cap = raid.capacity(level, len(slots), ext, stripe_kb * 2)
        cfg.sd[sd] = nvram.SystemDriveEntry(level | (nvram.LOG if log else 0),
                                            [(s // tpc, s % tpc, 0, ext) for s in slots], cap, stripe_kb,
                                            chunk_kb=chunk_kb if log else 0)
        cfg.lunmap[sd] = sd
    with open(state + "/factory.bin", "wb") as f:
        f.write(nvram.encode(cfg, 1))
    b["factory_nvram"] = state + "/factory.bin"
    return controller.Controller(b, state, ROOT)


def seq(ctl, op, lun, total, io_blocks, buf, lba0=0):
    # sequential I/O of `total` bytes in `io_blocks` requests; -> MB/s
    mv = memoryview(buf)[:io_blocks * 512]
    n = total // (io_blocks * 512)
    nex = ("iqn.bench", 0, lun)
    t = time.ticks_us()
    for i in range(n):
        st, sn, _ = ctl.execute(nex, rw10(op, lba0 + i * io_blocks, io_blocks), mv if op == 0x2A else None)
        if st:
            raise RuntimeError("I/O failed: %s" % bytes(sn).hex())
    dt = time.ticks_diff(time.ticks_us(), t) / 1e6
    return total / MB / dt


class Bare:
    # a bare loop doing just the three file operations of a first write — read the old data,
    # write it to the log, write the new data — and plain writes of the same host requests, on the
    # firmware's own primary and log disk files (its own file handles), so both see the same
    # files and page cache
    def __init__(self, ctl, buf):
        self.fp = open(ctl.iop.paths[0], "r+b")
        self.fl = open(ctl.iop.paths[1], "r+b")
        self.log0 = ctl.engine.data * 512      # the log's data area: the engine's header is kept
        self.mv = memoryview(buf)
        self.old = bytearray(len(buf))

    def plain(self, total):
        io, fp, mv = len(self.mv), self.fp, self.mv
        t = time.ticks_us()
        for i in range(total // io):
            fp.seek(i * io)
            fp.write(mv)
        return time.ticks_diff(time.ticks_us(), t)

    def first(self, total):
        io, fp, fl, mv, old = len(self.mv), self.fp, self.fl, self.mv, self.old
        t = time.ticks_us()
        for i in range(total // io):
            fp.seek(i * io)
            fp.readinto(old)
            fl.seek(self.log0 + i * io)
            fl.write(old)
            fp.seek(i * io)
            fp.write(mv)
        return time.ticks_diff(time.ticks_us(), t)

    def close(self):
        self.fp.close()
        self.fl.close()


def core_ratios(total, io_blocks, buf, chunk_kb=64, bare=False):
    # JBOD primary (slot 0) and JBOD log (slot 1): one file each, like the bare loop. Each figure
    # is the best of ROUNDS rounds, the rounds interleaved, every write an overwrite of written pages.
    ctl = make([(0, 7, [0], False, None), (1, 7, [1], True, None)], chunk_kb=chunk_kb)
    seq(ctl, 0x2A, 0, total, io_blocks, buf)
    mv = memoryview(buf)
    for lba in range(0, (total + total // 64) // 512, len(buf) // 512):
        ctl.engine.log.write(lba, mv)
    b = Bare(ctl, buf) if bare else None
    r = {"plain": 0, "first": 0, "rewrite": 0, "plain2": 0, "bare_plain": 0, "bare_first": 0}
    for _ in range(ROUNDS):
        if b:
            # rates (1/time), the best of each kept apart, as for the firmware's figures
            r["bare_plain"] = max(r["bare_plain"], 1 / b.plain(total))
            r["bare_first"] = max(r["bare_first"], 1 / b.first(total))
        r["plain"] = max(r["plain"], seq(ctl, 0x2A, 0, total, io_blocks, buf))
        ctl.execute(NEX, INITIATE)
        r["first"] = max(r["first"], seq(ctl, 0x2A, 0, total, io_blocks, buf))
        r["rewrite"] = max(r["rewrite"], seq(ctl, 0x2A, 0, total, io_blocks, buf))
        ctl.execute(NEX, TERMINATE)
        r["plain2"] = max(r["plain2"], seq(ctl, 0x2A, 0, total, io_blocks, buf))
    if b:
        b.close()
    return ctl, r


def read_ratio(ctl, total, io, buf):
    # backup LUN vs primary reads, best of ROUNDS interleaved rounds
    p = b = 0
    for _ in range(ROUNDS):
        p = max(p, seq(ctl, 0x28, 0, total, io, buf))
        b = max(b, seq(ctl, 0x28, 1, total, io, buf))
    return b / p, p


def main():
    total = int(sys.argv[2]) * MB
    io = 512                                  # 256 KiB host writes
    buf = bytearray(io * 512)
    for i in range(0, len(buf), 512):
        buf[i] = i >> 9 & 0xFF
    ctl, r = core_ratios(total, io, buf, bare=True)
    ceiling = r["bare_first"] / r["bare_plain"]
    emit("snap_bare_loop_ceiling_ratio", ceiling, "ratio")
    emit("snap_core_write_plain_mbps", r["plain"], "MB/s")
    emit("snap_core_write_first_mbps", r["first"], "MB/s")
    emit("snap_core_first_write_ratio", r["first"] / r["plain"], "ratio")
    emit("snap_core_first_write_vs_ceiling", r["first"] / r["plain"] / ceiling, "ratio")
    emit("snap_core_rewrite_ratio", r["rewrite"] / r["plain2"], "ratio")
    # backup LUN reads with every chunk copied (all from the log), then with none copied
    ctl.execute(NEX, INITIATE)
    seq(ctl, 0x2A, 0, total, io, buf)
    ratio, prim = read_ratio(ctl, total, io, buf)
    emit("snap_backup_read_copied_ratio", ratio, "ratio")
    ctl.execute(NEX, TERMINATE)
    ctl.execute(NEX, INITIATE)
    ratio, prim = read_ratio(ctl, total, io, buf)
    emit("snap_backup_read_uncopied_ratio", ratio, "ratio")
    emit("snap_core_read_mbps", prim, "MB/s")
    ctl.iop.close()
    del ctl
    gc.collect()

    # chunk size: sequential first-write ratio, and the bytes a random 4 KiB first write moves
    for ck in (16, 64, 256):
        c, r = core_ratios(total // 2, io, buf, chunk_kb=ck)
        emit("snap_first_write_ratio_chunk%dk" % ck, r["first"] / r["plain"], "ratio")
        c.iop.close()
        del c
        gc.collect()

    # initiate latency: O(1) in the primary's size (sparse 1 GiB and 1 TiB JBOD primaries)
    for name, mb in (("1g", 1024), ("1t", 1 << 20)):
        c = make([(0, 7, [0], False, None), (1, 7, [1], True, 1024)], disk_mb=mb)
        lat = []
        for i in range(20):
            t = time.ticks_us()
            c.execute(NEX, INITIATE)
            lat.append(time.ticks_diff(time.ticks_us(), t))
            c.execute(NEX, TERMINATE)
        lat.sort()
        emit("snap_initiate_latency_%s_ms" % name, lat[len(lat) // 2] / 1000, "ms")
        c.iop.close()
        del c
        gc.collect()

    # RAM per exception: the index for a million exceptions
    gc.collect()
    a0 = gc.mem_alloc()
    idx = snapshot.ExceptionIndex(1000000)
    for k in range(1000000):
        idx.insert((k * 7919) % 4000000, k)
    gc.collect()
    emit("snap_index_bytes_per_exception", (gc.mem_alloc() - a0) / 1000000, "bytes")
    t = time.ticks_us()
    for k in range(0, 4000000, 4):
        idx.find(k)
    emit("snap_index_lookup_ns", time.ticks_diff(time.ticks_us(), t) * 1000 / 1000000, "ns")
    del idx
    gc.collect()

    # a 100 GiB log of 64 KiB chunks beside a 1 TiB primary on the default board (its heap's
    # quarter for the index): the share of the log's chunks the index holds, and a snapshot of
    # the 1 TiB primary taken, first-written at random places and read back exact
    c = make([(0, 7, [0], False, None), (1, 7, [1], True, 100 << 10)], disk_mb=1 << 20)
    e = c.engine
    emit("snap_log_indexed_pct_100g", 100 * e.max_slots // e.log_slots, "pct")
    assert e.max_slots == e.log_slots == 1637999, (e.max_slots, e.log_slots)
    assert c.execute(NEX, INITIATE)[0] == 0
    rnd = [(k * 2654435761) % (1 << 24) for k in range(300)]
    one = bytearray(512)
    for k, ch in enumerate(rnd):
        one[0] = k & 0xFF
        assert c.execute(NEX, rw10(0x2A, ch * 128, 1), one)[0] == 0
    for k, ch in enumerate(rnd):
        st, _, data = c.execute(("iqn.bench", 0, 1), rw10(0x28, ch * 128, 1))
        assert st == 0 and bytes(data) == bytes(512), (k, ch)
    emit("snap_random_first_writes_100g", e.next_slot, "count")
    c.execute(NEX, TERMINATE)
    c.iop.close()
    del c, e
    gc.collect()

    # physical I/Os per 4 KiB host write (noise-free counts), RAID 1 and RAID 5 primaries
    for name, level, slots in (("raid1", 1, [0, 1]), ("raid5", 5, [0, 1, 2, 3])):
        c = make([(0, level, slots, False, None), (1, 1, [4, 5], True, None)], disk_mb=64)
        mv = memoryview(buf)[:4096]
        for phase in ("plain", "first", "rewrite"):
            if phase == "first":
                c.execute(NEX, INITIATE)
            c.iop.reset_counters()
            for i in range(100):
                c.execute(NEX, rw10(0x2A, i * 128 + 8, 8), mv)
            emit("snap_phys_io_per_write_%s_%s" % (name, phase),
                 (c.iop.reads + c.iop.writes) / 100, "ops")
            emit("snap_phys_kib_per_write_%s_%s" % (name, phase),
                 (c.iop.read_bytes + c.iop.write_bytes) / 100 / 1024, "KiB")
        c.iop.close()
        del c
        gc.collect()


main()
