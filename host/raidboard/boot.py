"""Start and stop the board firmware (a `micropython` process) and remember where it listens.

The firmware prints `RAIDBOARD READY {json}` once its endpoints are open. Its stdout and stderr go
to STATE/firmware.log (so a detached board never writes into a closed pipe); the READY line is
found there, or on the pty when the console is the firmware's stdio. A detached board leaves
STATE/endpoints.json (pid, console URL, management URL, portals, iqn) so later commands find it
with --state.
"""
import json
import os
import re
import select
import signal
import subprocess
import sys
import time
import tty
from pathlib import Path

from . import boardfile

READY = b"RAIDBOARD READY "
ENDPOINTS = "endpoints.json"
LOG = "firmware.log"
REPO = Path(__file__).resolve().parents[2]


class BootError(Exception):
    """The firmware could not be started or did not become ready (exit code 4)."""


def micropython():
    if os.environ.get("RAIDBOARD_MICROPYTHON"):
        return os.environ["RAIDBOARD_MICROPYTHON"]
    exe = Path(sys.executable).with_name("micropython")
    return str(exe) if exe.exists() else "micropython"


def firmware_main():
    env = os.environ.get("RAIDBOARD_FIRMWARE")
    path = Path(env) if env else REPO / "firmware" / "main.py"
    if not path.exists():
        raise BootError("firmware not found at %s (set RAIDBOARD_FIRMWARE to firmware/main.py)" % path)
    return path


# where the firmware names its version (the #RB1 greeting's "firmware"), read without running it
FIRMWARE_VERSION = re.compile(r'^FIRMWARE = "([^"\n]+)"', re.M)


def firmware_version():
    """The firmware's version (endpoints/console/lineproto.py FIRMWARE), or None where no
    firmware is found or it names none."""
    try:
        src = (firmware_main().parent / "endpoints" / "console" / "lineproto.py").read_text()
    except (BootError, OSError, UnicodeDecodeError):
        return None
    m = FIRMWARE_VERSION.search(src)
    return m.group(1) if m else None


def read_board(path):
    """The board definition as a dict, every field checked (boardfile.py) before anything starts."""
    try:
        return boardfile.check(path, firmware_main().parent.parent)
    except boardfile.BoardFileError as e:
        raise BootError(str(e))


class Board:
    """A running firmware process and its endpoints."""

    def __init__(self, proc, state, endpoints, pty_slave=None):
        self.proc = proc
        self.state = Path(state)
        self.endpoints = endpoints
        self._pty_slave = pty_slave

    @property
    def pid(self):
        return self.proc.pid

    @property
    def console_url(self):
        return self.endpoints["console"]

    def stop(self, grace=5.0):
        return stop_pid(self.proc.pid, grace, proc=self.proc)

    def close_fds(self):
        if self._pty_slave is not None:
            try:
                os.close(self._pty_slave)
            except OSError:
                pass
            self._pty_slave = None


class Pair(Board):
    """The two controllers of a dual-active board (or the one of them booted again); pid and
    console are the first one's."""

    def __init__(self, boards, state, endpoints):
        Board.__init__(self, boards[0].proc, state, endpoints)
        self.boards = boards

    def stop(self, grace=5.0):
        return any([b.stop(grace) for b in self.boards])

    def close_fds(self):
        for b in self.boards:
            b.close_fds()


def start(board_path, state, console=None, iscsi=None, ready_timeout=60.0, detach=False, heap_kb=None,
          management=None, controller=None):
    """Boot the firmware; return a Board once it reported READY (a Pair for a dual-active board:
    both controllers, or only `controller` when one is booted again beside its running partner).

    console: None (the board definition's), "tcp:HOST:PORT", or "pty". management: None (the
    board definition's; with a console given here, any free port of its host) or "tcp:HOST:PORT".
    """
    board = read_board(board_path)
    state = Path(state)
    try:
        state.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BootError("state directory %s: %s" % (state, e.strerror or e))
    old = read_endpoints(state)
    if "controllers" in board:
        if console or iscsi:
            raise BootError("a pair takes its consoles and portals from the board file (--console and --iscsi "
                            "are for one controller)")
        return _start_pair(board_path, board, state, old, ready_timeout, heap_kb, controller)
    if controller is not None:
        raise BootError("--controller: %s has one controller" % board_path)
    if old and pid_alive(old.get("pid")):
        raise BootError("a board already runs on %s (pid %s, console %s); stop it with "
                        "`raidboard stop --state %s`" % (state, old["pid"], old.get("console"), state))
    return _start_one(board_path, board, state, console, iscsi, management, ready_timeout, heap_kb)


def _start_pair(board_path, board, state, old, ready_timeout, heap_kb, controller):
    # both controllers at once (each waits for the other over the link), or one beside its partner
    running = {n: c for n, c in enumerate((old or {}).get("controllers") or []) if pid_alive(c.get("pid"))}
    which = [0, 1] if controller is None else [controller]
    busy = [n for n in which if n in running]
    if busy:
        raise BootError("controller %d already runs on %s (pid %s); stop it with `raidboard stop --state %s "
                        "--controller %d` (its partner takes over)" % (busy[0], state, running[busy[0]]["pid"], state,
                                                                     busy[0]))
    if controller is None and running:
        raise BootError("a board already runs on %s; stop it with `raidboard stop --state %s`" % (state, state))
    procs = []
    try:
        for n in which:
            procs.append(_launch(board_path, board, state, None, None, None, heap_kb, n))
        boards = [_ready(board_path, state, p, ready_timeout) for p in procs]
    except BaseException:
        for p in procs:
            stop_pid(p[0].pid, 2.0, proc=p[0])
        raise
    ctls = [dict(c) for c in (old or {}).get("controllers") or [{}, {}]] if controller is not None else [{}, {}]
    for n, b in zip(which, boards):
        ctls[n] = dict(b.endpoints, controller=n)
    first = next(c for c in ctls if c.get("pid") and pid_alive(c["pid"]))
    endpoints = dict(first, controllers=ctls)
    write_endpoints(state, endpoints)
    return Pair(boards, state, endpoints)


def _start_one(board_path, board, state, console, iscsi, management, ready_timeout, heap_kb):
    launched = _launch(board_path, board, state, console, iscsi, management, heap_kb, None)
    b = _ready(board_path, state, launched, ready_timeout)
    write_endpoints(state, b.endpoints)
    return b


def _launch(board_path, board, state, console, iscsi, management, heap_kb, controller):
    argv = [micropython(), "-X", "heapsize=%dK" % (heap_kb or board["heap_kb"]),
            str(firmware_main()), str(Path(board_path).resolve()), str(state.resolve())]
    logdir = state
    if controller is not None:
        argv += ["--controller", str(controller)]
        logdir = state / ("c%d" % controller)      # the controller's own directory (control/pair.md)
        logdir.mkdir(exist_ok=True)
    master = slave = None
    own = board["controllers"][controller]["console"] if controller is not None else board.get("console")
    if console is None and own == "stdio":
        console = "pty"          # a board whose UART is its stdio gets a pty people can open
    if console == "pty":
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no line editing: the firmware sees bytes as typed
        os.set_blocking(master, False)    # the firmware reads what is waiting, not a byte at a time
        argv += ["--console", "pty"]
    elif console:
        if not console.startswith("tcp:"):
            raise BootError("--console %r: use tcp:HOST:PORT or pty" % console)
        argv += ["--console", console]
    if iscsi:
        argv += ["--iscsi", iscsi]
    if management:
        argv += ["--management", management]
    logpath = logdir / LOG
    log = open(logpath, "ab")
    start_at = log.tell()
    try:
        proc = subprocess.Popen(
            argv, cwd=str(REPO), stdin=master if master is not None else subprocess.DEVNULL,
            stdout=master if master is not None else log, stderr=log,
            # own session: Ctrl-C in the terminal reaches the host only, which stops the board in order;
            # the pty slave stays open in the firmware so the master never sees a hang-up
            start_new_session=True, pass_fds=(slave,) if slave is not None else ())
    except OSError as e:
        raise BootError("cannot start %s: %s" % (argv[0], e))
    finally:
        log.close()
        if master is not None:
            os.close(master)
    return proc, logpath, start_at, slave


def _ready(board_path, state, launched, ready_timeout):
    proc, logpath, start_at, slave = launched
    try:
        info = _wait_ready(proc, logpath, start_at, slave, ready_timeout)
    except BaseException:
        stop_pid(proc.pid, 2.0, proc=proc)
        if slave is not None:
            os.close(slave)
        raise
    endpoints = {"pid": proc.pid, "board": str(Path(board_path).resolve()), "state": str(state.resolve()),
                 "portals": info.get("portals", []), "iqn": info.get("iqn"), "log": str(logpath.resolve())}
    if slave is not None:
        endpoints["console"] = os.ttyname(slave)
    else:
        c = info.get("console") or ""
        endpoints["console"] = socket_url(c)
    if info.get("management"):
        endpoints["management"] = socket_url(info["management"])
    return Board(proc, state, endpoints, pty_slave=slave)


def socket_url(spec):
    """pyserial's URL of an endpoint the firmware reports as tcp:HOST:PORT."""
    return "socket://" + spec[4:] if spec.startswith("tcp:") else spec


def controller_view(ep, n=None):
    """The endpoints of controller n of a pair (None: the first one running), as a simplex
    board's endpoints read; a simplex board's unchanged."""
    ctls = ep.get("controllers") if ep else None
    if not ctls:
        if n not in (None, 0):
            raise BootError("there is no controller %d: this board is one controller, /c0" % n)
        return ep
    if n is not None:
        if n not in (0, 1):
            raise BootError("--controller must be 0 or 1")
        return dict(ep, **ctls[n])
    for c in ctls:
        if c.get("pid") and pid_alive(c["pid"]):
            return dict(ep, **c)
    return dict(ep, **ctls[0])


def _wait_ready(proc, logpath, offset, slave, timeout):
    deadline = time.monotonic() + timeout
    seen = b""
    tty_buf = b""
    while True:
        if slave is not None:
            r, _, _ = select.select([slave], [], [], 0.05)
            if r:
                try:
                    tty_buf = (tty_buf + os.read(slave, 65536))[-65536:]
                except OSError:
                    pass
            info = _ready_in(tty_buf)
            if info is not None:
                return info
        else:
            time.sleep(0.05)
        try:
            with open(logpath, "rb") as f:
                f.seek(offset)
                seen = f.read()
        except OSError:
            pass
        info = _ready_in(seen)
        if info is not None:
            return info
        if proc.poll() is not None:
            raise BootError("firmware %s before it was ready; its log (%s) ends:\n%s"
                            % (_how_it_ended(proc.returncode), logpath, _tail(seen)))
        if time.monotonic() > deadline:
            raise BootError("firmware did not report READY within %.0fs; its log (%s) ends:\n%s"
                            % (timeout, logpath, _tail(seen)))


def _how_it_ended(code):
    if code < 0:
        return "was killed by %s" % signal.Signals(-code).name
    return "exited with code %d" % code


def _ready_in(data):
    i = data.find(READY)
    if i < 0:
        return None
    j = data.find(b"\n", i)
    if j < 0:
        return None
    try:
        info = json.loads(data[i + len(READY):j].decode("utf-8", "replace").strip())
    except ValueError:
        return None
    return info if isinstance(info, dict) else None


def _tail(data, n=15):
    lines = data.decode("utf-8", "replace").splitlines()[-n:]
    return "\n".join("  | " + x for x in lines) or "  | (empty)"


def read_endpoints(state):
    p = Path(state) / ENDPOINTS
    try:
        d = json.loads(p.read_text())
    except (OSError, ValueError):
        return None
    return d if isinstance(d, dict) else None


def write_endpoints(state, endpoints):
    p = Path(state) / ENDPOINTS
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps(endpoints, indent=1) + "\n")
    os.replace(tmp, p)


def pid_alive(pid):
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie is not alive
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def stop_pid(pid, grace=5.0, proc=None):
    """SIGINT (the firmware stops in order), then SIGTERM, then SIGKILL. True if it was running."""
    if proc is not None and proc.poll() is not None:
        return False
    if proc is None and not pid_alive(pid):
        return False
    for sig, wait in ((signal.SIGINT, grace), (signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if proc is not None:
                if proc.poll() is not None:
                    return True
            elif not pid_alive(pid):
                return True
            time.sleep(0.05)
    return True
