"""Output of the CLI: JSON or text (`out`), tables, SCSI status and sense in words, hexdumps, progress bars."""
import json
import math
import os
import shutil
import sys
import time

from .model import LEVELS
from .nvimage import shown

STATUS = {0x00: "GOOD", 0x02: "CHECK CONDITION", 0x04: "CONDITION MET", 0x08: "BUSY",
          0x18: "RESERVATION CONFLICT", 0x28: "TASK SET FULL", 0x30: "ACA ACTIVE", 0x40: "TASK ABORTED"}

SENSE_KEYS = ["NO SENSE", "RECOVERED ERROR", "NOT READY", "MEDIUM ERROR", "HARDWARE ERROR",
              "ILLEGAL REQUEST", "UNIT ATTENTION", "DATA PROTECT", "BLANK CHECK", "VENDOR SPECIFIC",
              "COPY ABORTED", "ABORTED COMMAND", "EQUAL", "VOLUME OVERFLOW", "MISCOMPARE", "RESERVED"]

# the additional sense codes this board is likely to return (SPC-4 annex); others print as hex
ASC = {
    (0x00, 0x00): "no additional sense information",
    (0x04, 0x00): "logical unit not ready, cause not reportable",
    (0x04, 0x01): "logical unit is in process of becoming ready",
    (0x04, 0x03): "logical unit not ready, manual intervention required",
    (0x04, 0x07): "logical unit not ready, operation in progress",
    (0x04, 0x80): "logical unit not ready, incomplete copy (vendor: copy again, or lop clear)",
    (0x08, 0x00): "logical unit communication failure",
    (0x0C, 0x00): "write error",
    (0x11, 0x00): "unrecovered read error",
    (0x1A, 0x00): "parameter list length error",
    (0x20, 0x00): "invalid command operation code",
    (0x21, 0x00): "logical block address out of range",
    (0x24, 0x00): "invalid field in cdb",
    (0x25, 0x00): "logical unit not supported",
    (0x26, 0x00): "invalid field in parameter list",
    (0x27, 0x00): "write protected",
    (0x29, 0x00): "power on, reset, or bus device reset occurred",
    (0x2A, 0x01): "mode parameters changed",
    (0x3A, 0x00): "medium not present",
    (0x3F, 0x0E): "reported luns data has changed",
    (0x44, 0x00): "internal target failure",
    (0x55, 0x03): "insufficient resources",
    (0x04, 0x04): "logical unit not ready, format in progress",
    (0x04, 0x0A): "logical unit not accessible, asymmetric access state transition (retry)",
    (0x04, 0x0B): "logical unit not accessible, target port in standby state",
    (0x2A, 0x03): "reservations preempted",
    (0x2A, 0x04): "reservations released",
    (0x2A, 0x05): "registrations preempted",
    (0x2A, 0x06): "asymmetric access state changed",
    (0x0E, 0x03): "invalid field in command information unit",
    (0x1D, 0x00): "miscompare during verify operation",
    (0x26, 0x04): "invalid release of persistent reservation",
    (0x39, 0x00): "saving parameters not supported",
    (0x53, 0x02): "medium removal prevented",
    (0x55, 0x04): "insufficient registration resources",
}

# the board's own sense of its direct commands (firmware/scsi/vendor.md, Tables 2 and 4 and the
# backup LUN's conditions): key VENDOR SPECIFIC, ASC 0x81/0x82. 09/81/0C answers an initiate and a
# terminate with different meanings (kept as the patent prints it).
VENDOR_SENSE = {
    (0x81, 0x20): "issued to a backup LUN",
    (0x81, 0x10): "a snapshot is already active",
    (0x81, 0x19): "no system drive has LOG set (a log LUN has not been defined)",
    (0x81, 0x06): "a rebuild runs on the primary or the log drive",
    (0x81, 0x0C): "initiate: an initialization runs on the primary or the log drive; "
                  "terminate: no snapshot active",
    (0x81, 0x0D): "a consistency check runs on the primary or the log drive",
    (0x82, 0x00): "Log Overflow: the snapshot ended without a terminate",
}

# the return words of the long operation direct commands (firmware/lop/README.md Tables 7 and 10),
# by the command's byte 2: 0x44 Start Long Operation, 0x43 Get Long Operation Status
WORDS = {
    0x44: {0x0000: "copy started", 0x0002: "a system drive is not ready", 0x0105: "invalid system drive",
           0x0106: "a copy is already in progress"},
    0x43: {0x0000: "copy in progress", 0x0001: "irrecoverable data errors", 0x0002: "a system drive is not ready",
           0x0100: "copy completed successfully", 0x0105: "no copy in progress",
           0x0107: "copy terminated by command"},
}


def sense_meaning(key, asc, ascq):
    """What the board means by a sense triple: its own (VENDOR_SENSE) or the standard's (ASC)."""
    if key == 0x09 and (asc, ascq) in VENDOR_SENSE:
        return VENDOR_SENSE[(asc, ascq)]
    return ASC.get((asc, ascq)) or ("vendor specific" if asc >= 0x80 else "")


def word_meaning(cdb, data_in):
    """The return word of a long operation direct command (0x20, byte 2 0x43/0x44), else None."""
    if len(cdb) < 3 or cdb[0] != 0x20 or cdb[2] not in WORDS or len(data_in) < 2:
        return None
    w = (data_in[0] << 8) | data_in[1]
    return "word 0x%04X %s" % (w, WORDS[cdb[2]].get(w, "(not a documented word)"))


def out(args, data, text):
    """Print `data` as one JSON document with --json (`document`; control characters escaped as
    JSON does), else `text` (a string or a callable making one), each of its lines through `shown`."""
    if args.json:
        print_document(document(data, said(args), controller=answering(args)))
    else:
        t = text() if callable(text) else text
        if t:
            print("\n".join(shown(line) for line in t.split("\n")))


def print_document(doc, one_line=False):
    print(json.dumps(doc, indent=None if one_line else 1, sort_keys=True), flush=True)


def json_line(args, data):
    """One sample of a command that goes on (`lop --wait`, `snapshot watch`, `events --follow`):
    a whole document on one line (JSON Lines); a failure after it is one line too."""
    args.streamed = True
    print_document(document(data, said(args), controller=answering(args)), one_line=True)


def said(args):
    """The command line as the user gave it (cli.run keeps it on args): a document's Description."""
    return getattr(args, "command_line", None) or "raidboard"


def answering(args):
    """The controller the command talked to: of a pair, the one the session reached (session.py
    sets `answering`); 0 on a one-controller board."""
    n = getattr(args, "answering", None) if args is not None else None
    return n if n is not None else getattr(args, "controller", None) or 0


# the frame of every JSON answer, StorCLI's (host/README.md "JSON output")
def document(data, description, failure=None, controller=0):
    """`{"Controllers": [{"Command Status": {...}, "Response Data": data}]}`. `failure`: the keys a
    failed command adds to its status (Error Code, Error Message, Exit Code, What To Do);
    `controller`: the pair's controller that answered (render.answering)."""
    status = {"Controller": controller, "Status": "Success", "Description": description}
    if failure:
        status.update(failure, Status="Failure")
    return {"Controllers": [{"Command Status": status, "Response Data": jsonable(data if data is not None else {})}]}


TIME_KEYS = ("time", "started", "ended", "finished")   # the board's clock, seconds since the epoch


def jsonable(v, key=None):
    """The board's answer as --json prints it: a time (TIME_KEYS) as ISO 8601 UTC, a percentage
    (`percent`, `*_pct`) with one decimal at most."""
    if isinstance(v, dict):
        return {k: jsonable(x, k) for k, x in v.items()}
    if isinstance(v, list):
        return [jsonable(x) for x in v]
    if key in TIME_KEYS and _real(v):
        return utc_time(v)
    if isinstance(key, str) and (key == "percent" or key.endswith("pct")) and _real(v) and isinstance(v, float):
        return round(v, 1)
    return v


def utc_time(t):
    """Seconds since the epoch as ISO 8601 UTC, `2026-11-27T01:02:03Z` (the number itself if no
    date has it)."""
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
    except (OverflowError, OSError, ValueError):
        return t


def table(rows, headers):
    """Left-aligned columns; rows are lists of values."""
    rows = [["" if v is None else str(v) for v in r] for r in rows]
    widths = [len(h) for h in headers]
    for r in rows:
        for i, v in enumerate(r):
            widths[i] = max(widths[i], len(v))
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    for r in rows:
        out.append("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
    return "\n".join(out)


def level_name(d):
    lv = d.get("level", d.get("raid"))
    if isinstance(lv, int):
        return LEVELS.get(lv & 0x0F, "RAID?%d" % lv)
    return str(lv)


def size_mb(d):
    if d.get("mb") is not None:
        return "%s MB" % d["mb"]
    if d.get("blocks") is not None:
        return "%d MB" % (d["blocks"] * 512 // 1048576)
    return "?"


def drive_state(d):
    # a drive a copy left half-made shows that before its RAID status (firmware/lop/README.md)
    return "INCOMPLETE" if d.get("incomplete") else d.get("status", "?")


def drives_table(drives):
    rows = []
    for d in drives:
        members = ",".join(str(m.get("name", m.get("slot"))) for m in d.get("members", []))
        luns = ",".join("%s/%s" % tuple(x) for x in d.get("luns", []))
        rows.append(["sd%s" % d.get("sd"), level_name(d), drive_state(d), size_mb(d),
                     "LOG" if d.get("log") else "", "WB" if d.get("wb") else "WT",
                     d.get("stripe_kb", ""), members, luns or "-"])
    if not rows:
        return "no system drives (create one: raidboard sd create --raid 5 --slots 0,1,2,3)"
    return table(rows, ["DRIVE", "LEVEL", "STATUS", "SIZE", "LOG", "CACHE", "STRIPE_KB", "MEMBERS", "LUNS"])


def luns_table(entries):
    if not entries:
        return "no LUNs mapped (map one: raidboard lun map 0/0 sd0)"
    rows = [["%s/%s" % (e.get("port"), e.get("lun")), "sd%s" % e.get("sd"),
             "backup LUN (snapshot view)" if e.get("backup") else ""]
            for e in sorted(entries, key=lambda e: (e.get("port", 0), e.get("lun", 0)))]
    return table(rows, ["PORT/LUN", "DRIVE", ""])


def disks_table(disks):
    rows = [[d.get("slot"), d.get("name"), d.get("state"), "%s MB" % d.get("mb")] for d in disks]
    return table(rows, ["SLOT", "NAME", "STATE", "SIZE"])


def event_line(e):
    # one line whatever the text holds (events are printed as they come, not only through out())
    return "#%-5s %-10s %-5s %s" % (e.get("seq", "?"), _time(e.get("time")), shown(e.get("level", "")),
                                   shown(e.get("text", "")))


def _time(t):
    if isinstance(t, (int, float)):
        try:
            return time.strftime("%H:%M:%S", time.localtime(t))
        except (OverflowError, OSError, ValueError):
            return str(t)
    return str(t if t is not None else "")


def snapshot_text(s):
    """The running snapshot, or none and how the last one ended (kept by the board until the next
    start). OVERFLOWED means ended, overflow not yet reported to the backup LUN: no usage figures."""
    state = s.get("state", "?")
    if state != "ACTIVE":
        line = "snapshot: %s" % state
        last = s.get("last")
        return line + ("\n" + last_snapshot_text(last) if last else "")
    parts = ["snapshot: %s" % state]
    if s.get("primary") is not None:
        parts.append("primary sd%s" % s["primary"])
    if s.get("log") is not None:
        parts.append("log sd%s" % s["log"])
    if s.get("usage_pct") is not None:
        parts.append("log %s%% used" % pct_text(s["usage_pct"]))
    if s.get("exceptions") is not None:
        parts.append("%s of %s chunks copied" % (s["exceptions"], s.get("capacity", "?")))
    if s.get("generation") is not None:
        parts.append("generation %s" % s["generation"])
    return ", ".join(parts)


def _real(v):
    # a finite number, as opposed to whatever else a board's JSON may hold (text, true, NaN…)
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def pct_text(v):
    """A percentage with one decimal at most ("8.7", "100"); "?" when the board sent no number."""
    if not _real(v):
        return "?"
    return ("%.1f" % v).rstrip("0").rstrip(".")


def lop_drives(op):
    """`sd0 → sd2` for a copy or re-sync, `sd0` for the others."""
    to = op.get("to", op.get("target"))
    return "sd%s" % op.get("sd", "?") + (" → sd%s" % to if to is not None else "")


def lop_what(op):
    """What a long operation is and on which drives, as a progress bar's note: `copy sd0 → sd2 RUNNING`."""
    return "%s %s %s" % (op.get("op", op.get("name", "operation")), lop_drives(op), op.get("state", ""))


LAST_HOW = {"terminated": "terminated ({reason})", "copied": "{reason}",
            "overflow": "ended by overflow ({reason})", "log failed": "ended: log failed ({reason})"}


def last_snapshot_text(last):
    how = LAST_HOW.get(last.get("how"), "ended ({reason})").format(reason=last.get("reason", "?"))
    return "last snapshot: primary sd%s, log sd%s, %s; started %s, ended %s; log %s%% used, %s of %s chunks copied" % (
        last.get("primary"), last.get("log"), how, _time(last.get("started")), _time(last.get("ended")),
        pct_text(last.get("usage_pct", 0)), last.get("exceptions", "?"), last.get("capacity", "?"))



def lop_line(op):
    pct = op.get("percent", op.get("pct"))
    return lop_what(op) + (" %s%%" % pct_text(pct) if pct is not None else "")


def iso_time(t, day_of=None):
    """Seconds since the epoch as ISO 8601 local time; only the time of day when `day_of` (another
    such time) falls on the same date. "-" for an entry that has no time (a state file from before
    history entries kept one)."""
    if not _real(t):
        return "-"
    try:
        tm = time.localtime(t)
    except (OverflowError, OSError, ValueError):
        return "-"
    if iso_time(day_of)[:10] == time.strftime("%Y-%m-%d", tm):
        return time.strftime("%H:%M:%S", tm)
    return time.strftime("%Y-%m-%dT%H:%M:%S", tm)


def lops_table(ops, none="no long operation running"):
    """Running operations, then the history (newest first), each with its times: `lop status`;
    `none` says that none runs."""
    def row(o):
        pct = o.get("percent", o.get("pct"))
        rate = o.get("rate")
        return [o.get("op", o.get("name", "?")), lop_drives(o), o.get("state", "?"),
                pct_text(pct) + "%" if pct is not None else "-", "%s%%" % rate if _real(rate) else "-",
                iso_time(o.get("started")), iso_time(o.get("finished"), o.get("started"))]
    heads = ["OPERATION", "DRIVES", "STATE", "DONE", "RATE", "STARTED", "ENDED"]
    if any("controller" in o for o in ops):     # a pair's: which controller runs each
        heads.append("CONTROLLER")
        row = _with_controller(row)
    running = [row(o) for o in ops if o.get("state") == "RUNNING"]
    history = [row(o) for o in ops if o.get("state") != "RUNNING"]
    parts = [table(running, heads) if running else none]
    if history:
        parts.append("\nhistory:\n" + table(history, heads))
    return "\n".join(parts)


def _with_controller(row):
    return lambda o: row(o) + [o.get("controller", "")]


def sense_text(status, sense_hex):
    lines = ["status: 0x%02X %s" % (status, STATUS.get(status, "unknown status"))]
    if sense_hex:
        s = bytes.fromhex(sense_hex)
        lines.append("sense: " + describe_sense(s))
    return "\n".join(lines)


def describe_sense(s):
    if len(s) < 14 or (s[0] & 0x7F) not in (0x70, 0x71):
        return "%d bytes, not fixed format: %s" % (len(s), s.hex())
    key = s[2] & 0x0F
    asc, ascq = s[12], s[13]
    text = sense_meaning(key, asc, ascq)
    info = ""
    if s[0] & 0x80:
        info = " information 0x%08X" % int.from_bytes(s[3:7], "big")
    return "%s (key 0x%X), ASC/ASCQ 0x%02X/0x%02X%s%s%s" % (
        SENSE_KEYS[key], key, asc, ascq, (" " + text) if text else "", info,
        " [deferred]" if (s[0] & 0x7F) == 0x71 else "")


def sense_dict(sense_hex):
    if not sense_hex:
        return None
    s = bytes.fromhex(sense_hex)
    if len(s) < 14:
        return {"raw": sense_hex}
    key = s[2] & 0x0F
    return {"raw": sense_hex, "response_code": s[0] & 0x7F, "key": key, "key_name": SENSE_KEYS[key],
            "asc": s[12], "ascq": s[13], "text": sense_meaning(key, s[12], s[13])}


def hexdump(data, limit=None):
    out = []
    n = len(data) if limit is None else min(len(data), limit)
    for off in range(0, n, 16):
        chunk = data[off:off + 16]
        hx = " ".join("%02x" % b for b in chunk)
        asc = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        out.append("%08x  %-47s  |%s|" % (off, hx, asc))
    if limit is not None and len(data) > limit:
        out.append("... %d more bytes (use --out FILE for all)" % (len(data) - limit))
    return "\n".join(out)


def screen_width(stream):
    """Columns a line may use on `stream`: the terminal's width less one (a full line would wrap
    on some terminals), never more than 79."""
    try:     # the size of this very stream, which need not be stdout
        cols = os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        cols = shutil.get_terminal_size((80, 24)).columns
    return max(20, min(79, cols - 1))


class Progress:
    """A progress bar on `stream` (stderr): on a terminal one line, redrawn in place with \r and never
    wider than the terminal (79 columns at most); else a plain line at each whole-percent step, and
    the last state at the end even when its percent did not move (a copy that reached 100 % while
    RUNNING, then COMPLETED)."""

    def __init__(self, label, stream=None):
        self.label = label
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.last = None
        self.written = None      # (no terminal) the last line written
        self.unshown = None      # (no terminal) the latest line, when it differs from that one

    def line(self, pct, note, width):
        """`label [####....]  8.7% note`, cut to `width` columns; the bar is a third of the width (10 to 40 cells)."""
        head, tail = shown(self.label), "%5s%%" % pct_text(pct)
        bar = max(10, min(40, width // 3))
        fill = int(bar * pct / 100)
        text = "%s [%s%s] %s %s" % (head, "#" * fill, "." * (bar - fill), tail, shown(note))
        return text[:width].rstrip()

    def update(self, pct, note=""):
        # whatever the board sent: a string, NaN or infinity draws as 0 % rather than crashing the CLI
        pct = max(0.0, min(100.0, float(pct))) if _real(pct) else 0.0
        if self.tty:
            self.stream.write("\r" + self.line(pct, note, screen_width(self.stream)) + "\x1b[K")
            self.stream.flush()
        else:
            line = ("%s %s%% %s" % (shown(self.label), pct_text(pct), shown(note)))[:79].rstrip() + "\n"
            if self.last is None or int(pct) != int(self.last):
                self.stream.write(line)
                self.stream.flush()
                self.written = line
            self.unshown = None if line == self.written else line
        self.last = pct

    def done(self, note=""):
        if self.tty and self.last is not None:
            self.stream.write("\n")
        if self.unshown is not None:
            self.stream.write(self.unshown)
            self.unshown = None
        if note:
            self.stream.write(shown(note) + "\n")
        self.stream.flush()
