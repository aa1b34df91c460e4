# The front-panel LCD: 2 lines of 20 characters and four buttons (up, down, enter, escape).
# It draws the same menu model as the VT-100 screen, one item at a time. Idle (monitor mode) it
# shows one system drive per press of up/down and the snapshot state, e.g.
#   SD0 RAID5 ONLINE
#   SNAP ACTIVE LOG 12%
# and, once it ended until the next start, how (SNAP OVERFLOW 100%, SNAP LOG FAILED 37%, ...)
from endpoints.console import menu
from micropython import const
import time

WIDTH = const(20)
# buttons, by the name the line protocol's `button` command takes
BUTTONS = {"up": menu.UP, "down": menu.DOWN, "enter": menu.ENTER, "esc": menu.ESC}


def clean(s, width):
    # printable ASCII only, cut or padded to width: what the LCD's character set and any terminal
    # can show (text from events or the board must not reach a terminal as control sequences)
    s = str(s)
    for ch in s:
        if not (" " <= ch <= "~"):
            s = "".join(c if " " <= c <= "~" else "?" for c in s)
            break
    n = len(s)
    return s[:width] if n >= width else s + " " * (width - n)


def drive_line(d):
    s = "SD%d %s %s" % (d.get("sd", 0), menu.level_name(d), menu.drive_state(d))
    if d.get("log"):
        s = s + (" LOG" if len(s) <= WIDTH - 4 else "*")
    return s


# how the last snapshot ended (snapshot_status "last"), in words that fit "SNAP <how> 100%"
LAST_HOW = {"terminated": "TERMINATED", "copied": "COPIED", "overflow": "OVERFLOW", "log failed": "LOG FAILED"}


def snap_line(s):
    state = str(s.get("state", "IDLE")).upper()
    last = s.get("last")
    if state != "ACTIVE" and last:
        # no snapshot runs: how the last one ended and how full its log got, until the next start
        return "SNAP %s %d%%" % (LAST_HOW.get(last.get("how"), "ENDED"), int(last.get("usage_pct", 0)))
    if state == "IDLE" or s.get("primary") is None:
        return "SNAP " + state
    return "SNAP %s LOG %s%%" % ("OVERFLOW" if state.startswith("OVERFLOW") else state,
                                 menu.pct_text(s.get("usage_pct", 0)))


def snap_detail(s):
    # the snapshot view's second line: the running snapshot's primary, else when the last one ended
    if s.get("primary") is not None:
        return "PRIMARY SD%s" % s.get("primary")
    last = s.get("last")
    if s.get("state") == "ACTIVE" or not last:
        return ""
    t = time.localtime(int(last.get("ended") or 0))
    return "SD%s ENDED %02d:%02d:%02d" % (last.get("primary"), t[3], t[4], t[5])


def shade(pct, ramp):
    # one cell of the copy-on-write map: how much of this region of the primary went to the log
    if pct <= 0:
        return ramp[0]
    i = 1 + int(pct) * (len(ramp) - 2) // 100
    return ramp[min(i, len(ramp) - 1)]


RAMP = " .:-=+*#%@"


def mini_map(cells):
    # the primary drive in 20 cells: each the mean of its share of the full map
    n = len(cells)
    if not n:
        return "(no map)"
    out = ""
    for i in range(WIDTH):
        a = i * n // WIDTH
        b = max(a + 1, (i + 1) * n // WIDTH)
        part = cells[a:b]
        out += shade(sum(part) // len(part), RAMP)
    return out


def row_lines(r):
    # one row of a view (see menu.Model.refresh) as two LCD lines
    k = r[0]
    if k == "sd":
        d = r[1]
        return drive_line(d), "%dMB %s%s" % (d.get("mb", 0), "WB" if d.get("wb") else "WT",
                                             " LOG" if d.get("log") else "")
    if k == "luns":
        return "PORT %d LUNS" % r[1], " ".join("%d:SD%d" % (e["lun"], e["sd"]) for e in r[2])
    if k == "snap":
        s = r[1]
        return snap_line(s), snap_detail(s)
    if k == "map":
        return "COPIED TO LOG:", mini_map(r[1])
    if k == "lop":
        o = r[1]
        return "%s SD%s" % (str(o.get("op", "?")).upper(), o.get("sd", "?")), \
            "%s%% %s" % (menu.op_pct(o), str(o.get("state", "")).upper())
    if k == "event":
        e = r[1]
        return "EVENT %d %s" % (e.get("seq", 0), str(e.get("level", "")).upper()), str(e.get("text", ""))
    if k == "disk":
        d = r[1]
        return "DISK %s" % d.get("name", d.get("slot")), "%s %dMB" % (str(d.get("state", "")).upper(), d.get("mb", 0))
    return str(r[1]), ""


def message_lines(msg):
    # a result: "DONE" over what was done; a refusal: why (the code spelled out) over the detail
    ok, head, detail = msg
    if ok:
        return "DONE", head
    return head, detail.upper() if detail else "REFUSED"


def render(m):
    """The two lines the LCD shows for model m, each exactly 20 characters."""
    f = m.frame
    if m.message is not None:
        a, b = message_lines(m.message)
    elif f.kind == menu.MONITOR:
        drives = m.status.get("drives", [])
        a = drive_line(drives[f.cursor]) if f.cursor < len(drives) else m.ctl.board.get("model", "RAID")
        b = snap_line(m.status.get("snapshot") or {})
    elif f.kind == menu.VIEW:
        a, b = row_lines(m.rows[f.cursor]) if m.rows else (f.title, "")
    elif f.kind == menu.PASSWORD:
        cur = "<OK>" if m.pw_ch < 0 else menu.PW_CHARS[m.pw_ch]
        a, b = f.title + ":", "*" * len(m.pw) + cur
        b = b[-WIDTH:]
    else:
        a = f.title
        label = f.items[f.cursor][0] if f.items else ""
        mark = "*" if f.cursor in f.picked else ">"
        b = mark + label
    return clean(a, WIDTH), clean(b, WIDTH)
