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
                      ready_timeout=args.boot_timeout, management=args.management)
    ep = b.endpoints
    if args.detach:
        pid_file = Path(args.pid_file) if args.pid_file else Path(args.state_dir) / "firmware.pid"
        pid_file.write_text("%d\n" % b.pid)
        ep["pid_file"] = str(pid_file.resolve())
        boot.write_endpoints(args.state_dir, ep)
        out(args, ep, lambda: "\n".join(
            ["board %s running (pid %d), detached" % (Path(args.board).stem, b.pid)] + _where(ep) +
            ["stop it: raidboard stop --state %s" % args.state_dir]))
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
                print("\n".join(["board %s running (pid %d)" % (Path(args.board).stem, b.pid)] + _where(ep) +
                                ["Ctrl-C stops the board."]), flush=True)
            _follow_log(b, Path(ep["log"]))
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


def _where(ep):
    """Where a booted board listens, one line each: console, portals, management, log."""
    return ["console: %s" % ep["console"],
            "portals: %s" % " ".join(ep.get("portals") or []),
            "management: %s" % ep.get("management", "none (the board file names none)"),
            "log: %s" % ep["log"]]


def _follow_log(b, logpath):
    """Copy the firmware's log to stderr until the firmware exits."""
    with open(logpath, "rb") as f:
        f.seek(0, 2)
        while b.proc.poll() is None:
            chunk = f.read()
            if chunk:
                sys.stderr.buffer.write(chunk)
                sys.stderr.flush()
            else:
                time.sleep(0.2)
        sys.stderr.buffer.write(f.read())


def _forget(state, pid):
    ep = boot.read_endpoints(state)
    if ep and ep.get("pid") == pid:
        for p in (Path(state) / boot.ENDPOINTS, Path(ep.get("pid_file") or "/nonexistent")):
            try:
                p.unlink()
            except OSError:
                pass


def cmd_stop(sess, args):
    pid = None
    state = args.state or DEFAULT_STATE
    if args.pid_file:
        try:
            pid = int(Path(args.pid_file).read_text().split()[0])
        except (OSError, ValueError, IndexError) as e:
            raise UsageError("--pid-file %s: cannot read a pid: %s" % (args.pid_file, getattr(e, "strerror", None) or e))
    else:
        ep = boot.read_endpoints(state)
        pid = ep.get("pid") if ep else None
    if not pid or not boot.pid_alive(pid):
        if not args.pid_file:
            _forget(state, pid)
        out(args, {"stopped": False, "pid": pid}, "no board is running%s" % (
            "" if args.pid_file else " in %s" % state))
        return
    if not _is_firmware(pid):
        raise UsageError("pid %d is not a raidboard firmware process; not stopping it" % pid)
    boot.stop_pid(pid, grace=args.grace)
    if args.pid_file:
        try:
            Path(args.pid_file).unlink()
        except OSError:
            pass
    if not args.pid_file:
        _forget(state, pid)
    out(args, {"stopped": True, "pid": pid}, "board stopped (pid %d)" % pid)


def _is_firmware(pid):
    try:
        cmd = Path("/proc/%d/cmdline" % pid).read_bytes()
    except OSError:
        return True  # cannot tell (not Linux): trust the pid file
    return b"micropython" in cmd or b"main.py" in cmd


def cmd_console(sess, args):
    term.attach(console_url(args))
