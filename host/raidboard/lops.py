"""Long operations (copy, resync, rebuild, initialize, check): `lop start|status|stop`."""
import json
import time

from . import pairs, render
from .errors import UsageError
from .inputs import parse_sd
from .render import out
from .session import confirm


def cmd_lop_start(sess, args):
    p = {"op": args.op, "sd": parse_sd(args.drive)}
    if args.to is not None:
        p["to"] = parse_sd(args.to)
    for kv in args.arg or []:
        k, eq, v = kv.partition("=")
        if not eq or not k:
            raise UsageError("--arg %r: write it as NAME=VALUE" % kv)
        try:
            p[k] = json.loads(v)
        except ValueError:
            p[k] = v
    if wipes(p):
        confirm(args, _wipe_question(p))
    r = sess.call("lop_start", p)
    if not args.wait:
        out(args, r, "%s started on sd%d" % (args.op, p["sd"]))
        return
    _lop_wait(sess, args, p["sd"])


def wipes(p):
    """Whether lop_start with arguments `p` overwrites a drive or a disk (also asked by `call`)."""
    return p.get("op") in ("init", "copy", "resync") or (p.get("op") == "rebuild" and p.get("standby") is not None)


def _wipe_question(p):
    # (the values may come from --arg as any JSON: formatted with %s, never assumed numbers)
    if p["op"] == "init":
        return "initialize sd%s? all its data is lost" % (p["sd"],)
    if p["op"] == "rebuild":
        return "rebuild sd%s onto disk slot %s? the disk in it is wiped" % (p["sd"], p["standby"])
    return "%s onto sd%s? its data is overwritten" % (p["op"], p.get("to", p.get("target", "?")))


def _lop_ops(r):
    ops = r.get("lops", r.get("ops"))
    if ops is None:
        ops = [r] if r else []
    return ops


# the kinds `lop status --op` picks (a re-sync runs as a copy)
KINDS = ("copy", "rebuild", "init", "check")


def cmd_lop_status(sess, args):
    if args.wait:
        return _lop_wait(sess, args, parse_sd(args.drive) if args.drive is not None else None)
    p = {"sd": parse_sd(args.drive)} if args.drive is not None else {}
    r = _status(sess, args, p)
    if args.op is None:
        out(args, r, lambda: render.lops_table(_lop_ops(r)))
        return
    ops = [o for o in _lop_ops(r) if o.get("op") == args.op]
    none = "no %s runs%s" % (args.op, " on sd%d" % p["sd"] if p else "")
    out(args, {"lops": ops}, lambda: render.lops_table(ops, none))


def _status(sess, args, p):
    # a pair found through its endpoints file: both controllers' operations, each naming the
    # controller that runs it (unless --controller names one)
    views = pairs.each(sess, "lop_status", p) if getattr(args, "controller", None) is None else None
    return sess.call("lop_status", p) if views is None else pairs.lop_status(views)


def _lop_wait(sess, args, sd):
    p = {"sd": sd} if sd is not None else {}
    bar = render.Progress("sd%s" % sd if sd is not None else "lop")
    while True:
        r = _status(sess, args, p)
        ops = [o for o in _lop_ops(r) if sd is None or o.get("sd") in (sd, None) or sd in o.get("drives", ())]
        running = [o for o in ops if str(o.get("state", o.get("status", ""))).upper() in ("RUNNING", "ACTIVE", "IN_PROGRESS")]
        if args.json:
            render.json_line(args, r)
        elif ops:
            o = running[0] if running else ops[0]
            bar.update(o.get("percent", o.get("pct", 0)), render.lop_what(o))
        if not running:
            break
        time.sleep(args.interval)
    if not args.json:
        bar.done("done" if ops else "no long operation running")


def cmd_lop_stop(sess, args):
    sd = parse_sd(args.drive)
    r = sess.call("lop_stop", {"sd": sd})
    out(args, r, lambda: "stopped: " + render.lop_line(r))


def cmd_lop_clear(sess, args):
    sd = parse_sd(args.drive)
    confirm(args, "clear the incomplete copy mark of sd%d? hosts then read it as if it were a whole backup" % sd)
    r = sess.call("lop_clear", {"sd": sd})
    out(args, r, "sd%d: incomplete copy mark cleared" % sd)
