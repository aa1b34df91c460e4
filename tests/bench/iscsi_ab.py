"""A/B of two firmware trees' iSCSI read path: iscsi-perf (64 KiB reads, 32 queued) against each,
in interleaved rounds, with the board process's CPU time per command (less noisy than MB/s on a
shared machine). Usage: iscsi_ab.py FW_DIR_A FW_DIR_B [rounds]  (e.g. A = a `git show` export of
an older firmware/). Not run by `make bench` (bench_iscsi.py compares with tgtd)."""
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
MICROPYTHON = str(Path(sys.executable).with_name("micropython"))


def cpu_ticks(pid):
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])      # utime + stime (micropython runs inside this process)


def one(fw, secs):
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, RB_TMP=d, RB_ROOT=str(HERE.parent.parent), RB_FW=fw)
        p = subprocess.Popen([MICROPYTHON, "-X", "heapsize=64M", str(HERE / "iscsi_serve.py")],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        try:
            while True:
                ln = p.stdout.readline()
                if not ln:
                    raise RuntimeError("server did not start")
                if ln.startswith("PORT"):
                    _, port, iqn = ln.split()
                    break
            c0 = cpu_ticks(p.pid)
            r = subprocess.run(["iscsi-perf", "-b", "128", "-m", "32", "-t", str(secs),
                                "iscsi://127.0.0.1:%s/%s/0" % (port, iqn)], capture_output=True, text=True)
            c1 = cpu_ticks(p.pid)
        finally:
            p.kill()
            p.wait()
    m = re.findall(r"iops average (\d+) \((\d+) MB/s\)", (r.stdout + r.stderr).replace("\r", "\n"))
    iops, mbs = int(m[-1][0]), int(m[-1][1])
    return mbs, (c1 - c0) * 1e6 / os.sysconf("SC_CLK_TCK") / (iops * secs)


def main(a, b, rounds=4):
    res = {a: [], b: []}
    for _ in range(rounds):
        for fw in (a, b):
            res[fw].append(one(fw, 3))
    for fw in (a, b):
        print("BENCH iscsi_ab_read_mbs[%s] %d MB/s (median of %s)" % (fw, sorted(x[0] for x in res[fw])[rounds // 2],
                                                            [x[0] for x in res[fw]]))
        print("BENCH iscsi_ab_cpu_per_cmd[%s] %.0f us (min; all %s)" % (fw, min(x[1] for x in res[fw]),
                                                             ["%.0f" % x[1] for x in res[fw]]))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], *[int(x) for x in sys.argv[3:]])
