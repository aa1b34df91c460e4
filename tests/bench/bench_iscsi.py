"""Sequential throughput through iSCSI: the board against Debian's tgtd serving a file of the same
size, with the same initiators, in one run, and their ratios; plus what a host feels of the
snapshot's copy-on-write (primary sequential writes with an active snapshot vs without).

Needs libiscsi-bin (iscsi-perf), qemu-utils + qemu-block-extra (qemu-img with iscsi) and tgt.
Missing tools are reported as BENCH-SKIP lines, not as figures."""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import test_iscsi_initiator as I   # noqa: E402
from harness import default_memory   # noqa: E402

DISK_MB = 128               # board disks: primary LUN = RAID 5 of 3 x 128 MiB = 384 MiB
IMAGE_MB = 96               # qemu-img write image (within the log's capacity for the COW run)
TGT_IQN = "iqn.2026-01.raidboard.bench:tgtd"
TGT_CONTROL = 7             # tgtd control port number (its own socket, not the system's)
INITIATE = bytes([0x20, 0, 0x60, 0, 0, 0, 0, 0, 0, 0])
TERMINATE = bytes([0x20, 0, 0x61, 0, 0, 0, 0, 0, 0, 0])
ROUNDS = 3                  # interleaved board/tgtd (plain/COW) rounds; the machine is shared, so
                            # ratios are of the medians, and each side's median is reported
SNAP_ROUNDS = 5             # plain/COW rounds of the snapshot figure (each a few tenths of a second)
PERF_SECONDS = 3


def median(xs):
    return sorted(xs)[len(xs) // 2]


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Tgtd:
    def __init__(self, path, size):
        with open(path, "wb") as f:
            f.truncate(size)
        self.port = free_port()
        self.proc = subprocess.Popen(["tgtd", "-f", "-C", str(TGT_CONTROL), "--iscsi",
                                      "portal=127.0.0.1:%d" % self.port],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(50):
            if self.adm("--op", "show", "--mode", "system", check=False) == 0:
                break
            time.sleep(0.1)
        self.adm("--op", "new", "--mode", "target", "--tid", "1", "-T", TGT_IQN)
        self.adm("--op", "new", "--mode", "logicalunit", "--tid", "1", "--lun", "1", "-b", path)
        self.adm("--op", "bind", "--mode", "target", "--tid", "1", "-I", "ALL")
        self.url = "iscsi://127.0.0.1:%d/%s/1" % (self.port, TGT_IQN)

    def adm(self, *args, check=True):
        p = subprocess.run(["tgtadm", "-C", str(TGT_CONTROL), "--lld", "iscsi"] + list(args),
                           capture_output=True, text=True, timeout=30)
        if check and p.returncode:
            raise RuntimeError("tgtadm %s: %s" % (" ".join(args), p.stderr))
        return p.returncode

    def stop(self):
        # tgtd ignores SIGTERM: delete the target, then the system
        self.adm("--op", "delete", "--mode", "target", "--tid", "1", "--force", check=False)
        self.adm("--op", "delete", "--mode", "system", check=False)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def iscsi_perf(url, seconds=5):
    p = subprocess.run(["iscsi-perf", "-b", "128", "-m", "32", "-t", str(seconds), url],
                       capture_output=True, text=True, timeout=seconds + 60)
    m = re.findall(r"iops average \d+ \((\d+) MB/s\)", (p.stdout + p.stderr).replace("\r", "\n"))
    if not m:
        raise RuntimeError("iscsi-perf: %s" % (p.stdout + p.stderr)[-500:])
    return int(m[-1])   # as iscsi-perf prints it ("MB/s")


def qemu_write(image, url):
    t0 = time.perf_counter()
    subprocess.run(["qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", str(image), url],
                   check=True, capture_output=True, timeout=600)
    return os.path.getsize(image) / (1 << 20) / (time.perf_counter() - t0)


def qemu_read(url, out, mib):
    t0 = time.perf_counter()
    subprocess.run(["qemu-img", "dd", "-f", "raw", "-O", "raw", "if=" + url, "of=" + str(out),
                    "bs=1M", "count=%d" % mib], check=True, capture_output=True, timeout=600)
    dt = time.perf_counter() - t0
    os.unlink(out)
    return mib / dt


def run(emit, argv):
    missing = [t for t in ("iscsi-perf", "qemu-img", "tgtd", "tgtadm") if shutil.which(t) is None]
    if missing:
        emit("iscsi_skipped_missing_tools", len(missing), "tools")
        print("BENCH-SKIP iscsi: missing %s" % " ".join(missing), file=sys.stderr)
        return
    tmp = Path(tempfile.mkdtemp(prefix="bench-iscsi-"))
    shm = Path(tempfile.mkdtemp(prefix="bench-iscsi-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
    board = tgt = None
    try:
        (tmp / "board").mkdir()
        board = I.BootedBoard.boot(tmp / "board", disk_mb=DISK_MB, **default_memory())
        c = I.Initiator(*board.portals[0])
        c.login()
        r = c.command(0, bytes([0x25]) + bytes(9), read_len=8)
        size = (int.from_bytes(r["data"][:4], "big") + 1) * 512
        tgt = Tgtd(str(tmp / "tgt.img"), size)
        image = shm / "image.raw"
        image.write_bytes(os.urandom(IMAGE_MB << 20))
        url = board.url(0)

        # writes first, so the reads read written data on both
        # best of two: the first pass also allocates the sparse backing files on both sides
        bw = max(qemu_write(image, url), qemu_write(image, url))
        tw = max(qemu_write(image, tgt.url), qemu_write(image, tgt.url))
        emit("iscsi_qemu_write_board", bw, "MiB/s")
        emit("iscsi_qemu_write_tgtd", tw, "MiB/s")
        emit("iscsi_qemu_write_ratio", bw / tw, "x")
        br = qemu_read(url, shm / "r.raw", IMAGE_MB)
        tr = qemu_read(tgt.url, shm / "r.raw", IMAGE_MB)
        emit("iscsi_qemu_read_board", br, "MiB/s")
        emit("iscsi_qemu_read_tgtd", tr, "MiB/s")
        emit("iscsi_qemu_read_ratio", br / tr, "x")
        bps, tps = [], []
        for _ in range(ROUNDS):
            bps.append(iscsi_perf(url, PERF_SECONDS))
            tps.append(iscsi_perf(tgt.url, PERF_SECONDS))
        bp, tp = median(bps), median(tps)
        emit("iscsi_perf_read_board", bp, "MB/s")
        emit("iscsi_perf_read_tgtd", tp, "MB/s")
        emit("iscsi_perf_read_ratio", bp / tp, "x")

        # what the host feels of copy-on-write: the same sequential write, without and with
        # an active snapshot (every chunk a first write, so every chunk is copied to the log)
        plains, cows = [], []
        for _ in range(SNAP_ROUNDS):
            plains.append(qemu_write(image, url))
            r = c.command(0, INITIATE)
            if r["status"] != 0:
                raise RuntimeError("snapshot initiate failed: %r" % (I.sense_key(r["sense"]),))
            cows.append(qemu_write(image, url))
            r = c.command(0, TERMINATE)
            if r["status"] != 0:
                raise RuntimeError("snapshot terminate failed: %r" % (I.sense_key(r["sense"]),))
        c.logout()
        plain, cow = median(plains), median(cows)
        emit("iscsi_primary_write_no_snapshot", plain, "MiB/s")
        emit("iscsi_primary_write_snapshot_active", cow, "MiB/s")
        emit("iscsi_snapshot_write_ratio", cow / plain, "x")
    finally:
        if tgt is not None:
            tgt.stop()
        if board is not None:
            board.stop()
        shutil.rmtree(shm, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    def _emit(name, value, unit):
        print("BENCH %s %s %s" % (name, "%.4g" % value if isinstance(value, float) else value, unit))
    run(_emit, sys.argv[1:])
