# The front-panel LCD: 2 lines of 20 characters and four buttons (up, down, enter, escape).
# It draws the same menu model as the VT-100 screen, one item at a time. Idle (monitor mode) it
# shows one system drive per press of up/down and the snapshot state, e.g.
#   SD0 RAID5 ONLINE
#   SNAP ACTIVE LOG 12%
# and, once it ended until the next start, how (SNAP OVERFLOW 100%, SNAP LOG FAILED 37%, ...).
# While a fault stands (a drive CRITICAL, OFFLINE or holding an incomplete copy, a disk failed or
# removed) the first line is the fault display instead: "!SD0 CRITICAL", stepping to the next
# fault on each refresh (once a second) when there are several.
# On a controller of a pair the first idle line is the pair's ("C0 ACTIVE PARTNER UP"; up/down
# go on to the drives), and the pair's faults come first: "!PARTNER FAILED" over
# "C1 SERVES C0 PORTS", "!C1 STOOD DOWN" over "SERVES NO DRIVE".
#
# Every text it shows is written for 20 columns: a refusal shows its authored short form (SHORT)
# and the VT-100 screen the controller's whole message; nothing is cut in the middle of a word.
from endpoints.console import menu
from control import pair as pairmod
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
    # "SD0 RAID5 ONLINE", "SD1 RAID1 ONLINE LOG"; the level gives way when it would not fit
    return menu.drive_words(d, " LOG" if d.get("log") else "", WIDTH)


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


# what this controller's partner is, in the words of the pair line after "C0 "
PARTNER_WORDS = {pairmod.UP: "ACTIVE PARTNER UP", pairmod.UNKNOWN: "PARTNER NOT HEARD",
                 pairmod.DEAD: "PARTNER FAILED", pairmod.APART: "PARTNER LINK LOST"}


def pair_line(p):
    # "C0 ACTIVE PARTNER UP": which controller this is and what it knows of its partner
    me = p.get("controller", 0)
    if p.get("mode") == pairmod.STOOD_DOWN:
        return "C%d STOOD DOWN" % me
    if menu.waiting(p) == me:
        return "C%d WAITS FAILBACK" % me
    return "C%d %s" % (me, PARTNER_WORDS.get(p.get("partner"), "PARTNER ?"))


def serves_line(p):
    s = p.get("serving", [])
    return "SERVES " + " AND ".join("C%d" % n for n in s) if s else "SERVES NO DRIVE"


def owner_text(d):
    # " C1": who serves the drive now, on a pair ("--" while this controller stood down)
    if "affinity" not in d:
        return ""
    return " C%d" % d["owner"] if d.get("owner") is not None else " --"


def row_lines(r):
    # one row of a view (see menu.Model.refresh) as two LCD lines
    k = r[0]
    if k == "sd":
        d = r[1]
        return drive_line(d), "%dMB %s%s%s" % (d.get("mb", 0), "WB" if d.get("wb") else "WT",
                                               " LOG" if d.get("log") else "", owner_text(d))
    if k == "luns":
        # as many whole "LUN:SD" pairs as fit; the screen lists them all
        return "PORT %d LUNS" % r[1], fit(" ".join("%d:SD%d" % (e["lun"], e["sd"]) for e in r[2]))
    if k == "snap":
        s = r[1]
        return snap_line(s), snap_detail(s)
    if k == "map":
        return "COPIED TO LOG:", mini_map(r[1])
    if k == "pair":
        return pair_line(r[1]), serves_line(r[1])
    if k == "link":
        return "LINK " + ("UP" if (r[1].get("link") or {}).get("up") else "DOWN"), \
            "FAILBACK " + str(r[1].get("failback", "?")).upper()
    if k == "lop":
        o = r[1]
        on = (" ON C%d" % o["controller"]) if "controller" in o else ""
        return "%s SD%s%s" % (str(o.get("op", "?")).upper(), o.get("sd", "?"), on), \
            "%s%% %s" % (menu.op_pct(o), str(o.get("state", "")).upper())
    if k == "event":
        e = r[1]
        return "EVENT %d %s" % (e.get("seq", 0), str(e.get("level", "")).upper()), fit(e.get("text", ""))
    if k == "disk":
        d = r[1]
        return "DISK %s" % d.get("name", d.get("slot")), "%s %dMB" % (str(d.get("state", "")).upper(), d.get("mb", 0))
    return fit(r[1]), ""


# each refusal the menus can show, as the panel says it: what is wrong over what to do. The
# controller's codes (control/, lop/, the Table 2 rows of snapshot_refusal, access.py) and the
# menus' own; tests/test_lcd_text.py holds every code the firmware raises to this table.
SHORT = {
    "BAD_ARGUMENT": ("NOT ACCEPTED", "SEE CONSOLE SCREEN"),
    "BAD_LEVEL": ("WRONG DISK COUNT", "FOR THIS RAID LEVEL"),
    "BAD_STATE": ("OPERATION STATE BAD", "SEE EVENT LOG"),
    "BUSY": ("CONTROLLER BUSY", "TRY AGAIN"),
    "CANCELLED": ("CANCELLED", "NOTHING CHANGED"),
    "CHECK_IN_PROGRESS": ("CHECK IN PROGRESS", "WAIT OR STOP IT"),
    "CONSOLE_ONLY": ("PANEL IS ON THE", "CONSOLE PORT ONLY"),
    "COPY_ACTIVE": ("A COPY IS RUNNING", "STOP IT FIRST"),
    "DISK_IN_USE": ("DISK IS IN USE", "PICK AN UNUSED DISK"),
    "DISK_NOT_ONLINE": ("DISK NOT ONLINE", "REPLACE IT FIRST"),
    "DRIVE_EXISTS": ("DRIVE EXISTS", "DELETE IT FIRST"),
    "FIRMWARE_ERROR": ("FIRMWARE ERROR", "SEE CONSOLE SCREEN"),
    "INIT_IN_PROGRESS": ("INIT IN PROGRESS", "WAIT OR STOP IT"),
    "INVALID_DRIVE": ("TARGET NOT USABLE", "PICK ANOTHER DRIVE"),
    "IS_LOG_DRIVE": ("IT IS THE LOG DRIVE", "PICK ANOTHER DRIVE"),
    "LOGIN_LOCKED": ("PANEL LOCKED", "TRY AGAIN LATER"),
    "LOG_EXISTS": ("LOG DRIVE EXISTS", "CLEAR IT FIRST"),
    "LOP_ACTIVE": ("OPERATION RUNNING", "STOP IT FIRST"),
    "LUN_IN_USE": ("LUNS IN USE", "UNMAP THEM FIRST"),
    "NOTHING_TO_DO": ("NOTHING TO DO", "PAIR IS AS ASKED"),
    "NOTHING_TO_REBUILD": ("NOTHING TO REBUILD", "REPLACE A DISK"),
    "NOT_A_PAIR": ("ONE CONTROLLER ONLY", "NOT A PAIR"),
    "NOT_INCOMPLETE": ("COPY NOT INCOMPLETE", "NOTHING TO CLEAR"),
    "NOT_LOG": ("NOT THE LOG DRIVE", "NOTHING TO CLEAR"),
    "NOT_MAPPED": ("LUN NOT MAPPED", "NOTHING TO UNMAP"),
    "NOT_MASKED": ("NO SUCH MASK", "NOTHING TO CLEAR"),
    "NOT_READY": ("DRIVE NOT READY", "SEE EVENT LOG"),
    "NO_BASE": ("NO EARLIER COPY", "USE COPY DRIVE"),
    "NO_CHALLENGE": ("NO CHALLENGE", "ASK ONE FIRST"),
    "NO_FREE_DRIVE": ("ALL DRIVES DEFINED", "DELETE ONE FIRST"),
    "NO_LOG_DEFINED": ("NO LOG DRIVE", "SET ONE FIRST"),
    "NO_OPERATION": ("NO OPERATION RUNS", "ON THAT DRIVE"),
    "NO_SNAPSHOT": ("NO SNAPSHOT ACTIVE", "START ONE FIRST"),
    "NO_SPACE": ("NO FREE SPACE", "DELETE A DRIVE"),
    "NO_SUCH_DRIVE": ("NO SUCH DRIVE", "PICK ANOTHER DRIVE"),
    "NO_SUCH_OPERATION": ("OPERATION ENDED", "NOTHING TO STOP"),
    "NO_SUCH_SLOT": ("NO SUCH DISK SLOT", "PICK ANOTHER SLOT"),
    "NV_LIMIT": ("NV MEMORY LIMIT", "SEE CONSOLE SCREEN"),
    "NV_REFUSED": ("NV MEMORY REFUSED", "NOTHING CHANGED"),
    "OVERLAP": ("DISK SPACE OVERLAPS", "PICK OTHER DISKS"),
    "PARTNER_BUSY": ("PARTNER CONTROLLER", "BUSY: RUN IT AGAIN"),
    "PARTNER_LOST": ("PARTNER CONTROLLER", "DID NOT ANSWER"),
    "PASSWORDS_DIFFER": ("PASSWORDS DIFFER", "PASSWORD UNCHANGED"),
    "PASSWORD_REQUIRED": ("PASSWORD REQUIRED", "ENTER IT FIRST"),
    "REBUILD_IN_PROGRESS": ("REBUILD IN PROGRESS", "WAIT FOR IT"),
    "SNAPSHOT_ACTIVE": ("SNAPSHOT ACTIVE", "END IT FIRST"),
    "TABLE_FULL": ("MASK TABLE FULL", "CLEAR ONE FIRST"),
    "TOO_SMALL": ("DRIVE TOO SMALL", "FOR A LOG DRIVE"),
    "UNKNOWN_COMMAND": ("UNKNOWN COMMAND", "SEE CONSOLE SCREEN"),
    "WRONG_PASSWORD": ("WRONG PASSWORD", "TRY AGAIN"),
}


def fit(text, width=WIDTH):
    # text cut to width at a word boundary, never in the middle of a word
    text = str(text)
    if len(text) <= width:
        return text
    cut = text[:width + 1].rfind(" ")
    return text[:cut] if cut > 0 else text[:width]


def message_lines(msg):
    # a result: "DONE" over what was done; a refusal: its short form (SHORT), or for a code the
    # table does not know (none the firmware raises) the code over "REFUSED"
    ok, key, detail = msg
    if ok:
        return "DONE", fit(key)
    return SHORT.get(key) or (fit(menu.spelled(key)), "REFUSED")


def monitor_lines(m):
    # the monitor: the fault display while any fault stands (its own second line, or the
    # snapshot's), else the chosen line (on a pair its line first, then the drives) over the snapshot
    snap = snap_line(m.status.get("snapshot") or {})
    if m.alerts:
        a, b = m.alerts[m.tick % len(m.alerts)]
        return "!" + a, b or snap
    drives = m.status.get("drives", [])
    i = m.frame.cursor
    pair = m.status.get("pair")
    if pair:
        if i == 0:
            return pair_line(pair), snap
        i -= 1
    return (drive_line(drives[i]) if i < len(drives) else m.ctl.board.get("model", "RAID")), snap


def render(m):
    """The two lines the LCD shows for model m, each exactly 20 characters."""
    f = m.frame
    if m.message is not None:
        a, b = message_lines(m.message)
    elif f.kind == menu.MONITOR:
        a, b = monitor_lines(m)
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
        b = mark + fit(label, WIDTH - 1)
    return clean(a, WIDTH), clean(b, WIDTH)
