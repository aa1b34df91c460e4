"""Commands on system drives, their LOG bit and the LUN map: `status`, `sd`, `log`, `lun`."""
from . import pairs, render
from .errors import UsageError
from .inputs import parse_portlun, parse_raid, parse_sd, resolve_slot
from .model import LEVELS, MAX_MEMBERS
from .proto import BoardError
from .render import out
from .session import confirm


def cmd_status(sess, args):
    st = sess.call("status")
    if st.get("pair") is not None:
        pairs.status_on_pair(sess, st)

    def text():
        lines = ["board: %s" % st.get("model", "?")]
        if st.get("pair") is not None:
            lines.append(pairs.status_text(st["pair"]))
        lines.append(render.drives_table(st.get("drives", [])))
        lines.append("")
        lines.append(render.luns_table(st.get("luns", [])))
        lines.append("")
        lines.append(render.snapshot_text(st.get("snapshot") or {}))
        for op in st.get("lops", []) or []:
            lines.append("long operation: " + render.lop_line(op) + (
                " (controller %s)" % op["controller"] if "controller" in op else ""))
        ev = st.get("events", []) or []
        if ev:
            lines.append("recent events%s:" % (
                " (controller %s)" % st["pair"].get("controller") if st.get("pair") is not None else ""))
            lines.extend("  " + render.event_line(e) for e in ev)
        return "\n".join(lines)
    out(args, st, text)


def cmd_sd_list(sess, args):
    r = sess.call("sd_list")
    out(args, r, lambda: render.drives_table(r.get("drives", [])))


def cmd_sd_show(sess, args):
    sd = parse_sd(args.drive)
    drives = [d for d in sess.call("sd_list").get("drives", []) if d.get("sd") == sd]
    if not drives:
        raise BoardError("NO_SUCH_DRIVE", "system drive %d does not exist" % sd)
    d = drives[0]

    def text():
        lines = [render.drives_table([d]), "", render.table(
            [[m.get("slot"), m.get("name"), m.get("start"), m.get("blocks")] for m in d.get("members", [])],
            ["SLOT", "NAME", "START", "BLOCKS"])]
        return "\n".join(lines)
    out(args, d, text)


def cmd_sd_create(sess, args):
    p = {"raid": parse_raid(args.raid)}
    slots = [x for x in args.slots.replace(" ", ",").split(",") if x]
    if not slots:
        raise UsageError("--slots needs at least one disk slot, e.g. --slots 0,1,2,3")
    if len(slots) > MAX_MEMBERS:
        raise UsageError("--slots names %d disks; a system drive has at most %d members in NV memory"
                         % (len(slots), MAX_MEMBERS))
    p["slots"] = [resolve_slot(sess, x) for x in slots]
    if args.mb is not None:
        p["mb"] = args.mb
    if args.stripe_kb is not None:
        p["stripe_kb"] = args.stripe_kb
    if args.wb:
        p["wb"] = True
    if args.sd is not None:
        p["sd"] = parse_sd(args.sd)
    r = sess.call("sd_create", p)
    out(args, r, "created sd%s (%s over slots %s)" % (r.get("sd"), LEVELS.get(p["raid"]),
                                                      ",".join(map(str, p["slots"]))))


def cmd_sd_delete(sess, args):
    sd = parse_sd(args.drive)
    confirm(args, "delete sd%d? all its data is lost" % sd)
    r = sess.call("sd_delete", {"sd": sd})
    out(args, r, "deleted sd%d" % sd)


def cmd_sd_policy(sess, args):
    sd = parse_sd(args.drive)
    wb = args.policy in ("wb", "write-back")
    r = sess.call("sd_policy", {"sd": sd, "wb": wb})
    out(args, r, "sd%d is now %s" % (sd, "write-back" if wb else "write-through"))


def cmd_log(sess, args):
    sd = parse_sd(args.drive)
    p = {"sd": sd}
    if args.action == "set":
        confirm(args, "make sd%d the log drive? snapshots overwrite its data" % sd)
    if getattr(args, "chunk_kb", None) is not None:
        p["chunk_kb"] = args.chunk_kb
    r = sess.call("log_" + args.action, p)
    out(args, r, "sd%d %s" % (sd, "is the log system drive (LOG bit set)" if args.action == "set"
                              else "is no longer a log system drive"))


def cmd_lun_list(sess, args):
    r = sess.call("lun_list")
    out(args, r, lambda: render.luns_table(r.get("map", [])))


def cmd_lun_show(sess, args):
    port, lun = parse_portlun(args.portlun)
    entries = [e for e in sess.call("lun_list").get("map", []) if (e.get("port"), e.get("lun")) == (port, lun)]
    if not entries:
        raise BoardError("NOT_MAPPED", "port %d LUN %d is not mapped" % (port, lun))
    out(args, entries[0], lambda: render.luns_table(entries))


def cmd_lun_map(sess, args):
    port, lun = parse_portlun(args.portlun)
    sd = parse_sd(args.drive)
    r = sess.call("lun_map", {"port": port, "lun": lun, "sd": sd})
    out(args, r, "port %d LUN %d -> sd%d" % (port, lun, sd))


def cmd_lun_unmap(sess, args):
    port, lun = parse_portlun(args.portlun)
    confirm(args, "unmap port %d LUN %d? the hosts using it lose it" % (port, lun))
    r = sess.call("lun_unmap", {"port": port, "lun": lun})
    out(args, r, "port %d LUN %d unmapped" % (port, lun))
