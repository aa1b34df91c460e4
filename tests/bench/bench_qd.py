"""What hosts do, board against tgtd: queue depth, small and random I/O, two sessions, latency tail.

The board's RAID 5 LUN (the default board's 16 MiB buffer and 32 MiB heap, 128 MiB disks) against
Debian's tgtd serving a file of the same size, driven by rbload (rbload.c, libiscsi's asynchronous
C API, built here with cc). Every figure is a board/tgtd ratio of the rounds' medians, the rounds
interleaved (board, tgtd, board, ...), with the range of the per-round ratios beside it:
  iscsi_{read,write}_{4k,64k,1m}_qd{1,8}_ratio     sequential, IOPS ratio
  iscsi_rand{read,write}_4k_qd{1,16}_ratio         random 4 KiB
  iscsi_two_session_scaling                        64 KiB QD 8 reads over two sessions, one per host
                                                   port, against one session (tgtd's printed beside)
  iscsi_one_session_machine_busy_pct, ..._board_cores, ..._generator_cores,
  iscsi_two_session_cpu_ceiling                    during the one-session runs: the machine's CPU in
                                                   use, the board's and rbload's shares in cores, and
                                                   100 / busy %, the most a second session could add
                                                   (iscsi_tgtd_one_session_machine_busy_pct: tgtd's)
  iscsi_lat_p50/p99/p999/max_us_board|tgtd         4 KiB QD 1 reads, LAT_READS of them a round
  iscsi_lat_p999_ratio, iscsi_stalls_over_5ms      board p99.9 / tgtd p99.9; board commands > 5 ms
  iscsi_tgtd_stalls_over_5ms                       tgtd's commands > 5 ms: what the machine alone gives
  iscsi_lat_steal_pct_board|tgtd                   share of the CPUs' time the hypervisor took during
                                                   those rounds (/proc/stat steal), to read beside them
  iscsi_cpu_us_per_cmd_{read,write}_4k             board process CPU time / commands (QD 16 random)
  iscsi_busy_count                                 BUSY and TASK SET FULL answers the board gave
  iscsi_tgtd_<part>_iops                           tgtd's own figures: the generator's reach
Options: --rounds N (5), --seconds S per run (1.0), --lat-reads N (50000), --only-qd PART."""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from bench_iscsi import Tgtd  # noqa: E402
import test_iscsi_initiator as I  # noqa: E402
from harness import default_memory  # noqa: E402

DISK_MB = 128
LAT_READS = 50000

# (figure, op, pattern, transfer bytes, queue depth)
PARTS = [("%s_%s_qd%d" % (op, name, qd), op, "seq", bs, qd)
         for op in ("read", "write") for name, bs in (("4k", 4096), ("64k", 65536), ("1m", 1 << 20))
         for qd in (1, 8)] + \
        [("rand%s_4k_qd%d" % (op, qd), op, "rand", 4096, qd) for op in ("read", "write") for qd in (1, 16)]


def arg(argv, name, default, kind=int):
    return kind(argv[argv.index(name) + 1]) if name in argv else default


HEADER = Path("/usr/include/iscsi/iscsi.h")   # Debian libiscsi-dev


def build(tmp):
    """rbload's path, or None (with the reason) when it cannot be built here."""
    if shutil.which("cc") is None:
        return None, "no C compiler (cc)"
    if not HEADER.exists():
        return None, "no libiscsi headers (Debian libiscsi-dev)"
    exe = Path(tmp) / "rbload"
    p = subprocess.run(["cc", "-O2", "-o", str(exe), str(HERE / "rbload.c"), "-liscsi"],
                       capture_output=True, text=True)
    if p.returncode:
        return None, "rbload did not build: " + p.stderr[-500:]
    return exe, None


def load(exe, urls, op, pattern, bs, qd, seconds=None, count=None):
    cmd = [str(exe), "--op", op, "--pattern", pattern, "--bs", str(bs), "--qd", str(qd)]
    cmd += ["--count", str(count)] if count else ["--seconds", str(seconds)]
    p = subprocess.run(cmd + list(urls), capture_output=True, text=True, timeout=600)
    if p.returncode:
        raise RuntimeError("rbload %s: %s" % (" ".join(cmd[1:]), p.stderr[-500:]))
    return json.loads(p.stdout)


def cpu_s(pid):
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def cpu_ticks():
    # (all, stolen, idle): the machine's CPU time so far, in clock ticks, what the hypervisor took
    # and what no one used (idle + iowait)
    f = [int(x) for x in open("/proc/stat").readline().split()[1:9]]
    return sum(f), f[7], f[3] + f[4]


def spread(emit, name, ratios, unit="x"):
    emit(name, statistics.median(ratios), unit)
    emit(name + "_min", min(ratios), unit)
    emit(name + "_max", max(ratios), unit)


def run(emit, argv):
    rounds, seconds = arg(argv, "--rounds", 5), arg(argv, "--seconds", 1.0, float)
    lat_reads, only = arg(argv, "--lat-reads", LAT_READS), arg(argv, "--only-qd", "", str)
    missing = [t for t in ("tgtd", "tgtadm") if shutil.which(t) is None]
    tmp = Path(tempfile.mkdtemp(prefix="bench-qd-"))
    exe, why = build(tmp)
    if missing or exe is None:
        print("BENCH-SKIP qd: %s" % (why or "missing " + " ".join(missing)), file=sys.stderr)
        emit("qd_skipped", 1, "count")
        return
    board = tgt = None
    try:
        (tmp / "board").mkdir()
        board = I.BootedBoard.boot(tmp / "board", disk_mb=DISK_MB, **default_memory())
        pid = board.b.proc.pid
        c = I.Initiator(*board.portals[0])
        c.login()
        r = c.command(0, bytes([0x25]) + bytes(9), read_len=8)
        c.logout()
        size = (int.from_bytes(r["data"][:4], "big") + 1) * 512
        tgt = Tgtd(str(tmp / "tgt.img"), size)
        bu, tu = board.url(0), tgt.url
        # fill both once, so every read reads written data and no write allocates a sparse block
        for url in (bu, tu):
            load(exe, [url], "write", "seq", 1 << 20, 8, count=size >> 20)
        busy = 0
        for name, op, pattern, bs, qd in PARTS:
            if only and only not in name:
                continue
            got = {"board": [], "tgtd": []}
            cpu = []
            for _ in range(rounds):
                c0 = cpu_s(pid)
                b = load(exe, [bu], op, pattern, bs, qd, seconds)
                cpu.append((cpu_s(pid) - c0) / b["commands"] * 1e6)
                busy += b["busy"] + b["task_set_full"]
                got["board"].append(b["iops"])
                got["tgtd"].append(load(exe, [tu], op, pattern, bs, qd, seconds)["iops"])
            spread(emit, "iscsi_%s_ratio" % name, [x / y for x, y in zip(got["board"], got["tgtd"])])
            emit("iscsi_tgtd_%s_iops" % name, statistics.median(got["tgtd"]), "IOPS")
            emit("iscsi_board_%s_iops" % name, statistics.median(got["board"]), "IOPS")
            if pattern == "rand" and qd == 16:
                emit("iscsi_cpu_us_per_cmd_%s_4k" % op, statistics.median(cpu), "us")
        if not only or "two" in only:
            two, tgt_two, used, tgt_used, cores, gen = [], [], [], [], [], []
            for _ in range(rounds):
                a0, _, i0 = cpu_ticks()
                c0 = cpu_s(pid)
                one = load(exe, [bu], "read", "seq", 65536, 8, seconds)
                a1, _, i1 = cpu_ticks()
                used.append(1.0 - (i1 - i0) / max(1, a1 - a0))
                cores.append((cpu_s(pid) - c0) / one["seconds"])
                gen.append(one["cpu_s"] / one["seconds"])
                both = load(exe, [bu, board.url(0, port=1)], "read", "seq", 65536, 8, seconds)
                busy += one["busy"] + both["busy"] + one["task_set_full"] + both["task_set_full"]
                two.append(both["iops"] / one["iops"])
                a0, _, i0 = cpu_ticks()
                t1 = load(exe, [tu], "read", "seq", 65536, 8, seconds)
                a1, _, i1 = cpu_ticks()
                tgt_used.append(1.0 - (i1 - i0) / max(1, a1 - a0))
                t2 = load(exe, [tu, tu], "read", "seq", 65536, 8, seconds)
                tgt_two.append(t2["iops"] / t1["iops"])
            spread(emit, "iscsi_two_session_scaling", two)
            emit("iscsi_tgtd_two_session_scaling", statistics.median(tgt_two), "x")
            # what a second session can add at most: the machine's CPU that one session left idle
            # (the board, the load generator and the kernel's loopback TCP share its cores)
            emit("iscsi_one_session_machine_busy_pct", 100.0 * statistics.median(used), "%")
            emit("iscsi_one_session_board_cores", statistics.median(cores), "cores")
            emit("iscsi_one_session_generator_cores", statistics.median(gen), "cores")
            emit("iscsi_two_session_cpu_ceiling", 1.0 / max(0.01, statistics.median(used)), "x")
            emit("iscsi_tgtd_one_session_machine_busy_pct", 100.0 * statistics.median(tgt_used), "%")
        if not only or "lat" in only:
            lat = {"board": [], "tgtd": []}
            stalls = tgt_stalls = 0
            ticks = {"board": [0, 0], "tgtd": [0, 0]}

            def timed(who, url):
                a0, s0, _ = cpu_ticks()
                r = load(exe, [url], "read", "rand", 4096, 1, count=lat_reads)
                a1, s1, _ = cpu_ticks()
                ticks[who][0] += a1 - a0
                ticks[who][1] += s1 - s0
                lat[who].append(r["lat_us"])
                return r["stalls_over_5ms"]
            for _ in range(max(1, rounds // 2)):
                stalls += timed("board", bu)
                tgt_stalls += timed("tgtd", tu)
            for who in ("board", "tgtd"):
                for k in ("p50", "p99", "p999", "max"):
                    emit("iscsi_lat_%s_us_%s" % (k, who), statistics.median(x[k] for x in lat[who]), "us")
            spread(emit, "iscsi_lat_p999_ratio", [b["p999"] / max(1, t["p999"]) for b, t in zip(lat["board"], lat["tgtd"])])
            emit("iscsi_stalls_over_5ms", stalls, "count")
            emit("iscsi_tgtd_stalls_over_5ms", tgt_stalls, "count")   # what the machine alone gives
            for who in ("board", "tgtd"):
                emit("iscsi_lat_steal_pct_" + who, 100.0 * ticks[who][1] / max(1, ticks[who][0]), "%")
        emit("iscsi_busy_count", busy, "count")
    finally:
        if tgt is not None:
            tgt.stop()
        if board is not None:
            board.stop()
        shutil.rmtree(tmp, ignore_errors=True)
