"""Looking into the board: raw CDBs, the event log, NV memory and any firmware command
(`cdb`, `events`, `nvram`, `call`)."""
import json
import sys
import time
from pathlib import Path

from . import nvimage, pairs, render
from .errors import EXIT_NVRAM, EXIT_SCSI, Exit, UsageError
from .inputs import parse_portlun, read_hex
from .lops import wipes
from .proto import LinkError
from .render import out
from .session import confirm


def cmd_cdb(sess, args):
    port, lun = parse_portlun(args.portlun)
    cdb = read_hex(args.cdb, "CDB")
    if not 6 <= len(cdb) <= 16:
        raise UsageError("a CDB is 6 to 16 bytes, got %d" % len(cdb))
    data = b""
    if args.data is not None and args.data_file is not None:
        raise UsageError("give data-out either with --data or with --data-file, not both")
    if args.data is not None:
        data = read_hex(args.data, "--data")
    elif args.data_file is not None:
        try:
            data = Path(args.data_file).read_bytes()
        except OSError as e:
            raise UsageError("--data-file %s: %s" % (args.data_file, e.strerror or e))
    r = sess.call("cdb", {"port": port, "lun": lun, "cdb": cdb.hex(), "data": data.hex()})
    status = int(r.get("status", -1))
    data_in = bytes.fromhex(r.get("data") or "")
    if args.out:
        try:
            Path(args.out).write_bytes(data_in)
        except OSError as e:
            raise UsageError("--out %s: %s" % (args.out, e.strerror or e))
    res = {"status": status, "status_name": render.STATUS.get(status, "unknown"),
           "sense": render.sense_dict(r.get("sense")), "data": r.get("data") or "", "data_len": len(data_in)}
    word = render.word_meaning(cdb, data_in) if status == 0 else None
    if word:
        res["word"] = word

    def text():
        lines = [render.sense_text(status, r.get("sense"))]
        if word:
            lines.append(word)
        if data_in:
            lines.append("data-in: %d bytes%s" % (len(data_in), (" (written to %s)" % args.out) if args.out else ""))
            lines.append(render.hexdump(data_in, limit=None if args.all else 512))
        return "\n".join(lines)
    if status == 0 or not args.json:     # with --json a failure's one document is the error's
        out(args, res, text)
    if status != 0:
        raise Exit(EXIT_SCSI, "SCSI status 0x%02X %s" % (status, res["status_name"]), data=res)


def cmd_events(sess, args):
    p = {"n": args.n} if args.n is not None else {}
    # a pair found through its endpoints file: both controllers' events merged by time, unless
    # --controller names one (host/README.md "A dual-active pair")
    views = pairs.each(sess, "events", p) if getattr(args, "controller", None) is None else None
    if views is None:
        r = sess.call("events", p)
    else:
        merged = pairs.merged_events(views)
        r = {"events": merged[-args.n:] if args.n else merged}
    evs = r.get("events", [])
    if not args.follow:
        out(args, r, lambda: "\n".join(pairs.event_line(e) for e in evs) or "no events")
        return
    links = _event_links(sess, views)       # listening on each before anything is printed
    try:
        for e in evs:
            _print_event(args, e)
        _follow(args, links, evs)
    finally:
        for s in links.values():
            if s is not sess:
                s.close()


def _event_links(sess, views):
    """The sessions `events --follow` listens on, by controller (None: the one board)."""
    if views is None:
        return {None: sess}
    mine = getattr(sess.args, "answering", None)
    links = {v["controller"]: sess if v["controller"] == mine else sess.partner(v["controller"])
             for v in pairs.answered(views)}
    for n, s in list(links.items()):
        try:
            s.link()            # opened now: events from here on reach it
        except LinkError as err:
            if s is sess:
                raise
            print("raidboard: controller %s cannot be followed (%s)" % (n, err), file=sys.stderr)
            del links[n]
    return links


def _follow(args, links, evs):
    # each controller numbers its own events: what was printed is remembered per controller
    seen = {n: max([e.get("seq", -1) for e in evs if e.get("controller") == n] or [-1]) for n in links}
    deadline = time.monotonic() + args.seconds if args.seconds else None
    got = 0
    while links:
        left = 1.0 if deadline is None else deadline - time.monotonic()
        if left <= 0:
            return
        for n, s in list(links.items()):
            try:
                e = s.link().wait_event(min(left, 1.0) / len(links))
            except LinkError as err:
                if n is None or len(links) == 1:
                    raise
                print("raidboard: controller %s stopped answering (%s); following the other" % (n, err),
                      file=sys.stderr)
                del links[n]
                continue
            if e is None or e.get("seq", seen[n] + 1) <= seen[n]:
                continue
            seen[n] = e.get("seq", seen[n])
            _print_event(args, e if n is None else dict(e, controller=n))
            got += 1
            if args.count and got >= args.count:
                return


def _print_event(args, e):
    if args.json:
        render.json_line(args, e)
    else:
        print(pairs.event_line(e), flush=True)


# firmware commands that `call` asks about, as the commands above do
DESTROYS = ("sd_delete", "log_set", "lun_unmap", "mask_clear", "snapshot_stop", "disk_fail", "disk_remove",
            "disk_replace", "lop_clear")


def cmd_call(sess, args):
    try:
        params = json.loads(args.params) if args.params else {}
    except ValueError as e:
        raise UsageError("arguments must be a JSON object: %s" % e)
    if not isinstance(params, dict):
        raise UsageError("arguments must be a JSON object, e.g. '{\"sd\": 1}'")
    if not args.name.replace("_", "").isalnum():
        raise UsageError("%r is not a command name (see the command table in firmware/README.md)" % args.name)
    if args.name in DESTROYS or (args.name == "lop_start" and wipes(params)) or \
            (args.name == "chap_set" and not params.get("user")):
        confirm(args, "send %s? it destroys data or configuration" % args.name)
    r = sess.call(args.name, params)
    out(args, r, lambda: json.dumps(r, sort_keys=True))


def cmd_nvram_dump(sess, args):
    try:
        data = Path(args.file).read_bytes()
    except OSError as e:
        raise UsageError("nvram dump %s: %s" % (args.file, e.strerror or e))
    d = nvimage.dump(data)
    d["file"] = str(args.file)
    valid = d.get("current") is not None
    if valid or not args.json:
        out(args, d, lambda: nvimage.text(d))
    if not valid:
        raise Exit(EXIT_NVRAM, "%s holds no valid bank of NV memory" % args.file, data=d)


def cmd_nvram_show(sess, args):
    r = sess.call("nvram_dump")
    out(args, r, lambda: json.dumps(r, indent=1, sort_keys=True))
