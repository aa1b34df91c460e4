"""Shared by the end-to-end tests: boots real boards (see conftest.py for the fixtures).

`board` is a DAC960SX with small (64 MiB) sparse disks and the factory layout, booted into a fresh
state directory with its console and both iSCSI portals on ephemeral loopback ports. `make_board`
boots others (`make_board(disk_mb=..., model="dac960sf")`). A Board can be killed (-9), stopped and
restarted on the same state directory.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MICROPYTHON = str(Path(sys.executable).with_name("micropython"))


def in_ci():
    return os.environ.get("CI") == "true"


def need_tool(name, package):
    """Skip when a Debian tool is missing locally; in CI (CI=true) its absence is a failure."""
    if shutil.which(name):
        return
    if in_ci():
        pytest.fail("%s (Debian package %s) is missing; .ci/run must install it" % (name, package))
    pytest.skip("%s not installed (apt-get install %s)" % (name, package))


class Board:
    def __init__(self, board_file, state, heap_kb):
        self.board_file = Path(board_file)
        self.state = Path(state)
        self.heap_kb = heap_kb
        self.proc = None
        self.boot()

    def boot(self, timeout=60):
        log = open(self.state / "firmware.log", "ab")
        self.proc = subprocess.Popen(
            [MICROPYTHON, "-X", "heapsize=%dK" % self.heap_kb, str(ROOT / "firmware" / "main.py"),
             str(self.board_file), str(self.state), "--console", "tcp:127.0.0.1:0",
             "--iscsi", "127.0.0.1:0,127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.time() + timeout
        while True:
            line = self.proc.stdout.readline()
            if line.startswith(b"RAIDBOARD READY "):
                break
            if not line or time.time() > deadline:
                self.proc.kill()
                raise RuntimeError("board did not boot:\n" + (self.state / "firmware.log").read_text()[-3000:])
        self.ready = json.loads(line[len(b"RAIDBOARD READY "):])
        host, port = self.ready["console"][4:].rsplit(":", 1)
        self.console = (host, int(port))
        self.portals = [(p.rsplit(":", 1)[0], int(p.rsplit(":", 1)[1])) for p in self.ready["portals"]]
        self.iqn = self.ready["iqn"]
        host, port = self.ready["management"][4:].rsplit(":", 1)
        self.management = (host, int(port))
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        """kill -9: what a crash or power cut does to the firmware process."""
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait()
            self.proc.stdout.close()

    def stop(self):
        if self.alive():
            self.proc.terminate()
        if self.proc is not None:
            self.proc.wait()
            self.proc.stdout.close()

    def restart(self):
        self.stop()
        return self.boot()

    def log(self):
        return (self.state / "firmware.log").read_text()

    def command(self, name, args=None, timeout=30):
        sys.path.insert(0, str(ROOT / "host"))
        from raidboard import proto
        with proto.Link("socket://%s:%d" % self.console, timeout=timeout) as link:
            return link.request(name, args or {})


def default_memory(model="dac960sx"):
    """The shipped board's buffer and heap, for a board that measures what the default one does."""
    d = json.loads((ROOT / "boards" / (model + ".json")).read_text())
    return {"buffer_kb": d["buffer_kb"], "heap_kb": d["heap_kb"]}


def write_board(dir, model="dac960sx", **overrides):
    """A board file in `dir` derived from boards/<model>.json, with its own factory NV image."""
    d = json.loads((ROOT / "boards" / (model + ".json")).read_text())
    return _small(dir, model, model, d, overrides)


def _small(dir, model, name, d, overrides):
    # small disks and buffer, the overrides, and its own factory NV image beside the file
    d.update({"disk_mb": 64, "buffer_kb": 4096, "heap_kb": 32768})
    d.update(overrides)
    path = Path(dir) / ("%s.json" % name)
    factory = Path(dir) / ("%s-factory.bin" % model)
    d["factory_nvram"] = str(factory)
    path.write_text(json.dumps(d))
    if d["populated_slots"] >= 6:
        subprocess.run([MICROPYTHON, str(ROOT / "firmware" / "factory.py"), str(path), str(factory)],
                       check=True, capture_output=True)
    return path, d


def answer(text, status="Success"):
    """The Response Data of a CLI's one JSON document (host/README.md "JSON output"), whose status
    must be `status`."""
    doc = json.loads(text)
    said = doc["Controllers"][0]["Command Status"]
    assert said["Status"] == status, said
    return doc["Controllers"][0]["Response Data"]


def answers(text):
    """The Response Data of each line of a command that goes on (JSON Lines: `--wait`, `watch`, `--follow`)."""
    return [answer(line) for line in text.splitlines()]


def free_ports(n):
    """n loopback TCP ports nobody listens on now, below the kernel's ephemeral range (a pair's
    portals and link must be fixed; a port another process gets from port 0 cannot collide)."""
    import random
    import socket
    lo = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    got = []
    while len(got) < n:
        port = random.randrange(10000, lo)
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            if port not in got:
                got.append(port)
        except OSError:
            pass
        finally:
            s.close()
    return got


def write_pair(dir, model="dac960sx", **overrides):
    """A dual-active pair's board file in `dir` from boards/<model>-pair.json: consoles on ephemeral
    ports, portals and the link on fixed free ones, small disks, its own factory NV image."""
    d = json.loads((ROOT / "boards" / (model + "-pair.json")).read_text())
    ports = free_ports(5)
    for n, c in enumerate(d["controllers"]):
        c["console"] = c["management"] = "tcp:127.0.0.1:0"
        for i, p in enumerate(c["host_ports"]):
            p["portal"] = "127.0.0.1:%d" % ports[2 * n + i]
    d["link"] = "127.0.0.1:%d" % ports[4]
    return _small(dir, model, model + "-pair", d, overrides)


class Controller(Board):
    """One controller of a pair: its own process, console and portals; the state directory and
    its disks are the pair's."""

    def __init__(self, board_file, state, heap_kb, number, start=True):
        self.number = number
        self.board_file = Path(board_file)
        self.state = Path(state)
        self.heap_kb = heap_kb
        self.proc = None
        if start:
            self.launch()

    def launch(self):
        (self.state / ("c%d" % self.number)).mkdir(exist_ok=True)
        log = open(self.logpath(), "ab")
        self.proc = subprocess.Popen(
            [MICROPYTHON, "-X", "heapsize=%dK" % self.heap_kb, str(ROOT / "firmware" / "main.py"),
             str(self.board_file), str(self.state), "--controller", str(self.number)],
            stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        return self

    def logpath(self):
        return self.state / ("c%d" % self.number) / "firmware.log"

    def log(self):
        return self.logpath().read_text()

    def wait_ready(self, timeout=60):
        deadline = time.time() + timeout
        said = []
        while True:
            line = self.proc.stdout.readline()
            if line.startswith(b"RAIDBOARD READY "):
                break
            said.append(line.decode(errors="replace"))
            if not line or time.time() > deadline:
                self.proc.kill()
                raise RuntimeError("controller %d did not boot (exit %s):\n%s\nstdout:\n%s"
                                   % (self.number, self.proc.wait(), self.log()[-3000:], "".join(said)[-3000:]))
        self.ready = json.loads(line[len(b"RAIDBOARD READY "):])
        host, port = self.ready["console"][4:].rsplit(":", 1)
        self.console = (host, int(port))
        self.portals = [(p.rsplit(":", 1)[0], int(p.rsplit(":", 1)[1])) for p in self.ready["portals"]]
        self.iqn = self.ready["iqn"]
        return self

    def boot(self, timeout=60):
        return self.launch().wait_ready(timeout)


class Pair:
    """A dual-active pair (FIG. 7) booted from boards/dac960sx-pair.json: controllers 0 and 1, each
    its own firmware process, sharing the disks of one state directory."""

    def __init__(self, dir, model="dac960sx", **overrides):
        self.dir = Path(dir)
        self.state = self.dir / "pair-state"
        self.state.mkdir(exist_ok=True)
        self.path, self.d = write_pair(self.dir, model, **overrides)
        self.c = [Controller(self.path, self.state, self.d["heap_kb"], n) for n in (0, 1)]
        try:
            for c in self.c:
                c.wait_ready()
        except BaseException:
            self.kill()              # no controller outlives a pair that did not boot
            raise

    def portal(self, n, port):
        """controller n's host port `port` as the board file names it (a takeover keeps it)"""
        host, p = self.d["controllers"][n]["host_ports"][port]["portal"].rsplit(":", 1)
        return host, int(p)

    def kill(self, n=None):
        for c in self.c if n is None else [self.c[n]]:
            c.kill()

    def restart(self, n):
        return self.c[n].boot()

    def wait(self, n, test, what, timeout=30):
        """Poll controller n's pair_status until test(status) holds (no wall-clock assertion: the
        timeout only bounds a hang)."""
        deadline = time.time() + timeout
        while True:
            st = self.c[n].command("pair_status")
            if test(st):
                return st
            if time.time() > deadline:
                raise AssertionError("controller %d never reached %s; last status %r\n%s"
                                     % (n, what, st, self.c[n].log()[-2000:]))
            time.sleep(0.05)
