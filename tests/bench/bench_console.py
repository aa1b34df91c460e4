"""Round-trip time of line-protocol requests over the board's serial console, as the host CLI sees it.

Boots the default board layout on small disks (one firmware process per link), enters line mode and
times N requests one after the other: `status` (the controller's whole state, ~2 KB answer) and, in
the same run, `lcd` (answered by the console itself: the framing cost alone). Both links are
measured: the TCP listener (pyserial socket://) and the pty a terminal program would open; on the
pty also a 128 KiB WRITE through the CDB pass-through, with the master handed over non-blocking
(`--console pty`, as `raidboard boot` does) and blocking (`--console stdio`), side by side.
Options (argv): --console-requests N (default 200).
"""
import json
import os
import select
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tty
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MICROPYTHON = str(Path(sys.executable).with_name("micropython"))


def _board_file(d):
    b = json.loads((ROOT / "boards" / "dac960sx.json").read_text())
    b.update({"disk_mb": 64, "buffer_kb": 4096, "heap_kb": 32768})
    b["factory_nvram"] = str(d / "factory.bin")
    path = d / "board.json"
    path.write_text(json.dumps(b))
    subprocess.run([MICROPYTHON, str(ROOT / "firmware" / "factory.py"), str(path), str(d / "factory.bin")],
                   check=True, capture_output=True)
    return path, b


class _Link:
    """Bytes to and from the console: a socket or a pty slave fd."""

    def __init__(self, send, recv):
        self.send, self.recv = send, recv
        self.buf = b""

    def line(self, timeout=30):
        end = time.monotonic() + timeout
        while b"\n" not in self.buf:
            if time.monotonic() > end:
                raise TimeoutError("no answer from the console")
            self.buf += self.recv()
        line, self.buf = self.buf.split(b"\n", 1)
        return line

    def request(self, rid, text):
        self.send(text)
        while True:
            line = self.line()
            if line.startswith(rid + b" "):
                assert line.startswith(rid + b" OK "), line[:200]
                return line


def _boot(d, console, stdio=None):
    path, b = _board_file(d)
    state = d / "state"
    state.mkdir()
    log = open(d / "firmware.log", "ab")
    proc = subprocess.Popen([MICROPYTHON, "-X", "heapsize=%dK" % b["heap_kb"], str(ROOT / "firmware" / "main.py"),
                             str(path), str(state), "--console", console, "--iscsi", "127.0.0.1:0,127.0.0.1:0"],
                            stdin=stdio if stdio is not None else subprocess.DEVNULL,
                            stdout=stdio if stdio is not None else subprocess.PIPE, stderr=log)
    log.close()
    return proc


def _measure(link, n):
    link.send(b"#RB1\n")
    while not link.line().startswith(b"#RB1 OK "):
        pass
    out = {}
    for cmd in (b"status", b"lcd"):
        link.request(b"w", b"w " + cmd + b"\n")       # warm
        times = []
        for i in range(n):
            rid = b"r%d" % i
            t0 = time.perf_counter()
            link.request(rid, rid + b" " + cmd + b"\n")
            times.append((time.perf_counter() - t0) * 1000)
        out[cmd.decode()] = statistics.median(times)
    return out


def _tcp(n):
    d = Path(tempfile.mkdtemp(prefix="bench_console"))
    proc = _boot(d, "tcp:127.0.0.1:0")
    try:
        line = b""
        while not line.startswith(b"RAIDBOARD READY "):
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError((d / "firmware.log").read_text()[-2000:])
        host, port = json.loads(line[16:])["console"][4:].rsplit(":", 1)
        s = socket.create_connection((host, int(port)), timeout=30)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        r = _measure(_Link(s.sendall, lambda: s.recv(65536)), n)
        s.close()
        return r
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(d, ignore_errors=True)


def _cdb_write(link, n):
    # a 128 KiB WRITE(10) through the line protocol's CDB pass-through (256 KiB of hex): ms, median
    data = os.urandom(128 * 1024).hex()
    cdb = "2a000000000000010000"
    times = []
    for i in range(n):
        rid = b"c%d" % i
        t0 = time.perf_counter()
        link.request(rid, rid + b' cdb {"port": 0, "lun": 0, "cdb": "%s", "data": "%s"}\n'
                     % (cdb.encode(), data.encode()))
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def _pty(n, mode):
    # mode "pty": the master handed over non-blocking, as `raidboard boot --console pty` does;
    # "stdio": a blocking master (the firmware then reads it a byte at a time)
    d = Path(tempfile.mkdtemp(prefix="bench_console"))
    master, slave = os.openpty()
    tty.setraw(slave)
    if mode == "pty":
        os.set_blocking(master, False)
    proc = _boot(d, mode, stdio=master)
    os.close(master)

    def recv():
        if select.select([slave], [], [], 1.0)[0]:
            return os.read(slave, 65536)
        return b""

    def send(b):
        os.write(slave, b)

    try:
        link = _Link(send, recv)
        while not link.line(60).startswith(b"RAIDBOARD READY "):
            pass
        r = _measure(link, n)
        r["cdb128k"] = _cdb_write(link, 5)
        return r
    finally:
        proc.kill()
        proc.wait()
        os.close(slave)
        shutil.rmtree(d, ignore_errors=True)


def run(emit, argv):
    n = 200
    if "--console-requests" in argv:
        n = int(argv[argv.index("--console-requests") + 1])
    t = _tcp(n)
    emit("console_status_rtt_ms", t["status"], "ms")
    emit("console_lcd_rtt_ms", t["lcd"], "ms")
    p = _pty(max(20, n // 4), "pty")
    emit("console_status_rtt_pty_ms", p["status"], "ms")
    emit("console_lcd_rtt_pty_ms", p["lcd"], "ms")
    emit("console_cdb_write_128k_pty_ms", p["cdb128k"], "ms")
    b = _pty(20, "stdio")
    emit("console_cdb_write_128k_blocking_stdio_ms", b["cdb128k"], "ms")
    emit("console_cdb_write_128k_pty_speedup", b["cdb128k"] / p["cdb128k"], "x")


if __name__ == "__main__":
    def _emit(name, value, unit):
        print("BENCH %s %.4g %s" % (name, value, unit))
    run(_emit, sys.argv[1:])
