"""The snapshot backup (WO 99/63441): `snapshot start|stop|status|watch|map`."""
import subprocess
import sys
import time

from . import render
from .errors import QuiesceError, EXIT_SNAPSHOT_LOST, Exit
from .inputs import parse_sd
from .render import out
from .session import confirm


def cmd_snapshot_start(sess, args):
    """Initiate, between the host's --freeze and --thaw commands when given: the link is opened
    first so the host stays frozen only for the initiate itself; thaw runs however it ended, also
    after a failed freeze, which may have frozen part of the host."""
    sd = parse_sd(args.drive)
    sess.link()
    failed = hook_failure("--freeze", args.freeze)
    if failed:
        thaw_failed = hook_failure("--thaw", args.thaw)
        raise QuiesceError("%s; nothing was initiated%s" % (failed, "; " + thaw_failed if thaw_failed else ""))
    started = None
    try:
        started = sess.call("snapshot_start", {"sd": sd})
    finally:
        failed = hook_failure("--thaw", args.thaw)
        if failed and started is None:     # the initiate's own failure is what the exit code tells
            print("raidboard: %s (the snapshot was not started)" % failed, file=sys.stderr)
        elif failed:
            raise QuiesceError("%s; the snapshot of sd%d WAS started (generation %s): thaw the host by hand"
                               % (failed, sd, started.get("generation")))
    out(args, started, "snapshot of sd%d started (generation %s)" % (sd, started.get("generation")))


def hook_failure(flag, command):
    """Run a host-side quiesce command through the shell; why it failed, or None. What it prints
    goes to stderr (stdout is this command's output, JSON with --json); it reads no input (the
    shell's script is on stdin)."""
    if not command:
        return None
    sys.stdout.flush()
    try:
        rc = subprocess.run(command, shell=True, stdin=subprocess.DEVNULL, stdout=sys.stderr).returncode
    except OSError as e:
        return "%s %r could not run: %s" % (flag, command, e)
    return "%s %r exited with %d" % (flag, command, rc) if rc else None


def cmd_snapshot_stop(sess, args):
    confirm(args, "terminate the snapshot? the backup LUN's point-in-time image is lost")
    r = sess.call("snapshot_stop")
    out(args, r, "snapshot terminated")


def cmd_snapshot_status(sess, args):
    r = sess.call("snapshot_status")
    out(args, r, lambda: render.snapshot_text(r))


def cmd_snapshot_watch(sess, args):
    """Log usage of the running snapshot as a progress bar, until Ctrl-C, --count or the end; a
    snapshot that ended by overflow or a failed log ends it with EXIT_SNAPSHOT_LOST (a script that
    watches its backup must not take that end for success)."""
    bar = None
    n = 0
    last = None
    while True:
        r = sess.call("snapshot_status")
        last = r
        n += 1
        if args.json:
            render.json_line(args, r)
        else:
            if bar is None:
                bar = render.Progress("log usage")
            note = "%s %s/%s chunks" % (r.get("state"), r.get("exceptions", "?"), r.get("capacity", "?"))
            bar.update(r.get("usage_pct"), note)
        if r.get("state") not in ("ACTIVE", "COPYING") or (args.count and n >= args.count):
            break
        time.sleep(args.interval)
    lost = _lost(last)
    if bar is not None:
        bar.done("snapshot " + str(last.get("state")))
        if last.get("last"):
            print(render.shown(render.last_snapshot_text(last["last"])), file=sys.stderr)
    if lost:
        how = (last.get("last") or {}).get("how") or "overflow"
        raise Exit(EXIT_SNAPSHOT_LOST, "the snapshot ended (%s): its backup image is gone" % how, data=last)


def _lost(st):
    # OVERFLOWED: ended, not yet reported to the backup LUN; IDLE: the outcome kept says how it ended
    if st.get("state") == "ACTIVE":
        return False
    return st.get("state") == "OVERFLOWED" or (st.get("last") or {}).get("how") in ("overflow", "log failed")


SHADES = " .:-=+*#%@"


def cmd_snapshot_map(sess, args):
    """One cell per region of the primary, shaded by how much of it was copied to the log."""
    r = sess.call("snapshot_map", {"cells": args.cells})
    cells = r.get("cells", [])

    def text():
        row = "".join(SHADES[min(9, (int(c) + 9) // 10)] for c in cells)
        lines = [row[i:i + 64] for i in range(0, len(row), 64)]
        return "\n".join("|%s|" % x for x in lines) + "\nscale: ' ' none, '.' up to 10%, ... '@' all of the region copied to the log"
    out(args, r, text)
