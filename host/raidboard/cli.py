"""`raidboard`: boot an emulated DAC960SX/SF board, open its console, and manage it over the serial line.

Exit codes (also in host/README.md):
  0  ok
  1  the board refused the request (ERR from the board; the code and message are printed)
  2  usage error (bad arguments, unreadable input file)
  3  cannot reach the board (not running, wrong --port/--state, console busy, no answer)
  4  the board could not be booted (firmware missing, bad board definition, exited during boot)
  5  the board answered something that is not the line protocol
  6  `cdb`: the command completed with a SCSI status other than GOOD
  7  `nvram dump`: the image holds no valid bank
  130 interrupted (Ctrl-C)
"""
import argparse
import getpass
import json
import os
import re
import sys
import time
from pathlib import Path

from . import boot as bootmod
from . import render
from .proto import BoardError, Link, LinkError, ProtocolError, normalize_url

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_BOOT, EXIT_PROTOCOL, EXIT_SCSI, EXIT_NVRAM = range(8)
EXIT_UNCONFIRMED = 8       # a command that destroys data was not confirmed: nothing done
EXIT_INTERRUPTED = 130
DEFAULT_STATE = "state"
DEFAULT_CONSOLE = "socket://127.0.0.1:4960"  # the console of boards/dac960sx.json


class UsageError(Exception):
    """Bad input from the user (exit code 2)."""


class Exit(Exception):
    def __init__(self, code):
        super().__init__(code)
        self.code = code


# -- finding and talking to the board ------------------------------------------------------------

def console_url(args):
    """Where the board's console is: --port, else --state's endpoints file, else $RAIDBOARD_PORT,
    else ./state if a board runs there, else the default board's console."""
    if getattr(args, "port", None):
        return normalize_url(args.port)
    state = getattr(args, "state", None)
    if state:
        ep = bootmod.read_endpoints(state)
        if not ep or not ep.get("console"):
            raise LinkError("no board recorded in %s (no %s); boot one with "
                            "`raidboard boot boards/dac960sx.json %s --detach`" % (state, bootmod.ENDPOINTS, state))
        if ep.get("pid") and not bootmod.pid_alive(ep["pid"]):
            raise LinkError("the board of %s (pid %s) is not running any more; boot it again with "
                            "`raidboard boot %s %s --detach`" % (state, ep["pid"], ep.get("board", "BOARD"), state))
        return ep["console"]
    if os.environ.get("RAIDBOARD_PORT"):
        return normalize_url(os.environ["RAIDBOARD_PORT"])
    ep = bootmod.read_endpoints(DEFAULT_STATE)
    if ep and ep.get("console") and bootmod.pid_alive(ep.get("pid")):
        return ep["console"]
    return DEFAULT_CONSOLE


PASSWORD_ENV = "RAIDBOARD_PASSWORD"
CHAP_SECRET_ENV = "RAIDBOARD_CHAP_SECRET"


def read_secret(path, flag, env, prompt, twice=False):
    """A secret never taken from the command line, where `ps` and shell history would show it: the
    first line of the file `path` (option `flag`), else $`env`, else asked on the terminal (twice
    when `twice`, for a new one). None when there is no way to get it."""
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                return f.readline().rstrip("\r\n")
        except OSError as e:
            raise UsageError("%s %s: %s" % (flag, path, e.strerror or e))
    if env and os.environ.get(env) is not None:
        return os.environ[env]
    if not sys.stdin.isatty():
        return None
    got = getpass.getpass(prompt + ": ")
    if twice and getpass.getpass(prompt + " again: ") != got:
        raise UsageError("the two entries differ: nothing was changed")
    return got


def console_password(args):
    """The console password: --password-file, else $RAIDBOARD_PASSWORD, else a prompt."""
    pw = read_secret(getattr(args, "password_file", None), "--password-file", PASSWORD_ENV, "console password")
    if pw is None:
        raise BoardError("PASSWORD_REQUIRED", "the console has a password and none was given")
    return pw


class Session:
    """Holds the open link for one command (or for the whole interactive shell)."""

    def __init__(self, args):
        self.args = args
        self._link = None
        self.password = None    # the one this session logged in with

    def link(self):
        if self._link is None:
            link = Link(console_url(self.args), timeout=self.args.timeout)
            try:
                if link.hello.get("login"):
                    self.password = console_password(self.args)
                    link.login(self.password)
            except BaseException:
                link.close()
                raise
            self._link = link
        return self._link

    def call(self, command, params=None, timeout=None):
        return self.link().request(command, params or {}, timeout=timeout)

    def close(self):
        if self._link is not None:
            self._link.close()
            self._link = None


def out(args, data, text):
    """Print `data` as JSON with --json, else `text` (a string or a callable making one)."""
    if args.json:
        print(json.dumps(data, indent=1, sort_keys=True))
    else:
        t = text() if callable(text) else text
        if t:
            print(t)


# -- argument helpers ----------------------------------------------------------------------------

def parse_sd(s):
    t = str(s).strip().lower()
    if t.startswith("sd"):
        t = t[2:]
    elif t.startswith("v"):  # StorCLI-style virtual drive
        t = t[1:]
    if not t.isdigit() or not 0 <= int(t) <= 7:
        raise UsageError("%r is not a system drive: use sd0..sd7 or 0..7" % s)
    return int(t)


def parse_portlun(s):
    t = str(s).strip()
    parts = t.replace(":", "/").split("/")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise UsageError("%r is not PORT/LUN: write it like 0/1 (host port 0 or 1, LUN 0..7)" % s)
    port, lun = int(parts[0]), int(parts[1])
    if port not in (0, 1) or not 0 <= lun <= 7:
        raise UsageError("%r: host port must be 0 or 1 and LUN 0..7" % s)
    return port, lun


RAID_NAMES = {"0": 0, "1": 1, "3": 3, "5": 5, "6": 6, "0+1": 6, "10": 6, "01": 6, "7": 7, "jbod": 7}


def parse_raid(s):
    t = str(s).strip().lower()
    if t.startswith("raid"):
        t = t[4:]
    if t not in RAID_NAMES:
        raise UsageError("%r is not a RAID level: use 0, 1, 3, 5, 0+1 (6) or jbod (7)" % s)
    return RAID_NAMES[t]


def resolve_slot(sess, s):
    """A disk slot by index (3) or by channel:target name (1:0)."""
    t = str(s).strip()
    if t.isdigit():
        return int(t)
    if ":" in t:
        disks = sess.call("disk_list").get("disks", [])
        for d in disks:
            if str(d.get("name")) == t:
                return d["slot"]
        raise UsageError("no disk slot named %r (see `raidboard disk list`)" % s)
    raise UsageError("%r is not a disk slot: use its index (0, 1, ...) or channel:target (0:1)" % s)


def read_hex(s, what):
    t = "".join(str(s).split())
    if t.lower().startswith("0x"):
        t = t[2:]
    try:
        return bytes.fromhex(t)
    except ValueError:
        raise UsageError("%s %r is not hex (write bytes as hex digits, e.g. 2800000000000000010000)" % (what, s))


# -- commands ------------------------------------------------------------------------------------

def cmd_status(sess, args):
    st = sess.call("status")

    def text():
        lines = ["board: %s" % st.get("model", "?")]
        lines.append(render.drives_table(st.get("drives", [])))
        lines.append("")
        lines.append(render.luns_table(st.get("luns", [])))
        lines.append("")
        lines.append(render.snapshot_text(st.get("snapshot") or {}))
        for op in st.get("lops", []) or []:
            lines.append("long operation: " + render.lop_line(op))
        ev = st.get("events", []) or []
        if ev:
            lines.append("recent events:")
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
    out(args, r, "created sd%s (%s over slots %s)" % (r.get("sd"), render.LEVELS.get(p["raid"]),
                                                      ",".join(map(str, p["slots"]))))


def confirm(args, question):
    """Ask before a command that destroys data or configuration: "QUESTION [y/N]" on a terminal,
    where only y or yes goes on; without a terminal (a script) only --force goes on. Otherwise
    nothing is done and the exit code is 8 (host/README.md)."""
    if getattr(args, "force", False):
        return
    if not sys.stdin.isatty():
        print("raidboard: %s -- not done: no terminal to ask on; add --force to do it from a script"
              % question, file=sys.stderr)
        raise Exit(EXIT_UNCONFIRMED)
    print("%s [y/N] " % question, end="", file=sys.stderr, flush=True)
    if sys.stdin.readline().strip().lower() not in ("y", "yes"):
        print("raidboard: not done", file=sys.stderr)
        raise Exit(EXIT_UNCONFIRMED)


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


def cmd_mask_list(sess, args):
    r = sess.call("mask_list")

    def text():
        if not r["masks"]:
            return "no masks: every initiator sees every mapped LUN"
        from .nvimage import shown
        return "\n".join("%s  %s" % (shown(m["initiator"]), " ".join("%d/%d" % tuple(x) for x in m["luns"]) or "(none)")
                         for m in r["masks"])
    out(args, r, text)


# what NV memory holds (nvram/README.md "String fields"), in UTF-8 bytes: checked before sending so
# a string is refused here with its field and limit, as the board would refuse it
CHAP_USER_MAX, CHAP_SECRET_MIN, CHAP_SECRET_MAX, ISCSI_NAME_MAX, MAX_MEMBERS = 63, 12, 32, 223, 8
ISCSI_NAME = re.compile(r"iqn\.\d{4}-(0[1-9]|1[0-2])\.[a-z0-9-]+(\.[a-z0-9-]+)*(:[a-z0-9.:-]+)?"
                        r"|eui\.[0-9a-f]{16}|naa\.([0-9a-f]{16}|[0-9a-f]{32})")


def nv_text(value, what, most, least=0):
    """`value` if NV memory can hold it: UTF-8 text without control characters, least..most bytes."""
    try:
        n = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise UsageError("%s is not UTF-8 text" % what)
    bad = next((i for i, c in enumerate(value) if c < " " or "\x7f" <= c <= "\x9f"), None)
    if bad is not None:
        raise UsageError("%s has control character U+%04X at %d" % (what, ord(value[bad]), bad + 1))
    if not least <= n <= most:
        raise UsageError("%s is %d bytes in UTF-8; NV memory holds %s bytes"
                         % (what, n, ("%d to %d" % (least, most)) if least else "at most %d" % most))
    return value


def iscsi_name(name):
    """`name` if it is an iSCSI name in its normalized form (RFC 3720 3.2.6, RFC 3722)."""
    nv_text(name, "the initiator name", ISCSI_NAME_MAX)
    bad = next((c for c in name if not (c in "-.:" or "a" <= c <= "z" or "0" <= c <= "9")), None)
    if bad is not None:
        raise UsageError("the initiator name: U+%04X is not allowed: an iSCSI name has a-z 0-9 - . : only "
                         "(lowercase, RFC 3722)" % ord(bad))
    if not ISCSI_NAME.fullmatch(name):
        raise UsageError("the initiator name %r is not an iSCSI name: iqn.yyyy-mm.reversed.domain[:name], "
                         "eui. + 16 hex digits or naa. + 16 or 32 hex digits (RFC 3720 3.2.6)" % name)
    return name


def cmd_mask_set(sess, args):
    luns = [list(parse_portlun(x)) for x in args.luns]
    r = sess.call("mask_set", {"initiator": iscsi_name(args.initiator), "luns": luns})
    out(args, r, "%s sees %s (and only those, while any mask is set)" % (
        args.initiator, " ".join(args.luns) or "no LUN"))


def cmd_mask_clear(sess, args):
    confirm(args, "remove the mask of %s? the LUNs it sees change (with no mask left, every initiator "
            "sees every mapped LUN)" % args.initiator)
    r = sess.call("mask_clear", {"initiator": args.initiator})
    out(args, r, "mask of %s removed" % args.initiator)


def cmd_chap(sess, args):
    if args.action == "set":
        user = nv_text(args.user, "the CHAP user", CHAP_USER_MAX)
        secret = read_secret(args.secret_file, "--secret-file", CHAP_SECRET_ENV, "CHAP secret", twice=True)
        if secret is None:
            raise UsageError("no CHAP secret: give --secret-file FILE or $%s (never on the command line)"
                             % CHAP_SECRET_ENV)
        r = sess.call("chap_set", {"user": user, "secret": nv_text(secret, "the CHAP secret", CHAP_SECRET_MAX,
                                                                   CHAP_SECRET_MIN)})
        out(args, r, "CHAP required for user %s" % args.user)
    else:
        confirm(args, "turn CHAP off? initiators log in without authentication")
        r = sess.call("chap_set", {"user": "", "secret": ""})
        out(args, r, "CHAP off: initiators log in without authentication")


def _new_password(args):
    new = read_secret(args.new_password_file, "--new-password-file", None, "new console password", twice=True)
    if new is None:
        raise UsageError("no terminal to ask the new password on: give --new-password-file")
    return new


def cmd_password(sess, args):
    new = _new_password(args) if args.action == "set" else ""
    if args.action == "set" and not 0 < len(new) <= 32:
        raise UsageError("a console password has 1 to 32 characters")
    link = sess.link()
    r = link.set_password(sess.password, new)   # None: there was none when this session began
    sess.password = new or None
    out(args, r, "console password set" if new else "console password cleared: the console is open to any client")


def cmd_snapshot_start(sess, args):
    sd = parse_sd(args.drive)
    r = sess.call("snapshot_start", {"sd": sd})
    out(args, r, "snapshot of sd%d started (generation %s)" % (sd, r.get("generation")))


def cmd_snapshot_stop(sess, args):
    confirm(args, "terminate the snapshot? the backup LUN's point-in-time image is lost")
    r = sess.call("snapshot_stop")
    out(args, r, "snapshot terminated")


def cmd_snapshot_status(sess, args):
    r = sess.call("snapshot_status")
    out(args, r, lambda: render.snapshot_text(r))


def cmd_snapshot_watch(sess, args):
    """Log usage of the running snapshot as a progress bar, until Ctrl-C, --count or the end."""
    bar = None
    n = 0
    last = None
    while True:
        r = sess.call("snapshot_status")
        last = r
        n += 1
        if args.json:
            print(json.dumps(r, sort_keys=True), flush=True)
        else:
            if bar is None:
                bar = render.Progress("log usage")
            note = "%s, %s/%s chunks" % (r.get("state"), r.get("exceptions", "?"), r.get("capacity", "?"))
            bar.update(float(r.get("usage_pct") or 0), note)
        if r.get("state") not in ("ACTIVE", "COPYING") or (args.count and n >= args.count):
            break
        time.sleep(args.interval)
    if bar is not None:
        bar.done("snapshot " + str(last.get("state")))


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


def cmd_disk_list(sess, args):
    r = sess.call("disk_list")
    out(args, r, lambda: render.disks_table(r.get("disks", [])))


def cmd_disk_action(sess, args):
    slot = resolve_slot(sess, args.slot)
    confirm(args, {"fail": "fail disk slot %d? its drives degrade or go offline",
                   "remove": "remove disk slot %d? its drives degrade or go offline",
                   "replace": "replace disk slot %d? the disk in it is wiped"}[args.action] % slot)
    r = sess.call("disk_" + args.action, {"slot": slot})
    text = "disk slot %d: %s" % (slot, {"fail": "failed", "remove": "removed",
                                        "replace": "replaced with a new disk"}[args.action])
    if r.get("rebuild"):
        text += "; automatic rebuild of %s started (raidboard lop status --wait)" % \
            ", ".join("sd%d" % sd for sd in r["rebuild"])
    out(args, r, text)


def cmd_disk_autorebuild(sess, args):
    if args.setting is None:
        r = sess.call("params_get")
    else:
        r = sess.call("params_set", {"auto_rebuild": args.setting == "on"})
    out(args, r, "automatic rebuild of a replaced disk: %s" % ("on" if r.get("auto_rebuild") else "off"))


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

    def text():
        lines = [render.sense_text(status, r.get("sense"))]
        if data_in:
            lines.append("data-in: %d bytes%s" % (len(data_in), (" (written to %s)" % args.out) if args.out else ""))
            lines.append(render.hexdump(data_in, limit=None if args.all else 512))
        return "\n".join(lines)
    out(args, res, text)
    if status != 0:
        raise Exit(EXIT_SCSI)


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
    print(json.dumps(e, sort_keys=True) if args.json else render.event_line(e), flush=True)


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
    if _wipes(p):
        confirm(args, _wipe_question(p))
    r = sess.call("lop_start", p)
    if not args.wait:
        out(args, r, "%s started on sd%d" % (args.op, p["sd"]))
        return
    _lop_wait(sess, args, p["sd"])


def _wipes(p):
    # lop_start arguments that overwrite a drive or a disk
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


def cmd_lop_status(sess, args):
    if args.wait:
        return _lop_wait(sess, args, parse_sd(args.drive) if args.drive is not None else None)
    p = {"sd": parse_sd(args.drive)} if args.drive is not None else {}
    r = sess.call("lop_status", p)
    out(args, r, lambda: "\n".join(render.lop_line(o) for o in _lop_ops(r)) or "no long operations")


def _lop_wait(sess, args, sd):
    p = {"sd": sd} if sd is not None else {}
    bar = render.Progress("sd%s" % sd if sd is not None else "long operation")
    while True:
        r = sess.call("lop_status", p)
        ops = [o for o in _lop_ops(r) if sd is None or o.get("sd") in (sd, None)]
        running = [o for o in ops if str(o.get("state", o.get("status", ""))).upper() in ("RUNNING", "ACTIVE", "IN_PROGRESS")]
        if args.json:
            print(json.dumps(r, sort_keys=True), flush=True)
        elif ops:
            o = running[0] if running else ops[0]
            bar.update(float(o.get("percent", o.get("pct", 0)) or 0), render.lop_line(o))
        if not running:
            break
        time.sleep(args.interval)
    if not args.json:
        bar.done("done" if ops else "no long operation running")


def cmd_lop_stop(sess, args):
    sd = parse_sd(args.drive)
    r = sess.call("lop_stop", {"sd": sd})
    out(args, r, "long operation on sd%d stopped" % sd)


# firmware commands that `call` asks about, as the commands above do
DESTROYS = ("sd_delete", "log_set", "lun_unmap", "mask_clear", "snapshot_stop", "disk_fail", "disk_remove",
            "disk_replace")


def cmd_call(sess, args):
    try:
        params = json.loads(args.params) if args.params else {}
    except ValueError as e:
        raise UsageError("arguments must be a JSON object: %s" % e)
    if not isinstance(params, dict):
        raise UsageError("arguments must be a JSON object, e.g. '{\"sd\": 1}'")
    if not args.name.replace("_", "").isalnum():
        raise UsageError("%r is not a command name (see the command table in firmware/README.md)" % args.name)
    if args.name in DESTROYS or (args.name == "lop_start" and _wipes(params)) or \
            (args.name == "chap_set" and not params.get("user")):
        confirm(args, "send %s? it destroys data or configuration" % args.name)
    r = sess.call(args.name, params)
    print(json.dumps(r, indent=None if not args.json else 1, sort_keys=True))


def cmd_nvram_dump(sess, args):
    from . import nvimage
    try:
        data = Path(args.file).read_bytes()
    except OSError as e:
        raise UsageError("nvram dump %s: %s" % (args.file, e.strerror or e))
    d = nvimage.dump(data)
    d["file"] = str(args.file)
    out(args, d, lambda: nvimage.text(d))
    if d.get("current") is None:
        raise Exit(EXIT_NVRAM)


def cmd_nvram_show(sess, args):
    r = sess.call("nvram_dump")
    out(args, r, lambda: json.dumps(r, indent=1, sort_keys=True))


# -- boot, stop, console, shell ------------------------------------------------------------------

def cmd_boot(sess, args):
    if args.detach and args.attach:
        raise UsageError("--detach and --attach exclude each other")
    if args.pid_file and not args.detach:
        raise UsageError("--pid-file goes with --detach")
    console = args.console
    if console is not None and console != "pty" and not console.startswith("tcp:"):
        raise UsageError("--console %r: use tcp:HOST:PORT (port 0 picks a free one) or pty" % console)
    b = bootmod.start(args.board, args.state_dir, console=console, iscsi=args.iscsi,
                      ready_timeout=args.boot_timeout)
    ep = b.endpoints
    if args.detach:
        pid_file = Path(args.pid_file) if args.pid_file else Path(args.state_dir) / "firmware.pid"
        pid_file.write_text("%d\n" % b.pid)
        ep["pid_file"] = str(pid_file.resolve())
        bootmod.write_endpoints(args.state_dir, ep)
        out(args, ep, lambda: "\n".join([
            "board %s running (pid %d), detached" % (Path(args.board).stem, b.pid),
            "console: %s" % ep["console"],
            "portals: %s" % " ".join(ep.get("portals") or []),
            "log:     %s" % ep["log"],
            "stop it: raidboard stop --state %s" % args.state_dir]))
        b.close_fds()
        return
    try:
        if args.attach:
            from . import term
            print("console: %s" % ep["console"], file=sys.stderr)
            term.attach(ep["console"], stop_note="detaching stops the board")
        else:
            if args.json:
                print(json.dumps(ep, sort_keys=True), flush=True)
            else:
                print("board %s running (pid %d)\nconsole: %s\nportals: %s\nlog: %s\nCtrl-C stops the board."
                      % (Path(args.board).stem, b.pid, ep["console"], " ".join(ep.get("portals") or []),
                         ep["log"]), flush=True)
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
    ep = bootmod.read_endpoints(state)
    if ep and ep.get("pid") == pid:
        for p in (Path(state) / bootmod.ENDPOINTS, Path(ep.get("pid_file") or "/nonexistent")):
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
        ep = bootmod.read_endpoints(state)
        pid = ep.get("pid") if ep else None
    if not pid or not bootmod.pid_alive(pid):
        if not args.pid_file:
            _forget(state, pid)
        out(args, {"stopped": False, "pid": pid}, "no board is running%s" % (
            "" if args.pid_file else " in %s" % state))
        return
    if not _is_firmware(pid):
        raise UsageError("pid %d is not a raidboard firmware process; not stopping it" % pid)
    bootmod.stop_pid(pid, grace=args.grace)
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
    from . import term
    term.attach(console_url(args))


def cmd_shell(sess, args):
    from . import shell
    return shell.run(sess, args, build_parser)


# -- parser ----------------------------------------------------------------------------------------

EPILOG = """\
examples:
  raidboard boot boards/dac960sx.json state --detach      start the default board in ./state
  raidboard status                                         drives, LUN map, snapshot, events
  raidboard sd create --raid 5 --slots 0,1,2,3 --mb 512    a RAID 5 system drive
  raidboard log set sd1                                    make sd1 the log system drive
  raidboard lun map 0/1 sd1                                host port 0, LUN 1 -> sd1
  raidboard snapshot start sd0 && raidboard snapshot watch
  raidboard cdb 0/0 25000000000000000000                   READ CAPACITY(10) on port 0 LUN 0
  raidboard --json sd list | jq .                          any query as JSON
  raidboard console                                        the VT-100 console (Ctrl-] detaches)
  raidboard shell                                          interactive, with completion
  raidboard stop

The board is found by --port (socket://127.0.0.1:PORT or /dev/pts/N), else by --state DIR
(the endpoints a detached boot left there), else $RAIDBOARD_PORT, else ./state, else the default
console socket://127.0.0.1:4960.

exit codes: 0 ok, 1 refused by the board, 2 usage, 3 cannot reach the board, 4 boot failed,
5 protocol error, 6 SCSI status not GOOD (cdb), 7 no valid NV memory bank (nvram dump),
8 not confirmed: a command that destroys data asks "[y/N]" on a terminal and needs --force in a
script, 130 Ctrl-C.
"""


class Parser(argparse.ArgumentParser):
    # no abbreviated options: `--password SECRET` must not pass for `--password-file`
    def __init__(self, *a, **kw):
        kw.setdefault("allow_abbrev", False)
        super().__init__(*a, **kw)

    def error(self, message):
        raise UsageError("%s\n(try `%s --help`)" % (message, self.prog))


def _common(p, top=False):
    d = None if top else argparse.SUPPRESS
    g = p.add_argument_group("board and output")
    g.add_argument("--port", "-p", metavar="URL", default=d,
                   help="the board's console: socket://HOST:PORT, tcp:HOST:PORT or /dev/pts/N")
    g.add_argument("--state", "-s", metavar="DIR", default=d,
                   help="state directory of a board started with `boot --detach`")
    g.add_argument("--json", "-j", action="store_true", default=False if top else argparse.SUPPRESS,
                   help="print results as JSON")
    g.add_argument("--timeout", type=float, metavar="S", default=30.0 if top else argparse.SUPPRESS,
                   help="seconds to wait for an answer (default 30)")
    g.add_argument("--force", action="store_true", default=False if top else argparse.SUPPRESS,
                   help="do a command that destroys data or configuration without asking (scripts)")
    g.add_argument("--password-file", metavar="FILE", default=d,
                   help="the console password is the first line of FILE (else $%s, else a prompt)"
                        % PASSWORD_ENV)


def build_parser():
    P = lambda sub, name, help, **kw: _leaf(sub, name, help, **kw)  # noqa: E731
    top = Parser(prog="raidboard", description="Boot and manage an emulated Mylex DAC960SX/SF RAID "
                 "board (snapshot backup of WO 99/63441) over its serial console.",
                 epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(top, top=True)
    sub = top.add_subparsers(dest="cmd", metavar="COMMAND", parser_class=Parser)

    b = P(sub, "boot", "start a board from a board definition", func=cmd_boot, epilog="""\
examples:
  raidboard boot boards/dac960sx.json state                  foreground; Ctrl-C stops it
  raidboard boot boards/dac960sx.json state --attach         and open its console here (make run)
  raidboard boot boards/dac960sx.json /tmp/b1 --console tcp:127.0.0.1:0 --iscsi 127.0.0.1:0,127.0.0.1:0 --detach
  raidboard boot boards/dac960sf.json /tmp/b2 --console pty --detach   prints console: /dev/pts/N
""")
    b.add_argument("board", help="board definition, e.g. boards/dac960sx.json")
    b.add_argument("state_dir", metavar="STATE", help="state directory (disks, NV memory); created if missing")
    b.add_argument("--console", metavar="tcp:HOST:PORT|pty",
                   help="serial console endpoint (default: the board definition's); port 0 = any free port")
    b.add_argument("--iscsi", metavar="H:P,H:P", help="portals of host ports 0 and 1")
    b.add_argument("--detach", action="store_true", help="run in the background; write a pid file")
    b.add_argument("--pid-file", metavar="FILE", help="with --detach (default STATE/firmware.pid)")
    b.add_argument("--attach", action="store_true", help="attach the VT-100 console in this terminal")
    b.add_argument("--boot-timeout", type=float, default=60.0, metavar="S", help=argparse.SUPPRESS)

    s = P(sub, "stop", "stop a board started with --detach", func=cmd_stop, epilog="""\
examples:
  raidboard stop                      the board in ./state
  raidboard stop --state /tmp/b1
  raidboard stop --pid-file /tmp/b1.pid
""")
    s.add_argument("--pid-file", metavar="FILE")
    s.add_argument("--grace", type=float, default=5.0, metavar="S",
                   help="seconds the firmware gets to stop in order before it is killed")

    P(sub, "console", "attach this terminal to the VT-100 console (Ctrl-] detaches)", func=cmd_console,
      epilog="examples:\n  raidboard console\n  raidboard console --port /dev/pts/5\n"
             "  raidboard console --port socket://127.0.0.1:4960\n")
    P(sub, "status", "drives, LUN map, snapshot, long operations, recent events", func=cmd_status)

    sd = _group(sub, "sd", "system drives", "examples:\n  raidboard sd list\n"
                "  raidboard sd create --raid 5 --slots 0,1,2,3 --mb 512\n  raidboard sd create --raid 1 --slots 1:0,1:1\n"
                "  raidboard sd policy sd0 wb\n  raidboard sd delete sd2\n")
    P(sd, "list", "list system drives", func=cmd_sd_list)
    c = P(sd, "show", "one system drive with its member extents", func=cmd_sd_show)
    c.add_argument("drive", help="sd0..sd7")
    c = P(sd, "create", "create a system drive", func=cmd_sd_create)
    c.add_argument("--raid", "-r", required=True, help="0, 1, 3, 5, 0+1 (= 6) or jbod (= 7)")
    c.add_argument("--slots", required=True, help="member disk slots: indexes or channel:target, comma separated")
    c.add_argument("--mb", type=int, help="size in MB (default: as large as the members allow)")
    c.add_argument("--stripe-kb", type=int, help="stripe size in KiB")
    c.add_argument("--wb", action="store_true", help="write-back cache (default write-through)")
    c.add_argument("--sd", help="system drive number to use (default: the lowest free)")
    c = P(sd, "delete", "delete a system drive", func=cmd_sd_delete)
    c.add_argument("drive", help="sd0..sd7")
    c = P(sd, "policy", "set the write policy", func=cmd_sd_policy)
    c.add_argument("drive", help="sd0..sd7")
    c.add_argument("policy", choices=["wb", "wt", "write-back", "write-through"])

    lg = _group(sub, "log", "the LOG bit of a system drive (the snapshot's log drive)",
                "examples:\n  raidboard log set sd1\n  raidboard log clear sd1\n")
    for act in ("set", "clear"):
        c = P(lg, act, "%s the LOG bit" % act, func=cmd_log)
        c.add_argument("drive", help="sd0..sd7")
        if act == "set":
            c.add_argument("--chunk-kb", type=int, metavar="KB",
                           help="copy-on-write chunk size (default: the firmware's)")
        c.set_defaults(action=act)

    mk = _group(sub, "mask", "LUN masking: which initiators see which LUNs (kept in NV memory)",
                "examples:\n  raidboard mask set iqn.1994-05.com.redhat:host1 0/0 1/0\n"
                "  raidboard mask list\n  raidboard mask clear iqn.1994-05.com.redhat:host1\n\n"
                "With no mask set every initiator sees every mapped LUN; once one is set, an initiator\n"
                "sees only the LUNs of its own mask (none if it has no mask).\n")
    P(mk, "list", "list the masks", func=cmd_mask_list)
    c = P(mk, "set", "let INITIATOR see exactly these PORT/LUNs", func=cmd_mask_set)
    c.add_argument("initiator", help="the initiator's iSCSI name (iqn., eui. or naa.; lowercase; at most 223 bytes)")
    c.add_argument("luns", nargs="*", metavar="PORT/LUN")
    c = P(mk, "clear", "remove an initiator's mask", func=cmd_mask_clear)
    c.add_argument("initiator")

    pw = _group(sub, "password", "the console password (kept in NV memory as a digest)",
                "The new password is asked twice on the terminal, or read from --new-password-file;\n"
                "to change one, the current password is needed (--password-file, $%s or a prompt).\n"
                "examples:\n  raidboard password set\n  raidboard password set --new-password-file new.txt\n"
                "  raidboard password clear\n" % PASSWORD_ENV)
    c = P(pw, "set", "set or change the console password", func=cmd_password)
    c.add_argument("--new-password-file", metavar="FILE", help="the new password is the first line of FILE")
    c.set_defaults(action="set")
    c = P(pw, "clear", "remove the console password: the console is then open to any client", func=cmd_password)
    c.set_defaults(action="clear")

    ch = _group(sub, "chap", "CHAP authentication of the iSCSI host ports (kept in NV memory)",
                "The secret is never taken from the command line: it is asked twice on the terminal, or\n"
                "read from the first line of --secret-file FILE, or from $%s.\n\n"
                "examples:\n  raidboard chap set backup                    # asks for the secret\n"
                "  raidboard chap set backup --secret-file /root/chap.secret\n"
                "  RAIDBOARD_CHAP_SECRET=... raidboard chap set backup\n  raidboard chap clear\n" % CHAP_SECRET_ENV)
    c = P(ch, "set", "require CHAP with this user (at most 63 bytes in UTF-8) and a secret (12 to 32 bytes)",
          func=cmd_chap)
    c.add_argument("user")
    c.add_argument("--secret-file", metavar="FILE", help="the secret is the first line of FILE")
    c.set_defaults(action="set")
    c = P(ch, "clear", "log in without authentication", func=cmd_chap)
    c.set_defaults(action="clear")

    ln = _group(sub, "lun", "LUN map of the host ports",
                "examples:\n  raidboard lun list\n  raidboard lun map 0/2 sd1\n  raidboard lun unmap 1/2\n")
    P(ln, "list", "list the LUN map", func=cmd_lun_list)
    c = P(ln, "map", "map PORT/LUN to a system drive", func=cmd_lun_map)
    c.add_argument("portlun", metavar="PORT/LUN")
    c.add_argument("drive", help="sd0..sd7")
    c = P(ln, "unmap", "unmap PORT/LUN", func=cmd_lun_unmap)
    c.add_argument("portlun", metavar="PORT/LUN")

    sn = _group(sub, "snapshot", "snapshot backup (WO 99/63441)",
                "examples:\n  raidboard snapshot start sd0\n  raidboard snapshot status\n"
                "  raidboard snapshot watch --interval 0.5\n  raidboard snapshot map --cells 128\n"
                "  raidboard snapshot stop\n")
    c = P(sn, "start", "initiate a snapshot of a primary system drive", func=cmd_snapshot_start)
    c.add_argument("drive", help="the primary, sd0..sd7")
    P(sn, "stop", "terminate the snapshot", func=cmd_snapshot_stop)
    P(sn, "status", "state, log usage, exceptions", func=cmd_snapshot_status)
    c = P(sn, "map", "which regions of the primary were copied to the log", func=cmd_snapshot_map)
    c.add_argument("--cells", type=int, default=64, metavar="N", help="number of regions (default 64)")
    c = P(sn, "watch", "progress bar of the log usage until the snapshot ends or Ctrl-C", func=cmd_snapshot_watch)
    c.add_argument("--interval", type=float, default=1.0, metavar="S")
    c.add_argument("--count", type=int, default=0, metavar="N", help="stop after N samples")

    dk = _group(sub, "disk", "physical disks (slots)",
                "examples:\n  raidboard disk list\n  raidboard disk fail 2\n  raidboard disk replace 0:2\n"
                "  raidboard disk autorebuild off\n")
    P(dk, "list", "list disk slots", func=cmd_disk_list)
    for act, h in (("fail", "fail a disk"), ("remove", "remove a disk"),
                   ("replace", "put in a new disk (its drive rebuilds onto it when automatic rebuild is on)")):
        c = P(dk, act, h, func=cmd_disk_action)
        c.add_argument("slot", help="slot index or channel:target")
        c.set_defaults(action=act)
    c = P(dk, "autorebuild", "show or set whether a replaced disk is rebuilt at once (NV memory; default on)",
          func=cmd_disk_autorebuild)
    c.add_argument("setting", nargs="?", choices=("on", "off"))

    c = P(sub, "cdb", "send a raw SCSI CDB to PORT/LUN", func=cmd_cdb, epilog="""\
examples:
  raidboard cdb 0/0 12000000240000                     INQUIRY
  raidboard cdb 0/0 25000000000000000000               READ CAPACITY(10)
  raidboard cdb 0/1 28000000000000000100 --out blk.bin READ(10) one block into a file
  raidboard cdb 0/0 2a000000000000000100 --data-file blk.bin   WRITE(10) one block
exit code 6 when the SCSI status is not GOOD.
""")
    c.add_argument("portlun", metavar="PORT/LUN")
    c.add_argument("cdb", help="the CDB in hex")
    c.add_argument("--data", metavar="HEX", help="data-out as hex")
    c.add_argument("--data-file", metavar="FILE", help="data-out from a file")
    c.add_argument("--out", metavar="FILE", help="write data-in to FILE")
    c.add_argument("--all", action="store_true", help="hexdump all data-in (default: first 512 bytes)")

    c = P(sub, "events", "the board's event log", func=cmd_events,
          epilog="examples:\n  raidboard events -n 20\n  raidboard events --follow\n")
    c.add_argument("-n", type=int, metavar="N", help="how many recent events")
    c.add_argument("--follow", "-f", action="store_true", help="keep printing new events until Ctrl-C")
    c.add_argument("--seconds", type=float, metavar="S", help="with --follow: stop after S seconds")
    c.add_argument("--count", type=int, metavar="N", help="with --follow: stop after N new events")

    nv = _group(sub, "nvram", "NV memory images (offline)",
                "examples:\n  raidboard nvram dump state/nvram.bin\n  raidboard nvram dump --json nvram/dac960sx-factory.bin\n")
    c = P(nv, "dump", "decode an NV memory image file as text or JSON", func=cmd_nvram_dump, link=False)
    c.add_argument("file")
    P(nv, "show", "the NV memory as the running board decodes it", func=cmd_nvram_show)

    lp = _group(sub, "lop", "long operations (copy, rebuild, initialize, check)",
                "examples:\n  raidboard lop start copy sd0 --to sd2 --wait\n  raidboard lop status\n"
                "  raidboard lop status sd0 --wait\n  raidboard lop stop sd0\n")
    c = P(lp, "start", "start a long operation on a system drive", func=cmd_lop_start)
    c.add_argument("op", help="operation name as the firmware knows it (copy, resync, rebuild, init, check)")
    c.add_argument("drive", help="sd0..sd7")
    c.add_argument("--to", metavar="SD", help="target system drive (copy, resync)")
    c.add_argument("--arg", action="append", metavar="NAME=VALUE", help="extra argument (repeatable)")
    c.add_argument("--wait", action="store_true", help="show a progress bar until it ends")
    c.add_argument("--interval", type=float, default=0.5, metavar="S")
    c = P(lp, "status", "progress of long operations", func=cmd_lop_status)
    c.add_argument("drive", nargs="?", help="sd0..sd7 (default: all)")
    c.add_argument("--wait", action="store_true", help="progress bar until it ends")
    c.add_argument("--interval", type=float, default=0.5, metavar="S")
    c = P(lp, "stop", "stop the long operation of a system drive", func=cmd_lop_stop)
    c.add_argument("drive", help="sd0..sd7")

    c = P(sub, "call", "send any firmware command (see firmware/README.md)", func=cmd_call,
          epilog="examples:\n  raidboard call mask_list\n  raidboard call chap_get\n")
    c.add_argument("name")
    c.add_argument("params", nargs="?", help="arguments as a JSON object")

    P(sub, "shell", "interactive shell with history and completion", func=cmd_shell)
    return top


def _leaf(sub, name, help, func=None, link=True, epilog=None):
    p = sub.add_parser(name, help=help, description=help[:1].upper() + help[1:] + ".", epilog=epilog,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(p)
    p.set_defaults(func=func, needs_link=link)
    return p


def _group(sub, name, help, epilog):
    p = sub.add_parser(name, help=help, description=help[:1].upper() + help[1:] + ".", epilog=epilog,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    s = p.add_subparsers(dest="action_" + name, metavar="ACTION", parser_class=Parser)
    p.set_defaults(func=None, group=p)
    return s


# -- StorCLI-style addressing ----------------------------------------------------------------------

# only a whole controller path counts, so a file such as /cache/board.json is never taken for one
_STORCLI_PATH = re.compile(r"/c(\d+|all)(/(v|e|s|p|l)(\d+|all))*/?$", re.I)


def storcli(argv):
    """Translate `/c0 show`, `/c0/v1 show|del`, `/c0/e0/s2 show|fail|remove|replace`, `/c0/p0/l1 show`."""
    i = next((k for k, a in enumerate(argv) if _STORCLI_PATH.match(a)), None)
    if i is None:
        return argv
    path, rest, pre = argv[i], argv[i + 1:], argv[:i]
    parts = [x for x in path.lower().split("/") if x]
    if parts[0] not in ("c0", "call"):
        raise UsageError("%s: this board is controller /c0" % path)
    verb = rest[0].lower() if rest else "show"
    tail = rest[1:]
    if len(parts) == 1:
        if verb == "show" and tail[:1] == ["autorebuild"]:
            return pre + ["disk", "autorebuild"] + tail[1:]
        if verb == "show":
            return pre + ["status"] + tail
        if verb == "set" and tail and tail[0].lower() in ("autorebuild=on", "autorebuild=off"):
            return pre + ["disk", "autorebuild", tail[0].split("=")[1].lower()] + tail[1:]
    elif parts[1] in ("vall",) and verb == "show":
        return pre + ["sd", "list"] + tail
    elif parts[1].startswith("v") and parts[1][1:].isdigit():
        if verb == "show":
            return pre + ["sd", "show", parts[1][1:]] + tail
        if verb in ("del", "delete"):
            return pre + ["sd", "delete", parts[1][1:]] + tail
        if verb == "set" and tail and tail[0].lower() in ("wrcache=wb", "wrcache=wt"):
            return pre + ["sd", "policy", parts[1][1:], tail[0][-2:].lower()] + tail[1:]
    elif parts[1] in ("eall", "sall") and verb == "show":
        return pre + ["disk", "list"] + tail
    elif parts[1].startswith("s") and parts[1][1:].isdigit() or (
            parts[1].startswith("e") and len(parts) == 3 and parts[2].startswith("s")):
        slot = parts[-1][1:]
        if parts[1].startswith("e"):
            slot = "%s:%s" % (parts[1][1:], slot)
        if verb in ("fail", "remove", "replace"):
            return pre + ["disk", verb, slot] + tail
        if verb == "show":
            return pre + ["disk", "list"] + tail
    elif parts[1].startswith("p") and len(parts) == 3 and parts[2].startswith("l"):
        pl = "%s/%s" % (parts[1][1:], parts[2][1:])
        if verb == "show":
            return pre + ["lun", "list"] + tail
        if verb == "map" and tail:
            return pre + ["lun", "map", pl, tail[0]] + tail[1:]
        if verb in ("unmap", "del", "delete"):
            return pre + ["lun", "unmap", pl] + tail
    raise UsageError("%s %s: not understood; StorCLI-style paths are /c0 show, /c0/vall show, "
                     "/c0 show autorebuild, /c0 set autorebuild=on|off, "
                     "/c0/vN show|del|set wrcache=wb|wt, /c0/eall/sall show, /c0/eC/sT fail|remove|replace, "
                     "/c0/pP/lL map sdN|unmap" % (path, verb))


# -- main ------------------------------------------------------------------------------------------

def run(argv, sess=None):
    """Parse and run one command line; return the exit code. `sess` keeps the link open (shell)."""
    own = sess is None
    try:
        argv = storcli(list(argv))
        args = build_parser().parse_args(argv)
        if getattr(args, "func", None) is None:
            (getattr(args, "group", None) or build_parser()).print_help(sys.stderr)
            return EXIT_USAGE
        if sess is None:
            sess = Session(args)
        else:
            if not hasattr(sess, "base_args"):
                sess.base_args = sess.args
            sess.args = args = _merge(sess.base_args, args)
        rc = args.func(sess, args)
        return rc or EXIT_OK
    except UsageError as e:
        print("raidboard: %s" % e, file=sys.stderr)
        return EXIT_USAGE
    except BoardError as e:
        print("raidboard: the board refused: %s: %s" % (e.code, e.message), file=sys.stderr)
        hint = HINTS.get(e.code)
        if hint:
            print("  what to do: " + hint, file=sys.stderr)
        return EXIT_REFUSED
    except LinkError as e:
        print("raidboard: cannot reach the board: %s" % e, file=sys.stderr)
        if sess is not None and not own:
            sess.close()
        return EXIT_UNREACHABLE
    except ProtocolError as e:
        print("raidboard: protocol error: %s" % e, file=sys.stderr)
        return EXIT_PROTOCOL
    except bootmod.BootError as e:
        print("raidboard: boot failed: %s" % e, file=sys.stderr)
        return EXIT_BOOT
    except Exit as e:
        return e.code
    except KeyboardInterrupt:
        print("", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK
    finally:
        if own and sess is not None:
            sess.close()


def _merge(base, args):
    """Shell: a line's own options win; the rest come from the options the shell was started with."""
    for k in ("port", "state", "password_file"):
        if getattr(args, k, None) is None:
            setattr(args, k, getattr(base, k, None))
    args.json = bool(getattr(args, "json", False) or getattr(base, "json", False))
    if getattr(args, "timeout", 30.0) == 30.0:
        args.timeout = getattr(base, "timeout", 30.0)
    return args


HINTS = {
    "LOG_IN_USE": "unmap the LUNs of that drive first (raidboard lun list / lun unmap), or pick another drive",
    "NO_LOG_DEFINED": "mark a log system drive first: raidboard log set sdN",
    "SNAPSHOT_ACTIVE": "terminate the running snapshot first: raidboard snapshot stop",
    "NO_SNAPSHOT": "start one first: raidboard snapshot start sdN",
    "NO_SUCH_DRIVE": "see the existing drives with: raidboard sd list",
    "NO_SUCH_SLOT": "see the disk slots with: raidboard disk list",
    "LUN_IN_USE": "unmap it first: raidboard lun unmap PORT/LUN",
    "OVERLAP": "the members have no room left; give a smaller --mb or other --slots",
    "BAD_LEVEL": "RAID 1 needs 2 disks, RAID 3/5 at least 3, RAID 0+1 an even number >= 4",
    "NV_LIMIT": "NV memory holds no more than the limit named: shorten it (non-ASCII characters take 2-4 bytes)",
    "NV_REFUSED": "the configuration is unchanged; report the message, it names the field NV memory could not hold",
    "PASSWORD_REQUIRED": "give the console password: --password-file FILE, $%s, or type it when asked" % PASSWORD_ENV,
    "WRONG_PASSWORD": "that is not the console password (after 5 wrong ones in a row the console waits 30 s)",
    "LOGIN_LOCKED": "too many wrong passwords: wait, then try again with the right one",
    "UNKNOWN_COMMAND": "this firmware does not know that command; see firmware/README.md",
}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    rc = run(argv)
    sys.stdout.flush()
    return rc


if __name__ == "__main__":
    sys.exit(main())
