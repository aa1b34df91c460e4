"""What a flood on the serial console costs the host ports: 4 KiB READs through iSCSI, one after the
other, timed while another client sends 100 KB of CRs to the console (each CR an Enter key in the
menus; the flood client reads the screen output, and ends with "#RB1" whose answer says the console
has handled every CR), and the same READs for as long again with the
console idle (on a shared machine the idle run shows what the machine's own load costs). Prints the
worst, median and 99th-percentile READ latency of each and how many READs took over 50 ms.
Options (argv): --flood-bytes N (default 102400).
"""
import json
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
import bench_console as B         # noqa: E402
import test_iscsi_initiator as I  # noqa: E402

READ10_4K = bytes([0x28, 0, 0, 0, 0, 0, 0, 0, 8, 0])


def _reads(c, stop, times):
    while not stop():
        t0 = time.perf_counter()
        r = c.command(0, READ10_4K, read_len=4096)
        times.append((time.perf_counter() - t0) * 1000)
        assert r["status"] == 0, r


def _flood(addr, nbytes, done):
    # the CRs, then "#RB1": its answer comes once the console has handled every CR before it
    s = socket.create_connection(addr, timeout=600)
    sender = threading.Thread(target=lambda: s.sendall(b"\r" * nbytes + b"#RB1\n"))
    sender.start()
    seen = b""
    while b"#RB1 OK" not in seen:
        d = s.recv(65536)
        if not d:
            raise EOFError("console closed the connection")
        seen = seen[-16:] + d
    sender.join()
    s.close()
    done.append(True)


def run(emit, argv):
    nbytes = int(argv[argv.index("--flood-bytes") + 1]) if "--flood-bytes" in argv else 102400
    d = Path(tempfile.mkdtemp(prefix="bench_flood"))
    proc = B._boot(d, "tcp:127.0.0.1:0")
    try:
        line = b""
        while not line.startswith(b"RAIDBOARD READY "):
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError((d / "firmware.log").read_text()[-2000:])
        ready = json.loads(line[16:])
        host, port = ready["console"][4:].rsplit(":", 1)
        phost, pport = ready["portals"][0].rsplit(":", 1)
        c = I.Initiator(phost, int(pport))
        c.login()
        done, busy = [], []
        t0 = time.monotonic()
        threading.Thread(target=_flood, args=((host, int(port)), nbytes, done)).start()
        _reads(c, lambda: done, busy)
        flood_s = time.monotonic() - t0
        idle = []                           # as long again with the console idle: the machine's own noise
        end = time.monotonic() + flood_s
        _reads(c, lambda: time.monotonic() > end, idle)
        c.logout()
        emit("console_flood_read_max_ms", max(busy), "ms")
        emit("console_flood_read_p50_ms", statistics.median(busy), "ms")
        emit("console_flood_read_p99_ms", sorted(busy)[len(busy) * 99 // 100], "ms")
        emit("console_flood_reads_over_50ms", sum(1 for t in busy if t > 50), "count")
        emit("console_idle_read_max_ms", max(idle), "ms")
        emit("console_idle_read_p99_ms", sorted(idle)[len(idle) * 99 // 100], "ms")
        emit("console_idle_reads_over_50ms", sum(1 for t in idle if t > 50), "count")
        emit("console_idle_read_p50_ms", statistics.median(idle), "ms")
        emit("console_flood_reads", len(busy), "count")
        emit("console_flood_seconds", flood_s, "s")
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(d, ignore_errors=True)
