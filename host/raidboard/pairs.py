"""A dual-active pair from the host (firmware/control/pair.md): `pair status|failback|fail|link`,
`sd owner`, `params`, and what `status`, `lop status` and `events` add on a pair. Both controllers
are reached through the pair's endpoints file (STATE/endpoints.json), each at its own management
endpoint; a board named by --port is one endpoint, so only that controller is asked."""
import heapq
import time

from . import boot, render
from .inputs import parse_sd
from .proto import LinkError
from .render import out
from .session import confirm, pair_endpoints

TAKEOVER_POLL_S = 0.1     # `pair fail`: how often the survivor is asked whether it took over


def each(sess, command, params=None, only=None):
    """Ask every controller of the pair `command`: [{controller, pid, running, answer | why |
    restart}], in controller order; None when the board is not a pair found through its endpoints
    file. `only`: that controller alone. The session's own controller is reached first, as any
    command reaches it (stderr says when controller 0 is down; exit 3 when none runs)."""
    ep = pair_endpoints(sess.args)
    if ep is None:
        return None
    sess.link()
    views = []
    for n, c in enumerate(ep["controllers"]):
        if only is None or n == only:
            views.append(_ask(sess, n, c, command, params))
    return views


def _ask(sess, n, c, command, params):
    v = {"controller": n, "pid": c.get("pid"), "running": boot.pid_alive(c.get("pid"))}
    if not v["running"]:
        v["restart"] = "raidboard boot %s %s --controller %d --detach" % (
            c.get("board", "BOARD"), c.get("state", "STATE"), n)
        return v
    if n == getattr(sess.args, "answering", None):
        v["answer"] = sess.call(command, params)
        return v
    other = sess.partner(n)
    try:
        v["answer"] = other.call(command, params)
    except LinkError as e:
        v["why"] = str(e)
    finally:
        other.close()
    return v


def answered(views):
    return [v for v in views or () if "answer" in v]


def tagged(ops, n):
    """Long operations as one controller reported them, each naming that controller."""
    return [dict(o, controller=n) for o in ops]


# ---- pair status ---------------------------------------------------------------------------------
def cmd_pair_status(sess, args):
    views = each(sess, "pair_status")
    if views is None:               # one endpoint named: that controller's view only
        mine = sess.call("pair_status")
        views = [{"controller": mine.get("controller"), "running": True, "answer": mine}]
    res = {"controllers": [_flat(v) for v in views]}
    out(args, res, lambda: pair_text(views))


def _flat(v):
    a = v.get("answer") or {}
    return dict({k: x for k, x in v.items() if k != "answer"}, **a)


def pair_text(views):
    lines = []
    for v in views:
        lines += _controller_lines(v)
    seen = answered(views)
    if seen:
        lines += ["drives (as controller %s sees them):" % seen[0]["controller"],
                  ownership_table(seen[0]["answer"].get("drives", []))]
    return "\n".join(lines)


def _controller_lines(v):
    n, a = v["controller"], v.get("answer")
    pid = " (pid %s)" % v["pid"] if v.get("pid") else ""
    if not v["running"]:
        return ["controller %s%s: NOT RUNNING (restart it: %s)" % (n, pid, v.get("restart"))]
    if a is None:
        return ["controller %s%s: running, not answering: %s" % (n, pid, v.get("why", "?"))]
    link = a.get("link") or {}
    return ["controller %s%s: %s, %s" % (n, pid, a.get("mode", "?"), serving_text(n, a.get("serving", []))),
            "  partner (controller %s): %s" % (1 - n if n in (0, 1) else "?", a.get("partner", "?")),
            "  link: %s; frames in %s, out %s; bad %s, resyncs %s, retransmits %s" % (
                "up" if link.get("up") else "down", link.get("frames_in", "?"), link.get("frames_out", "?"),
                link.get("bad_frames", "?"), link.get("resyncs", "?"), link.get("retransmits", "?")),
            "  failback: %s; disk writes: %s" % (a.get("failback", "?"), a.get("disk_writes", "?"))]


def serving_text(n, serving):
    """What a controller serves, in words: its own drives and ports, also its partner's (a
    takeover), or nothing (it stood down, or waits for a manual failback)."""
    if not serving:
        return "serving nothing"
    if serving == [n]:
        return "serving its own drives and ports"
    if n in serving:
        return "serving its own drives and ports and controller %s's (took over)" % ", ".join(
            str(x) for x in serving if x != n)
    return "serving controller %s's drives and ports" % ", ".join(str(x) for x in serving)


def ownership_table(drives):
    rows = [["sd%s" % d.get("sd"), "controller %s" % d.get("affinity"), "controller %s" % d.get("owner")]
            for d in drives]
    return render.table(rows, ["DRIVE", "OWNER (AFFINITY)", "SERVED BY"]) if rows else "no system drives"


def status_text(p):
    """`status`'s short pair section: the controller asked, its partner, who serves each drive."""
    n = p.get("controller")
    owners = ", ".join("sd%s → controller %s" % (d.get("sd"), d.get("owner")) for d in p.get("drives", []))
    return "\n".join(["pair: controller %s %s, %s; partner %s; failback %s" % (
        n, p.get("mode", "?"), serving_text(n, p.get("serving", [])), p.get("partner", "?"), p.get("failback", "?")),
        "ownership: %s" % (owners or "no system drives")])


def status_on_pair(sess, st):
    """`status` of a pair: its `pair` key is the controller's whole pair_status (with who serves
    each drive), and `lops` holds the partner's long operations too, each with its controller."""
    st["pair"] = sess.call("pair_status")
    me = st["pair"].get("controller")
    for v in answered(each(sess, "status", only=1 - me if me in (0, 1) else None)):
        st["lops"] = (st.get("lops") or []) + tagged(v["answer"].get("lops") or [], v["controller"])
    return st


def lop_status(views):
    """`lop status` of a pair: every controller's operations, each naming its controller, and what
    else each one reports (copy word, rate, change tracking) under `controllers`."""
    ops, rest = [], []
    for v in answered(views):
        a = v["answer"]
        ops += tagged(a.get("lops") or [], v["controller"])
        rest.append(dict({k: x for k, x in a.items() if k != "lops"}, controller=v["controller"]))
    return {"lops": ops, "controllers": rest}


# ---- ownership, failback, failing a controller, the link -----------------------------------------
def cmd_sd_owner(sess, args):
    sd = parse_sd(args.drive)
    r = sess.call("sd_owner", {"sd": sd, "controller": args.to})
    served = "" if r.get("owner") == r.get("affinity") else \
        " (controller %s serves it until controller %s is back)" % (r.get("owner"), r.get("affinity"))
    out(args, r, "sd%d: owned by controller %s%s" % (sd, r.get("affinity"), served))


def cmd_pair_failback(sess, args):
    r = sess.call("pair_failback")
    out(args, r, "failback started: each controller takes back its own drives and ports "
                 "(raidboard pair status shows when)")


def cmd_pair_fail(sess, args):
    n, survivor = args.which, 1 - args.which
    ep = pair_endpoints(args)
    alone = ep is not None and not boot.pid_alive(ep["controllers"][survivor].get("pid"))
    confirm(args, "fail controller %d? its firmware stops, as a board held in reset; %s" % (n, (
        "controller %d is not running: no drive is served until one is restarted" % survivor) if alone else
        "controller %d takes over its drives and ports" % survivor))
    talk = sess.partner(survivor) if ep is not None and not alone else sess
    try:
        r = talk.call("pair_fail", {"controller": n})
        st = _took_over(talk, n, args.timeout) if talk is not sess else None
    finally:
        if talk is not sess:
            talk.close()
    res = dict(r, survivor=survivor)
    if st is not None:
        res.update(serving=st.get("serving"), partner=st.get("partner"))
    out(args, res, lambda: "controller %d failed%s" % (n, "" if st is None else "; controller %d: partner %s, %s" % (
        survivor, st.get("partner"), serving_text(survivor, st.get("serving", [])))))


def _took_over(talk, n, timeout):
    """The survivor's pair_status once it serves controller n's drives (or when `timeout` ends)."""
    deadline = time.monotonic() + timeout
    while True:
        st = talk.call("pair_status")
        if n in st.get("serving", []) or time.monotonic() > deadline:
            return st
        time.sleep(TAKEOVER_POLL_S)


def cmd_pair_link(sess, args):
    if args.link == "down":
        confirm(args, "cut the back-end link? with both controllers alive controller 1 stands down (serves "
                      "nothing until it is restarted) and controller 0 takes over its drives and ports")
        r = sess.call("pair_link", {"state": "down"})
        out(args, r, "back-end link cut")
        return
    # the link is held down by whichever controller cut it: both are told
    views = answered(each(sess, "pair_link", {"state": "up"})) or \
        [{"controller": None, "answer": sess.call("pair_link", {"state": "up"})}]
    out(args, {"link": "up", "told": [v["controller"] for v in views]}, "back-end link restored")


# ---- controller parameters -----------------------------------------------------------------------
def cmd_params(sess, args):
    p = {}
    if args.failback is not None:
        p["failback"] = args.failback
    if args.autorebuild is not None:
        p["auto_rebuild"] = args.autorebuild == "on"
    r = sess.call("params_set", p) if p else sess.call("params_get")
    out(args, r, lambda: "\n".join(_param_line(k, v) for k, v in sorted(r.items())))


def _param_line(k, v):
    if k == "auto_rebuild":
        return "autorebuild: %s" % ("on" if v else "off")
    return "%s: %s" % (k, v)


# ---- events of both controllers ------------------------------------------------------------------
def merged_events(views):
    """Each controller's events (already in its own order), merged by time, each naming its controller."""
    lists = [tagged(v["answer"].get("events", []), v["controller"]) for v in answered(views)]
    return list(heapq.merge(*lists, key=_when))


def _when(e):
    t = e.get("time")
    return t if isinstance(t, (int, float)) and not isinstance(t, bool) else 0


def event_line(e):
    return ("c%s " % e["controller"] if "controller" in e else "") + render.event_line(e)
