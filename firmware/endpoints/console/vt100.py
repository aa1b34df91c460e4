# The full-screen VT-100 view of the menu model (80x24, no colour: reverse video marks the
# selection) and the keyboard decoder. The screen keeps what the terminal shows and sends only the
# changed span of each changed row, so a live status screen costs a few bytes per second.
import time
from endpoints.console import menu
from control import pair as pairmod
from endpoints.console import lcd
from lop import ops
from micropython import const

COLS = const(80)
ROWS = const(24)
BODY_TOP = const(5)
BODY_ROWS = const(17)
MSG_ROWS = const(3)         # a long refusal takes up to 3 rows, from the bottom of the body up
EVENT_INDENT = const(23)    # where an event row's text starts: its continuation lines align there
WRAP_INDENT = const(4)
OUT_SIZE = const(8192)      # one full redraw is about 2.5 KB

# keys the decoder produces besides the four buttons (menu.UP .. menu.ESC)
CHAR = const(10)
BACKSPACE = const(11)
REDRAW = const(12)

# a long operation by its full name (the board's answers carry only the short one: init, check …)
LONG_NAMES = {ops.SHORT[k]: ops.NAMES[k] for k in ops.NAMES}

_N, _ESC, _CSI, _SS3, _SKIP = 0, 1, 2, 3, 4


class KeyDecoder:
    """Bytes from the terminal -> keys. Arrow keys (CSI or SS3 form), Enter (CR, LF, CR LF,
    CR NUL), Esc, Backspace, Ctrl-L and printable characters; every other byte and every
    unknown or overlong escape sequence is dropped. A lone Esc is reported by flush() when
    no more bytes follow it (the console calls it after a short pause)."""

    def __init__(self, emit):
        self.emit = emit        # emit(key, byte)
        self.state = _N
        self.plen = 0
        self.after_cr = False

    def flush(self):
        if self.state == _ESC:
            self.state = _N
            self.emit(menu.ESC, 0)

    def feed(self, b):
        st = self.state
        if st == _ESC:
            if b == 0x5B:
                self.state = _CSI
                self.plen = 0
                return
            if b == 0x4F:
                self.state = _SS3
                return
            self.state = _N
            self.emit(menu.ESC, 0)
            if b == 0x1B:
                self.state = _ESC
                return
        elif st == _CSI:
            if 0x20 <= b <= 0x3F:
                self.plen += 1
                if self.plen > 16:
                    self.state = _SKIP  # overlong sequence: drop it through its final byte
                return
            self.state = _N
            if 0x40 <= b <= 0x7E:
                self._arrow(b)
                return
        elif st == _SKIP:
            if 0x20 <= b <= 0x3F:
                return
            self.state = _N
            if 0x40 <= b <= 0x7E:
                return
        elif st == _SS3:
            self.state = _N
            if 0x40 <= b <= 0x7E:
                self._arrow(b)
                return
        cr = self.after_cr
        self.after_cr = b == 0x0D
        if b == 0x1B:
            self.state = _ESC
        elif b == 0x0D or (b == 0x0A and not cr):
            self.emit(menu.ENTER, b)
        elif b == 0x7F or b == 0x08:
            self.emit(BACKSPACE, b)
        elif b == 0x0C:
            self.emit(REDRAW, b)
        elif 0x20 <= b <= 0x7E:
            self.emit(CHAR, b)

    def _arrow(self, b):
        if b == 0x41:
            self.emit(menu.UP, b)
        elif b == 0x42:
            self.emit(menu.DOWN, b)
        elif b == 0x43:
            self.emit(menu.ENTER, b)    # right arrow selects, like Enter
        elif b == 0x44:
            self.emit(menu.ESC, b)      # left arrow goes back, like Esc


class Screen:
    def __init__(self):
        self.out = bytearray(OUT_SIZE)
        self.mv = memoryview(self.out)
        self.n = 0
        self.shown = [None] * ROWS      # what the terminal shows, None = unknown
        self.attr = [0] * ROWS
        self.full = True

    def invalidate(self):
        self.full = True

    def _put(self, s):
        b = s.encode() if isinstance(s, str) else s
        k = len(b)
        if self.n + k <= OUT_SIZE:
            self.mv[self.n:self.n + k] = b
            self.n += k

    def frame(self, lines, attrs, cursor=None):
        """Bytes to send so the terminal shows `lines` (24 strings) with `attrs` (1 = reverse).
        Returns a memoryview into the preallocated output buffer (valid until the next call)."""
        self.n = 0
        if self.full:
            self._put("\x1b[0m\x1b[2J\x1b[H")
            blank = " " * COLS
            self.shown = [blank] * ROWS     # cleared: blank rows need not be sent
            self.attr = [0] * ROWS
            self.full = False
        for r in range(ROWS):
            new = lines[r]
            old = self.shown[r]
            a = attrs[r]
            if old == new and self.attr[r] == a:
                continue
            first, last = 0, len(new)
            if old is not None and self.attr[r] == a and len(old) == len(new):
                while new[first] == old[first]:
                    first += 1
                while new[last - 1] == old[last - 1]:
                    last -= 1
            self._put("\x1b[%d;%dH" % (r + 1, first + 1))
            if a:
                self._put("\x1b[7m")
            self._put(new[first:last])
            if a:
                self._put("\x1b[0m")
            self.shown[r] = new
            self.attr[r] = a
        if cursor is not None:
            self._put("\x1b[%d;%dH" % cursor)
        elif self.n:
            self._put("\x1b[%d;%dH" % (ROWS, COLS - 1))
        return self.mv[:self.n]


# ---- the layout of the model on 80x24 ----------------------------------------------------------

HELP = {
    menu.MONITOR: "MONITOR  Enter: menus   Up/Down: drive on LCD   Ctrl-L: redraw",
    menu.MENU: "MENU  Up/Down: move   Enter/Right: select   Esc/Left: back",
    menu.VIEW: "MENU  Up/Down: scroll   Esc/Left: back   (updates live)",
    menu.PICK: "MENU  Up/Down: move   Enter: choose (toggle for disks)   Esc: cancel",
    menu.PASSWORD: "Type the password, Enter to accept, Esc to cancel (LCD: Up/Down+Enter)",
}


def _sd_text(d):
    luns = " ".join("P%dL%d" % (p[0], p[1]) for p in d.get("luns", []))
    return "  SD%-2d %-8s %9s %-10s %-3s %-2s %s %s" % (
        d.get("sd", 0), menu.level_name(d), "%d MB" % d.get("mb", 0), menu.drive_state(d),
        "LOG" if d.get("log") else "", "WB" if d.get("wb") else "WT", _owner_text(d), luns)


def _owner_text(d):
    # on a pair: who serves the drive now, and its home when another serves it ("C1 (C0's)")
    if "affinity" not in d:
        return ""
    if d.get("owner") is None:
        return "--         "
    home = "" if d["owner"] == d["affinity"] else "(C%d's)" % d["affinity"]
    return "C%d %-7s " % (d["owner"], home)


def _pair_text(p):
    # the pair section's first line: this controller, what it serves, its partner
    return "  this controller C%d: %s, serves %s   partner C%d: %s" % (
        p.get("controller", 0), p.get("mode", "?"), " and ".join("C%d" % n for n in p.get("serving", [])) or "no drive",
        1 - p.get("controller", 0), p.get("partner", "?"))


def _link_text(p):
    # then the link and the failback mode, and what to do where a controller is down, waits or
    # stood down
    k = p.get("link") or {}
    out = ["  back-end link %s (frames in %s, out %s, bad %s)   failback: %s" % (
        "up" if k.get("up") else "down", k.get("frames_in", 0), k.get("frames_out", 0),
        k.get("bad_frames", 0), p.get("failback", "?"))]
    hint = pair_hint(p, p.get("controller", 0), 1 - p.get("controller", 0))
    if hint:
        out.append("  " + hint)
    return out


def pair_hint(p, me, other):
    # what the operator does next, where a controller is down, waits or stood down. A controller
    # is restarted from the host (the real pair's reset release)
    boot = "raidboard boot BOARD STATE --controller %d --detach"
    stop = "raidboard stop --state STATE --controller %d, then "
    if p.get("mode") == pairmod.STOOD_DOWN:
        return "C%d stood down; restart it from the host: %s%s" % (me, stop % me, boot % me)
    w = menu.waiting(p)
    if w is not None:
        return "C%d waits for its drives: FAILBACK (CONTROLLER PAIR menu) gives them back" % w
    if p.get("partner") == pairmod.DEAD:
        return "restart C%d from the host: %s" % (other, boot % other)
    if p.get("partner") == pairmod.APART:
        return "C%d stood down; restart it from the host: %s%s" % (other, stop % other, boot % other)
    return ""


def _snap_text(s):
    state = str(s.get("state", "IDLE")).upper()
    if s.get("primary") is None:
        return "  %s   %s%s" % (state, ("log drive SD%s" % s["log"]) if s.get("log") is not None else "no LOG drive defined",
                               _last_text(s.get("last")))
    return "  %s   primary SD%s   log SD%s   log usage %s%%   exceptions %s   generation %s" % (
        state, s.get("primary"), s.get("log", "?"), menu.pct_text(s.get("usage_pct", 0)), s.get("exceptions", 0),
        s.get("generation", "?"))


def _last_text(last):
    # how the last snapshot ended, kept by the board until the next start
    if not last:
        return ""
    return "   last: SD%s %s (%s) at %s, log %s%% used, %s of %s chunks copied" % (
        last.get("primary"), last.get("how"), last.get("reason"), clock(last.get("ended")),
        last.get("usage_pct", 0), last.get("exceptions", 0), last.get("capacity", 0))


def clock(t):
    # event time (seconds since the epoch) as the board's wall clock, HH:MM:SS
    try:
        tm = time.localtime(int(t))
        return "%02d:%02d:%02d" % (tm[3], tm[4], tm[5])
    except Exception:
        return str(t)


def wrap(text, width, indent):
    # text in lines of at most width, broken at spaces (a word longer than a line is split);
    # continuation lines start with indent spaces
    lead = len(text) - len(text.lstrip(" "))
    out = []
    pad = ""
    while len(pad) + len(text) > width:
        room = width - len(pad)
        cut = text.rfind(" ", lead + 1, room + 1)
        if cut <= lead:
            cut = room
        out.append(pad + text[:cut])
        text = text[cut:].lstrip(" ")
        pad = " " * indent
        lead = 0
    out.append(pad + text)
    return out


def _event_text(e):
    return "  %5s %s %-5s %s" % (e.get("seq", ""), clock(e.get("time", 0)), e.get("level", ""), e.get("text", ""))


def _lop_text(o):
    to = (" -> SD%s" % o["target"]) if o.get("target") is not None else ""
    on = ("on C%d  " % o["controller"]) if "controller" in o else ""
    return "  %-18s SD%s%-7s %5s%%  %-10s %sword %s %s" % (
        LONG_NAMES.get(o.get("op"), str(o.get("op", "?"))).upper(), o.get("sd", "?"), to, menu.op_pct(o),
        str(o.get("state", "")).upper(), on, _word(o.get("word")), o.get("detail") or "")


def _word(w):
    return "0x%04X" % w if isinstance(w, int) else ""


def body(m):
    """(text, owner) lines of the current frame; owner = row/item index to highlight, or -1."""
    f = m.frame
    out = []
    if f.kind in (menu.MENU, menu.PICK):
        st = f.node.steps[f.step] if f.kind == menu.PICK else None
        for i in range(len(f.items)):
            label = f.items[i][0]
            if st is not None and st.multi and f.items[i][1] != "done":
                label = ("[x] " if i in f.picked else "[ ] ") + label
            out.append(("   " + label, i))
        return out
    if f.kind == menu.PASSWORD:
        return [("", -1), ("   Password: " + "*" * len(m.pw) + "_", -1)]
    head = None
    for i in range(len(m.rows)):
        r = m.rows[i]
        k = r[0]
        if k != head:
            head = k
            t = {"sd": "System drives    RAID       SIZE STATUS    LOG WP %sLUNs (port,lun)"
                       % ("SERVED BY  " if k == "sd" and "affinity" in r[1] else ""), "pair": "Controller pair",
                 "luns": "LUN map", "snap": "Snapshot", "lop": "Long operations", "event": "Recent events",
                 "disk": "Disks  slot  name   state      size", "map": None, "text": None}.get(k)
            if t:
                out.append((t, -1))
        if k == "sd":
            out.append((_sd_text(r[1]), i))
        elif k == "luns":
            out.append(("  host port %d: " % r[1] + "  ".join("LUN %d -> SD%d" % (e["lun"], e["sd"]) for e in r[2]), i))
        elif k == "snap":
            out.append((_snap_text(r[1]), i))
        elif k == "lop":
            out.append((_lop_text(r[1]), i))
        elif k == "pair":
            out.append((_pair_text(r[1]), i))
        elif k == "link":
            out += [(t, i) for t in _link_text(r[1])]
        elif k == "event":
            out.append((_event_text(r[1]), i, EVENT_INDENT))
        elif k == "disk":
            d = r[1]
            out.append(("        %-4s  %-5s  %-10s %d MB" % (d.get("slot"), d.get("name", ""), d.get("state", ""), d.get("mb", 0)), i))
        elif k == "map":
            cells = r[1]
            out.append(("Primary drive, one cell per region, shaded by the share copied to the log:", -1))
            w = menu.MAP_COLS
            for y in range(0, len(cells), w):
                out.append(("  |" + "".join(lcd.shade(c, lcd.RAMP) for c in cells[y:y + w]) + "|", i))
            if cells:
                out.append(("  scale: ' ' none  " + lcd.RAMP[1:] + " (more copied ->)  '@' all", -1))
        else:
            out.append(("  " + str(r[1]), i))
    # rows longer than the screen wrap: nothing at their end is lost
    return [(t, row[1]) for row in out for t in wrap(row[0], COLS, row[2] if len(row) > 2 else WRAP_INDENT)]


def _fit_monitor(m, b, rows):
    # the monitor does not scroll: when its body is too long, events give way, iSCSI session
    # traffic first, then the oldest
    while len(b) > rows:
        ev = [x[1] for x in b if x[1] >= 0 and m.rows[x[1]][0] == "event"]
        if not ev:
            break
        noise = [i for i in ev if menu.session_noise(m.rows[i][1])]
        drop = (noise or ev)[0]
        b = [x for x in b if x[1] != drop]
    return b


def _message(m):
    # the outcome of the last action, in up to MSG_ROWS rows: the controller's whole message
    if m.message is None:
        return [""]
    ok, key, detail = m.message
    text = ("DONE: " + key) if ok else ("REFUSED: " + menu.spelled(key))
    return wrap(text + ((" - " + detail) if detail else ""), COLS, 2)[:MSG_ROWS]


def compose(m):
    """The 24 lines and their attributes for model m, and where the cursor should rest."""
    f = m.frame
    l1, l2 = lcd.render(m)
    model = m.ctl.board.get("model", "RAID")
    lines = [
        "+--------------------+   %s console" % model,
        "|" + l1 + "|   " + ("MONITOR MODE" if m.mode == "monitor" else "MENU MODE" + ("  (unlocked)" if m.unlocked else "")),
        "|" + l2 + "|",
        "+--------------------+   LCD buttons: Up Down Enter Esc",
    ]
    path = " > ".join(fr.title for fr in m.stack[1:]) if len(m.stack) > 1 else "STATUS (live)"
    lines.append("== " + path + " ")
    attrs = [0] * ROWS
    msg = _message(m)
    rows = BODY_ROWS - len(msg) + 1
    b = body(m)
    if f.kind == menu.MONITOR:
        b = _fit_monitor(m, b, rows)
    sel = -1
    if f.kind != menu.MONITOR:
        for i in range(len(b)):
            if b[i][1] == f.cursor:
                sel = i
                break
    top = 0
    if sel >= rows:
        top = sel - rows + 1
    for i in range(rows):
        j = top + i
        if j < len(b):
            lines.append(b[j][0])
            if f.kind != menu.MONITOR and f.kind != menu.PASSWORD and b[j][1] == f.cursor and b[j][1] >= 0:
                attrs[BODY_TOP + i] = 1
        else:
            lines.append("")
    for t in msg:
        if m.message is not None:
            attrs[len(lines)] = 1
        lines.append(t)
    lines.append(HELP.get(f.kind, ""))
    for r in range(ROWS):
        lines[r] = lcd.clean(lines[r], COLS - 1 if r == ROWS - 1 else COLS)
    cursor = None
    if f.kind == menu.PASSWORD:
        cursor = (BODY_TOP + 2, 15 + len(m.pw))
    return lines, attrs, cursor
