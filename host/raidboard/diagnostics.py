"""Looking into the board: raw CDBs, the event log, NV memory and any firmware command
(`cdb`, `events`, `nvram`, `call`)."""
import json
import time
from pathlib import Path

from . import nvimage, render
from .errors import EXIT_NVRAM, EXIT_SCSI, Exit, UsageError
from .inputs import parse_portlun, read_hex
from .lops import wipes
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
    r = sess.call("events", p)
    evs = r.get("events", [])
    if not args.follow:
        out(args, r, lambda: "\n".join(render.event_line(e) for e in evs) or "no events")
        return
    seen = -1
    for e in evs:
        _print_event(args, e)
        seen = max(seen, e.get("seq", -1))
    link = sess.link()
    deadline = time.monotonic() + args.seconds if args.seconds else None
    got = 0
    while True:
        left = 1.0 if deadline is None else deadline - time.monotonic()
        if left <= 0:
            break
        e = link.wait_event(min(left, 1.0))
        if e is None:
            continue
        if e.get("seq", seen + 1) <= seen:
            continue
        seen = e.get("seq", seen)
        _print_event(args, e)
        got += 1
        if args.count and got >= args.count:
            break


def _print_event(args, e):
    if args.json:
        render.json_line(args, e)
    else:
        print(render.event_line(e), flush=True)


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
