"""The board's process: `boot` (foreground, detached or attached), `stop`, and `console`."""
import re
import sys
import time
from pathlib import Path

from . import boot, render, term
from .errors import UsageError
from .render import out
from .session import DEFAULT_STATE, console_url

# --management: tcp:HOST:PORT, PORT 0..65535 (0: any free port)
TCP = re.compile(r"tcp:[^:\s]+:(6553[0-5]|655[0-2]\d|65[0-4]\d\d|6[0-4]\d{3}|[1-5]?\d{1,4})")


def cmd_boot(sess, args):
    if args.detach and args.attach:
        raise UsageError("--detach and --attach exclude each other")
    if args.pid_file and not args.detach:
        raise UsageError("--pid-file goes with --detach")
    console = args.console
    if console is not None and console != "pty" and not console.startswith("tcp:"):
        raise UsageError("--console %r: use tcp:HOST:PORT (port 0 picks a free one) or pty" % console)
    if args.management is not None and not TCP.fullmatch(args.management):
        raise UsageError("--management %r: use tcp:HOST:PORT (port 0 picks a free one)" % args.management)
    b = boot.start(args.board, args.state_dir, console=console, iscsi=args.iscsi,
                   ready_timeout=args.boot_timeout, management=args.management, controller=args.controller)
    ep = b.endpoints
    if args.detach:
        pid_file = Path(args.pid_file) if args.pid_file else Path(args.state_dir) / "firmware.pid"
        pid_file.write_text("".join("%d\n" % p for p in _pids(ep)))
        ep["pid_file"] = str(pid_file.resolve())
        boot.write_endpoints(args.state_dir, ep)
        out(args, ep, lambda: "\n".join(_running(args, ep, b) + [
            "stop it: raidboard stop --state %s" % args.state_dir]))
        b.close_fds()
        return
    try:
        if args.attach:
            # the portals too: with port 0 this is the only place a person learns them
            print("\n".join(_where(ep)[:3]), file=sys.stderr)
            term.attach(ep["console"], stop_note="detaching stops the board")
        else:
            if args.json:
                render.json_line(args, ep)
            else:
                print("\n".join(_running(args, ep, b) + ["Ctrl-C stops the board."]), flush=True)
            _follow_logs(getattr(b, "boards", [b]))
    except KeyboardInterrupt:
        pass
    finally:
        b.stop()
        b.close_fds()
        _forget(args.state_dir, b.pid)
        if not args.json and not args.attach:
            print("board stopped", file=sys.stderr)
    if b.proc.returncode not in (0, None, -2, -15) and not args.attach:
        print("firmware exited with code %s (see %s)" % (b.proc.returncode, ep["log"]), file=sys.stderr)


def _running(args, ep, b):
    # what a person needs to reach a booted board: per controller of a pair
    name = Path(args.board).stem
    detached = ", detached" if args.detach else ""
    if not ep.get("controllers"):
        return ["board %s running (pid %d)%s" % (name, b.pid, detached)] + _where(ep)
    booted = "running" if args.controller is None else \
        "controller %d started beside its partner" % args.controller
    lines = ["board %s (a dual-active pair) %s%s" % (name, booted, detached)]
    for c in ep["controllers"]:
        if c.get("pid") and boot.pid_alive(c["pid"]):
            lines += ["controller %d (pid %d)" % (c["controller"], c["pid"])] + ["  " + w for w in _where(c)]
        elif c.get("pid"):
            lines.append("controller %d (pid %d): not running" % (c["controller"], c["pid"]))
    return lines


def _where(ep):
    """Where a booted board listens, one line each: console, portals, management, log."""
    return ["console: %s" % ep["console"],
            "portals: %s" % " ".join(ep.get("portals") or []),
            "management: %s" % ep.get("management", "none (the board file names none)"),
            "log: %s" % ep["log"]]


def _follow_logs(boards):
    """Copy the firmware's log to stderr until the firmware exits; of a pair booted together, both
    controllers' logs, each line marked `c0|`/`c1|`, until both have exited (one killed for a
    failover keeps the other's log coming)."""
    logs = [open(b.endpoints["log"], "rb") for b in boards]
    marks = [b"c%d| " % n if len(boards) > 1 else b"" for n in range(len(boards))]
    rest = [b""] * len(boards)
    try:
        for f in logs:
            f.seek(0, 2)
        while True:
            running = any(b.proc.poll() is None for b in boards)
            got = False
            for i, f in enumerate(logs):
                lines = (rest[i] + f.read()).split(b"\n")
                rest[i] = lines.pop() if running else b""
                got = got or any(lines)
                sys.stderr.buffer.write(b"".join(marks[i] + ln + b"\n" for ln in lines if ln))
            sys.stderr.flush()
            if not running:
                return
            if not got:
                time.sleep(0.2)
    finally:
        for f in logs:
            f.close()


def _forget(state, pid):
    ep = boot.read_endpoints(state)
    if ep and ep.get("pid") == pid:
        for p in (Path(state) / boot.ENDPOINTS, Path(ep.get("pid_file") or "/nonexistent")):
            try:
                p.unlink()
            except OSError:
                pass


def _pids(ep, controller=None):
    # the firmware processes of a board's endpoints: one, or a pair's (or one controller of it)
    if not ep:
        return []
    ctls = ep.get("controllers")
    if not ctls:
        return [ep["pid"]] if ep.get("pid") else []
    return [c["pid"] for n, c in enumerate(ctls) if c.get("pid") and controller in (None, n)]


def cmd_stop(sess, args):
    state = args.state or DEFAULT_STATE
    ep = None
    if args.pid_file:
        try:
            pids = [int(w) for w in Path(args.pid_file).read_text().split()]
            if not pids:
                raise ValueError("the file is empty")
        except (OSError, ValueError) as e:
            raise UsageError("--pid-file %s: cannot read a pid: %s" % (args.pid_file, getattr(e, "strerror", None) or e))
    else:
        ep = boot.read_endpoints(state)
        pids = _pids(ep, args.controller)
    live = [p for p in pids if boot.pid_alive(p)]
    if not live:
        if not args.pid_file:
            _forget(state, ep.get("pid") if ep else None)
        out(args, {"stopped": False, "pid": pids[0] if pids else None}, "no board is running%s" % (
            "" if args.pid_file else " in %s" % state))
        return
    for pid in live:
        if not _is_firmware(pid):
            raise UsageError("pid %d is not a raidboard firmware process; not stopping it" % pid)
    for pid in live:
        boot.stop_pid(pid, grace=args.grace)
    if args.pid_file:
        try:
            Path(args.pid_file).unlink()
        except OSError:
            pass
    elif not any(boot.pid_alive(p) for p in _pids(ep)):
        _forget(state, ep.get("pid"))
    res = {"stopped": True, "pid": live[0]}
    if len(pids) > 1:
        res["pids"] = live           # both controllers of a pair
    what = "board" if args.controller is None or not (ep or {}).get("controllers") else \
        "controller %d of the pair" % args.controller
    out(args, res, "%s stopped (pid %s)" % (what, ", ".join(str(p) for p in live)))


def _is_firmware(pid):
    try:
        cmd = Path("/proc/%d/cmdline" % pid).read_bytes()
    except OSError:
        return True  # cannot tell (not Linux): trust the pid file
    return b"micropython" in cmd or b"main.py" in cmd


def cmd_console(sess, args):
    term.attach(console_url(args))
