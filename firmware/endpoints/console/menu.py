# The console menu model: one tree, one state machine, two views (vt100.py draws it full-screen,
# lcd.py draws it on the 2x20 front panel). Views never call the controller; the model does,
# through ctl.command(), and keeps what it fetched in `rows` so both views show the same data.
from micropython import const
from endpoints.console import access
from control.errors import CmdError
from control import pair as pairmod
from hw import levels
from hw import nvram
from hw.levels import RAID0, RAID1, RAID3, RAID5, RAID6, NORAID

# buttons of the front panel (the VT-100 view maps arrow keys, Enter and Esc onto them)
UP = const(1)
DOWN = const(2)
ENTER = const(3)
ESC = const(4)

# frame kinds
MONITOR = const(0)
MENU = const(1)
VIEW = const(2)
PICK = const(3)
PASSWORD = const(4)

# characters the LCD password entry cycles through with up/down (index -1 is "<OK>")
PW_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
PW_MAX = const(32)
MAP_COLS = const(64)
MAP_ROWS = const(8)
EVENTS_SHOWN = const(60)
STATUS_EVENTS = const(5)    # the events on the monitor and the STATUS view
# a drive's status as the command table names it
ONLINE = levels.STATUS_NAMES[levels.ONLINE]
CRITICAL = levels.STATUS_NAMES[levels.CRITICAL]


# ---- the tree --------------------------------------------------------------------------------

class Node:
    def __init__(self, label, guard=False, pair=False):
        self.label = label      # at most 20 characters: it is shown on the LCD as is
        self.guard = guard      # needs the NV-memory password (configuration, administration)
        self.pair = pair        # offered only on a controller of a dual-active pair


class Menu(Node):
    def __init__(self, label, children, guard=False, pair=False):
        Node.__init__(self, label, guard, pair)
        self.children = children


class View(Node):
    def __init__(self, label, kind):
        Node.__init__(self, label)
        self.kind = kind        # 'status', 'snapmap', 'events', 'disks', 'lops', 'pair'


class Step:
    # one choice an action needs; `source(model, args)` lists (label, value) where value is a
    # dict merged into the command arguments, or None to cancel; a source answering None instead
    # of a list means the step does not apply to what was chosen so far (it is skipped); a source
    # that raises CmdError ends the action there with that refusal, before any further choice.
    # title: text, or fn(model, args) naming what was chosen. multi: the key that collects the
    # values of several toggled choices into a list (ends with the "DONE" choice).
    def __init__(self, title, source, multi=None):
        self.title = title
        self.source = source
        self.multi = multi


class Action(Node):
    def __init__(self, label, cmd, steps, done, guard=False):
        Node.__init__(self, label, guard)
        self.cmd = cmd
        self.steps = steps
        self.done = done        # what the LCD says when the command succeeded: text (20 characters
                                # at most), or fn(args, result) making it


class Password(Node):
    # sets the NV-memory password (typed on the keyboard or entered with the buttons)
    pass


def drive_state(d):
    # what a drive line says of a drive: a half-made copy on it before its RAID status
    return "INCOMPLETE" if d.get("incomplete") else d.get("status", "?")


def drive_words(d, tail, width, head=""):
    # head + "SD0 RAID5 ONLINE" + tail in width columns: the level gives way when it would not fit
    s = "%sSD%d %s %s%s" % (head, d.get("sd", 0), level_name(d), drive_state(d), tail)
    return s if len(s) <= width else "%sSD%d %s%s" % (head, d.get("sd", 0), drive_state(d), tail)


def _drive_choice(d, head=""):
    # a drive as a choice: 19 columns, the LCD's line after the cursor mark
    if d.get("log"):
        return ("%sSD%d %s LOG" % (head, d["sd"], level_name(d)), {"sd": d["sd"]})
    return drive_words(d, "", 19, head), {"sd": d["sd"]}


def _drives(m, args):
    return [_drive_choice(d) for d in m.fetch("sd_list").get("drives", [])]


def _drives_where(m, ok):
    # the drives an action would accept, so that a list never defaults to one it would refuse;
    # ok(drive, in the active snapshot, snapshot status)
    snap = m.fetch("snapshot_status")
    in_snap = (snap.get("primary"), snap.get("log")) if snap.get("state") == "ACTIVE" else ()
    return [_drive_choice(d) for d in m.fetch("sd_list").get("drives", []) if ok(d, d["sd"] in in_snap, snap)]


def _deletable(m, args):
    # sd_delete refuses a mapped drive and one in the active snapshot
    return _drives_where(m, lambda d, in_snap, st: not d.get("luns") and not in_snap)


def _incomplete(m, args):
    # lop_clear accepts only a drive a copy left incomplete
    return _drives_where(m, lambda d, in_snap, st: d.get("incomplete"))


def _log_candidates(m, args):
    # log_set refuses a mapped drive, the log drive itself, and any change while a snapshot runs
    return _drives_where(m, lambda d, in_snap, st: not d.get("luns") and not d.get("log")
                         and st.get("state") != "ACTIVE")


def _log_drives(m, args):
    return [c for c in _drives(m, args) if c[0].endswith("LOG")]


def _free_disks(m):
    # the disks a new drive can take a region of
    return [d for d in m.fetch("disk_list").get("disks", []) if d.get("state") == "online" and d.get("free_mb", 0) > 0]


def _levels(m, args):
    # the first step of CREATE DRIVE: refuses at once when no drive can be made, else offers the
    # levels the disks with free space can build, the most asked-for first ("RAID 5" reads better
    # on the panel than "RAID5")
    if len(m.fetch("sd_list").get("drives", [])) >= nvram.MAX_SD:
        raise CmdError("NO_FREE_DRIVE", "all %d system drives are defined: delete one first" % nvram.MAX_SD)
    n = len(_free_disks(m))
    if not n:
        raise CmdError("NO_SPACE", "no disk has free space: delete a drive or replace a disk first")
    return [(levels.LEVEL_NAMES[lv].replace("RAID", "RAID "), {"raid": lv})
            for lv in (RAID5, RAID1, RAID0, RAID6, RAID3, NORAID)
            if any(levels.validate(lv, k) is None for k in range(1, n + 1))]


def size_text(mb):
    return "%dMB" % mb if mb < 100000 else "%dGB" % (mb // 1024)


def _free_slots(m, args):
    # each disk a new drive can use, with the space it has left (not its size)
    return [("%s FREE %s" % (d.get("name", d["slot"]), size_text(d.get("free_mb", 0))), d["slot"])
            for d in _free_disks(m)]


def _sizes(m, args):
    # the whole free space the chosen disks give at this level, then round sizes below it; the
    # controller's dry run says what it would create, or refuses (wrong disk count...) right here
    r = m.ctl.command("sd_create", dict(args, dry_run=True))
    most = r.get("blocks", 0) // 2048
    out = [("ALL " + size_text(most), {})]
    mb = 1 << 20
    while mb and len(out) < 6:
        if mb < most:
            out.append((size_text(mb), {"mb": mb}))
        mb >>= 1
    return out


def _created(args, r):
    return "SD%d CREATED %s" % (r.get("sd", 0), size_text(r.get("blocks", 0) // 2048))


def _slots(m, args):
    return [("%s %s %dMB" % (d.get("name", d["slot"]), d.get("state", ""), d.get("mb", 0)), d["slot"])
            for d in m.fetch("disk_list").get("disks", [])]


def _slot_one(m, args):
    return [(c[0], {"slot": c[1]}) for c in _slots(m, args)]


def _policy(m, args):
    return [("WRITE THROUGH", {"wb": False}), ("WRITE BACK", {"wb": True})]


def _ports(m, args):
    n = len(m.ctl.board.get("host_ports", [0, 0])) or 2
    return [("PORT %d" % p, {"port": p}) for p in range(n)]


def _luns(m, args):
    used = {}
    for e in m.fetch("lun_list").get("map", []):
        if e["port"] == args.get("port"):
            used[e["lun"]] = e["sd"]
    return [("LUN %d%s" % (l, (" -> SD%d" % used[l]) if l in used else " FREE"), {"lun": l})
            for l in range(8)]


def _mapped(m, args):
    return [("P%d LUN %d -> SD%d" % (e["port"], e["lun"], e["sd"]), {"port": e["port"], "lun": e["lun"]})
            for e in m.fetch("lun_list").get("map", [])]


def _disk_q(verb):
    # "FAIL DISK 1:0?": the slot by its name, as the list showed it
    return lambda m, a: "%s DISK %s?" % (verb, m.ctl.names[a["slot"]])


def _on_off(m, args):
    return [("ON", {"auto_rebuild": True}), ("OFF", {"auto_rebuild": False})]


def _confirm(m, args):
    return [("NO", None), ("YES", {})]


def _text(t, m, args):
    return t(m, args) if callable(t) else t


def _ask(question, loss, when=None):
    # the confirmation of an action that destroys data: the question names what it acts on, the
    # YES choice names the loss, and NO comes first, so Enter on the default keeps the data.
    # when(args): asked only for the choices it is true of (others destroy nothing)
    def source(m, args):
        if when is not None and not when(args):
            return None
        return [("NO", None), ("YES, " + _text(loss, m, args), {})]
    return Step(question, source)


def _lop_kinds(m, args):
    # lop/ kinds (lop_start {op, sd[, target]}); the harmless check first: Enter takes it
    return [("CONSISTENCY CHECK", {"op": "check"}), ("REBUILD", {"op": "rebuild"}),
            ("INITIALIZE", {"op": "init"}), ("COPY DRIVE", {"op": "copy"}), ("RESYNC", {"op": "resync"})]


def _copies(args):
    return args.get("op") in ("copy", "resync")


def _lop_drives(m, args):
    # only the drives lop/manager.py would start this operation on
    op = args.get("op")
    if _copies(args):
        # the source of a copy: the log drive or the primary of the active snapshot
        return _drives_where(m, lambda d, in_snap, st: in_snap)
    if op == "init":
        return _drives_where(m, lambda d, in_snap, st: not in_snap and d.get("status") == ONLINE)
    if op == "check":
        return _drives_where(m, lambda d, in_snap, st: d.get("status") == ONLINE)
    return _drives_where(m, lambda d, in_snap, st: d.get("status") == CRITICAL)


def _lop_targets(m, args):
    # the destination of a copy: neither the source, the primary nor the log drive, and as large
    # as the primary (lop/manager.py start_copy)
    if not _copies(args):
        return None
    drives = m.fetch("sd_list").get("drives", [])
    snap = m.fetch("snapshot_status")
    need = [d.get("blocks", 0) for d in drives if d["sd"] == snap.get("primary")] or [0]
    ok = [d for d in drives if d["sd"] not in (args.get("sd"), snap.get("primary")) and not d.get("log")
          and d.get("blocks", 0) >= need[0]]
    if args.get("op") == "resync":      # only onto the drive holding the earlier copy (else NO_BASE)
        tr = m.fetch("lop_status").get("tracking") or {}
        ok = [d for d in ok if tr.get("primary") == snap.get("primary") and d["sd"] == tr.get("backup")]
    return [(_drive_choice(d, "TO ")[0], {"target": d["sd"]}) for d in ok]


def _lop_question(m, args):
    if _copies(args):
        return "OVERWRITE SD%d?" % args.get("target", -1)
    return "INIT SD%d?" % args.get("sd", -1)


def _lop_loss(m, args):
    return ("SD%d DATA LOST" % args.get("target", -1)) if _copies(args) else "ALL DATA LOST"


def _lops_running(m, args):
    # this controller's by id; the partner's by drive, which the command runs on the drive's owner
    return [("%s SD%s %s%%" % (str(o.get("op", "?")).upper(), o.get("sd", "?"), op_pct(o)),
             {"id": o["id"]} if "id" in o and o.get("controller") == m.ctl.number else {"sd": o.get("sd")})
            for o in m.long_operations()]


# ---- the controller pair (control/pair.md) -----------------------------------------------------

def _movable(m, args):
    # sd_owner refuses a drive in the active snapshot and one a long operation runs on
    busy = [o.get("sd") for o in m.long_operations()]
    return [(drive_words(d, " ON C%d" % d.get("affinity", 0), 19), {"sd": d["sd"]})
            for d in m.pair_drives() if d["sd"] not in busy and not d.get("in_snapshot")]


def _move_to(m, args):
    # the other controller than the drive's affinity (moving it to its own does nothing)
    aff = [d.get("affinity", 0) for d in m.pair_drives() if d["sd"] == args.get("sd")] or [0]
    return [("TO C%d" % (1 - aff[0]), {"controller": 1 - aff[0]})]


def _moved(args, r):
    return "SD%d NOW ON C%d" % (r.get("sd", 0), r.get("affinity", 0))


def _members(m, args):
    me = m.ctl.number
    return [("C%d (THIS ONE)" % me, {"controller": me}), ("C%d (PARTNER)" % (1 - me), {"controller": 1 - me})]


def _failback_modes(m, args):
    return [("AUTOMATIC", {"failback": "automatic"}), ("MANUAL", {"failback": "manual"})]


def _failed(args, r):
    return "C%d FAILED" % r.get("failed", 0)


TREE = Menu("MAIN MENU", [
    View("STATUS", "status"),
    View("SNAPSHOT MAP", "snapmap"),
    View("EVENT LOG", "events"),
    Menu("CONFIGURATION", [
        Action("CREATE DRIVE", "sd_create",
               [Step("RAID LEVEL", _levels), Step("SELECT DISKS", _free_slots, multi="slots"),
                Step("SIZE", _sizes), Step("WRITE POLICY", _policy), Step("CREATE?", _confirm)], _created),
        Action("DELETE DRIVE", "sd_delete",
               [Step("DELETE DRIVE", _deletable),
                _ask(lambda m, a: "DELETE SD%d?" % a["sd"], "ALL DATA LOST")], "DRIVE DELETED"),
        Action("SET LOG DRIVE", "log_set",
               [Step("SET LOG ON", _log_candidates),
                _ask(lambda m, a: "LOG ON SD%d?" % a["sd"], lambda m, a: "SD%d DATA LOST" % a["sd"])], "LOG SET"),
        Action("CLEAR LOG DRIVE", "log_clear", [Step("CLEAR LOG ON", _log_drives)], "LOG CLEARED"),
        Action("MAP LUN", "lun_map", [Step("HOST PORT", _ports), Step("LUN", _luns),
                                      Step("TO DRIVE", _drives)], "LUN MAPPED"),
        Action("UNMAP LUN", "lun_unmap",
               [Step("UNMAP", _mapped),
                _ask(lambda m, a: "UNMAP P%d LUN %d?" % (a["port"], a["lun"]), "HOSTS LOSE IT")], "LUN UNMAPPED"),
        Action("WRITE POLICY", "sd_policy", [Step("DRIVE", _drives), Step("POLICY", _policy)],
               "POLICY SET"),
        Action("AUTO REBUILD", "params_set", [Step("AUTO REBUILD", _on_off)], "SETTING SAVED"),
    ], guard=True),
    Menu("ADMINISTRATION", [
        Action("START SNAPSHOT", "snapshot_start", [Step("PRIMARY DRIVE", _drives)], "SNAPSHOT STARTED"),
        Action("END SNAPSHOT", "snapshot_stop", [_ask("END SNAPSHOT?", "BACKUP LOST")], "SNAPSHOT ENDED"),
        View("SNAPSHOT MAP", "snapmap"),
        Menu("LONG OPERATIONS", [
            Action("START OPERATION", "lop_start",
                   [Step("OPERATION", _lop_kinds), Step("DRIVE", _lop_drives), Step("TARGET", _lop_targets),
                    _ask(_lop_question, _lop_loss, lambda a: a.get("op") in ("init", "copy", "resync"))],
                   "OPERATION STARTED"),
            View("OPERATION STATUS", "lops"),
            Action("STOP OPERATION", "lop_stop", [Step("STOP", _lops_running)], "OPERATION STOPPED"),
            Action("CLEAR INCOMPLETE", "lop_clear",
                   [Step("CLEAR MARK OF", _incomplete),
                    _ask(lambda m, a: "ACCEPT SD%d AS IS?" % a["sd"], "HOSTS SEE IT")], "MARK CLEARED"),
        ]),
        Menu("CONTROLLER PAIR", [
            View("PAIR STATUS", "pair"),
            Action("MOVE DRIVE", "sd_owner",
                   [Step("MOVE DRIVE", _movable), Step(lambda m, a: "MOVE SD%d" % a["sd"], _move_to)], _moved),
            Action("FAILBACK", "pair_failback", [_ask("FAILBACK?", "PORTS MOVE")], "FAILBACK STARTED"),
            Action("FAIL CONTROLLER", "pair_fail",
                   [Step("FAIL", _members),
                    _ask(lambda m, a: "FAIL C%d?" % a["controller"],
                         lambda m, a: "C%d STOPS" % a["controller"])], _failed),
            Action("FAILBACK MODE", "params_set", [Step("FAILBACK", _failback_modes)], "SETTING SAVED"),
        ], pair=True),
        Password("SET PASSWORD"),
    ], guard=True),
    Menu("DISKS", [
        View("DISK LIST", "disks"),
        Action("FAIL DISK", "disk_fail", [Step("FAIL SLOT", _slot_one), _ask(_disk_q("FAIL"), "DRIVES DEGRADE")],
               "DISK FAILED"),
        Action("REMOVE DISK", "disk_remove",
               [Step("REMOVE SLOT", _slot_one), _ask(_disk_q("REMOVE"), "DRIVES DEGRADE")], "DISK REMOVED"),
        Action("REPLACE DISK", "disk_replace",
               [Step("REPLACE SLOT", _slot_one), _ask(_disk_q("REPLACE"), "DISK WIPED")], "DISK REPLACED"),
    ], guard=True),
])


def pct_text(v):
    # a percentage as the screens show it: one decimal at most, from integer tenths, so no float
    # artefact (str(8.7) is 8.699999999999999 on the board) ever reaches a screen; "?" if not a number
    if not isinstance(v, (int, float)):
        return "?"
    t = int(v * 10 + 0.5)
    return "%d" % (t // 10) if t % 10 == 0 else "%d.%d" % (t // 10, t % 10)


def op_pct(o):
    return pct_text(o.get("percent", o.get("pct", o.get("progress"))))


def level_name(d):
    lv = d.get("level")
    if isinstance(lv, str):
        return lv.replace(" ", "")
    r = d.get("raid", lv)
    if isinstance(r, int):
        return levels.LEVEL_NAMES.get(r & levels.RAID_MASK, "?")
    return "?"


def spelled(code):
    # a refusal's code as the screen's headline: "NO_LOG_DEFINED" -> "NO LOG DEFINED"
    return str(code).replace("_", " ").upper()


# ---- the state machine -----------------------------------------------------------------------

class Frame:
    def __init__(self, kind, node, title):
        self.kind = kind
        self.node = node
        self.title = title
        self.cursor = 0
        self.items = []         # (label, value) for MENU and PICK
        self.picked = []        # toggled indexes of a multi PICK
        self.step = 0           # PICK: which step of node.steps
        self.args = None        # PICK: arguments collected so far


class Model:
    def __init__(self, ctl, acc=None):
        self.ctl = ctl
        self.access = acc or access.Access(ctl)     # the console's: the count of wrong passwords
        self.reset()

    def reset(self):
        # back to monitor mode, locked: after a disconnect, on leaving the line protocol, on Esc
        self.stack = [Frame(MONITOR, None, "MONITOR")]
        self.unlocked = False
        self.message = None     # outcome of the last action, until the next key: (True, done text, "")
                                # or (False, refusal code, the controller's message)
        self.passing = False    # the message is a screen's failed fetch: gone at the next refresh,
                                # which fetches again (a partner lost for a moment, then taken over)
        self.pw = ""            # password being entered
        self.pw_ch = -1         # LCD entry: index in PW_CHARS, -1 = "<OK>"
        self.rows = []
        self.status = {}
        self.alerts = []        # the faults the monitor's LCD shows, one a refresh (see alerts())
        self.tick = 0
        self.map = []
        self.refresh()

    @property
    def frame(self):
        return self.stack[-1]

    @property
    def mode(self):
        return "monitor" if len(self.stack) == 1 else "menu"

    def fetch(self, name, args=None):
        # a read-only command for a screen: errors become empty data plus a message, never raise
        try:
            return self.ctl.command(name, args or {})
        except Exception as e:
            if self.message is None:
                t = _err_text(e)
                self.message = (False, t[0], "%s: %s" % (name, t[1]))
                self.passing = True
            return {}

    # ---- data for the current frame (both views read rows/status/map) ----

    def refresh(self):
        if self.passing:
            self.message = None
            self.passing = False
        f = self.frame
        kind = f.node.kind if f.kind == VIEW else ("status" if f.kind == MONITOR else None)
        self.status = self.fetch("status") if kind in ("status", "snapmap") or f.kind == MONITOR else self.status
        rows = []
        if kind == "status":
            st = self.status
            if "pair" in st:
                rows += [("pair", st["pair"]), ("link", st["pair"])]
                self.owners(st.get("drives", []))
            for d in st.get("drives", []):
                rows.append(("sd", d))
            ports = {}
            for e in st.get("luns", []):
                ports.setdefault(e.get("port", 0), []).append(e)
            for p in sorted(ports):
                rows.append(("luns", p, ports[p]))
            rows.append(("snap", st.get("snapshot") or {}))
            for o in st.get("lops", []):
                rows.append(("lop", o))
            for e in self.status_events():
                rows.append(("event", e))
        elif kind == "snapmap":
            rows.append(("snap", self.status.get("snapshot") or {}))
            self.map = self.fetch("snapshot_map", {"cells": MAP_COLS * MAP_ROWS}).get("cells", [])
            rows.append(("map", self.map))
        elif kind == "events":
            try:
                evs = self.ctl.events.recent(EVENTS_SHOWN)
            except Exception:
                evs = []
            for e in evs:
                rows.append(("event", e))
        elif kind == "disks":
            for d in self.fetch("disk_list").get("disks", []):
                rows.append(("disk", d))
            on = self.fetch("params_get").get("auto_rebuild")
            rows.append(("text", "automatic rebuild of a replaced disk: %s" % ("ON" if on else "OFF")))
        elif kind == "lops":
            for o in self.long_operations():
                rows.append(("lop", o))
        elif kind == "pair":
            p = self.fetch("pair_status")
            rows += [("pair", p), ("link", p)]
            for d in self.pair_drives():
                rows.append(("sd", d))
        if f.kind == MONITOR:
            self.alerts = alerts(self.status.get("drives", []), self.fetch("disk_list").get("disks", []),
                                 self.status.get("pair"))
            self.tick += 1
        if kind is not None:
            if not rows:
                rows.append(("text", "(nothing to show)"))
            self.rows = rows
            if f.kind == VIEW:
                f.cursor = min(f.cursor, len(rows) - 1)
            else:
                f.cursor = min(f.cursor, max(0, self.monitor_count() - 1))

    def status_events(self):
        # the monitor's five event lines keep what an operator acts on: iSCSI session traffic
        # (info-level logins, logouts, closed sessions) fills them only while fewer than five
        # other events are among the last EVENTS_SHOWN
        try:
            evs = self.ctl.events.recent(EVENTS_SHOWN)
        except Exception:
            return []
        keep = [e["seq"] for e in evs if not session_noise(e)][-STATUS_EVENTS:]
        room = STATUS_EVENTS - len(keep)
        if room:
            keep += [e["seq"] for e in evs if session_noise(e)][-room:]
        return [e for e in evs if e["seq"] in keep]

    def drive_count(self):
        return len(self.status.get("drives", []))

    def monitor_count(self):
        # what Up/Down step through in monitor mode: on a pair its line first, then the drives
        return self.drive_count() + ("pair" in self.status)

    def owners(self, drives):
        # on a pair, each drive gets who serves it now (owner; None while this one stood down)
        # and its home controller (affinity)
        own = {}
        for d in self.fetch("pair_status").get("drives", []):
            own[d["sd"]] = d
        for d in drives:
            o = own.get(d.get("sd"), {})
            d["owner"], d["affinity"] = o.get("owner"), o.get("affinity", 0)
        return drives

    def pair_drives(self):
        # the drives with their owners, and whether the active snapshot holds them
        snap = self.fetch("snapshot_status")
        in_snap = (snap.get("primary"), snap.get("log")) if snap.get("state") == "ACTIVE" else ()
        drives = self.owners(self.fetch("sd_list").get("drives", []))
        for d in drives:
            d["in_snapshot"] = d["sd"] in in_snap
        return drives

    def long_operations(self):
        # this controller's long operations and, on a pair whose partner is up, the partner's,
        # each with the controller that runs it
        ops = self.fetch("lop_status").get("lops", [])
        p = self.ctl.pair
        if p is None:
            return ops
        for o in ops:
            o["controller"] = self.ctl.number
        if p.partner != pairmod.UP:
            return ops
        try:
            theirs = p.remote_command("lop_status", {}).get("lops", [])
        except CmdError:
            return ops          # the partner went away while asked: its operations are not known
        for o in theirs:
            o["controller"] = p.other
        return ops + theirs

    def refresh_interval_ms(self):
        f = self.frame
        if f.kind == MONITOR:
            return 1000
        if f.kind == VIEW:
            return 500 if f.node.kind == "snapmap" else 1000
        return 0    # menus and choices do not change by themselves

    # ---- input ----

    def key(self, k):
        self.message = None
        f = self.frame
        try:
            self._button(f, k)
        except CmdError as e:
            # an action's step refused before any further choice (CREATE DRIVE with no free
            # space): the action ends here, with the reason
            while self.frame.kind == PICK:
                self.stack.pop()
            self.message = (False, e.code, e.message)
        self.passing = False    # what this key brought stays until the next key
        self.refresh()

    def _button(self, f, k):
        if f.kind == PASSWORD:
            self._pw_key(k)
        elif k == UP or k == DOWN:
            n = self._count(f)
            if n:
                f.cursor = (f.cursor + (1 if k == DOWN else -1)) % n if f.kind != VIEW else \
                    max(0, min(n - 1, f.cursor + (1 if k == DOWN else -1)))
        elif k == ENTER:
            self._enter(f)
        elif k == ESC:
            self._back()

    def char(self, c):
        # a printable character typed on the keyboard: only the password entry takes text
        f = self.frame
        if f.kind == PASSWORD and len(self.pw) < PW_MAX:
            self.message = None
            self.pw += c

    def backspace(self):
        if self.frame.kind == PASSWORD:
            self.pw = self.pw[:-1]

    def _count(self, f):
        if f.kind == MONITOR:
            return self.monitor_count()
        if f.kind == VIEW:
            return len(self.rows)
        return len(f.items)

    def _back(self):
        if len(self.stack) > 1:
            self.stack.pop()
            if len(self.stack) == 1:
                self.unlocked = False   # leaving menu mode locks configuration again
            else:
                self._reload(self.frame)

    def _push_node(self, node):
        if isinstance(node, Menu):
            f = Frame(MENU, node, node.label)
            f.items = [(c.label, c) for c in node.children if not c.pair or self.ctl.pair is not None]
        elif isinstance(node, View):
            f = Frame(VIEW, node, node.label)
        elif isinstance(node, Action):
            f = Frame(PICK, node, node.label)
            f.args = {}
        elif isinstance(node, Password):
            if self.access.required():
                self._start_pw("CURRENT PASSWORD", self._pw_current)
            else:
                self._start_pw("NEW PASSWORD", self._pw_new)
            return
        else:
            return
        self.stack.append(f)
        if f.kind == PICK:
            self._reload(f)

    def _advance(self, f):
        # on to the next step that applies to what was chosen; False when none is left
        while f.step + 1 < len(f.node.steps):
            f.step += 1
            if self._reload(f):
                return True
        return False

    def _reload(self, f):
        # choices are listed from the controller each time a step is shown; False: the step
        # does not apply
        if f.kind != PICK:
            return False
        st = f.node.steps[f.step]
        items = st.source(self, f.args)
        if items is None:
            return False
        f.title = _text(st.title, self, f.args)
        f.items = list(items)
        if st.multi:
            f.items.append(("DONE", "done"))
        if not f.items:
            f.items = [("(NONE AVAILABLE)", None)]
        f.cursor = min(f.cursor, len(f.items) - 1)
        return True

    def _enter(self, f):
        if f.kind == MONITOR:
            self._push_node(TREE)
        elif f.kind == MENU:
            node = f.items[f.cursor][1]
            if node.guard and not self.unlocked:
                if not self.access.required():
                    self.unlocked = True
                else:
                    self._start_pw("PASSWORD", lambda pw: self._unlock(pw, node))
                    return
            self._push_node(node)
        elif f.kind == PICK:
            self._pick(f)

    def _pick(self, f):
        st = f.node.steps[f.step]
        label, value = f.items[f.cursor]
        if st.multi and value != "done":
            if f.cursor in f.picked:
                f.picked.remove(f.cursor)
            else:
                f.picked.append(f.cursor)
            return
        if st.multi:
            f.args[st.multi] = [f.items[i][1] for i in sorted(f.picked)]
        elif value is None:
            self.stack.pop()
            self.message = (False, "CANCELLED", "nothing was changed")
            return
        else:
            f.args.update(value)
        f.cursor = 0
        f.picked = []
        if self._advance(f):
            return
        self.stack.pop()
        self.run(f.node.cmd, f.args, f.node.done)

    def run(self, cmd, args, done):
        # every refusal is shown with the controller's reason, on the screen and on the LCD
        try:
            r = self.ctl.command(cmd, args)
            self.message = (True, done(args, r) if callable(done) else done, "")
        except Exception as e:
            t = _err_text(e)
            self.message = (False, t[0], t[1])
        self._reload(self.frame)

    # ---- password entry: keyboard text or LCD buttons ----

    def _start_pw(self, title, then):
        f = Frame(PASSWORD, None, title)
        f.args = then       # then(password): what the typed password is for
        self.pw = ""
        self.pw_ch = -1
        self.stack.append(f)

    def _pw_key(self, k):
        n = len(PW_CHARS)
        if k == UP:
            self.pw_ch = (self.pw_ch + 2) % (n + 1) - 1
        elif k == DOWN:
            self.pw_ch = (self.pw_ch + n + 1) % (n + 1) - 1
        elif k == ESC:
            self.stack.pop()
            self.pw = ""
            self.message = (False, "CANCELLED", "nothing was changed")
        elif k == ENTER and self.pw_ch >= 0:
            if len(self.pw) < PW_MAX:
                self.pw += PW_CHARS[self.pw_ch]
            self.pw_ch = -1
        elif k == ENTER:
            self.submit_pw()

    def submit_pw(self):
        f = self.stack.pop()
        pw, self.pw = self.pw, ""
        f.args(pw)

    def _checked(self, pw):
        # a typed password against NV memory; a wrong one or a lock-out is the message
        try:
            if self.access.check(pw):
                return True
            self.message = (False, "WRONG_PASSWORD", "the password in NV memory does not match")
        except Exception as e:
            t = _err_text(e)
            self.message = (False, t[0], t[1])
        return False

    def _unlock(self, pw, node):
        if self._checked(pw):
            self.unlocked = True
            self._push_node(node)

    # changing the password: the current one (when one is set), then the new one twice

    def _pw_current(self, pw):
        if self._checked(pw):
            self._start_pw("NEW PASSWORD", self._pw_new)

    def _pw_new(self, pw):
        self._start_pw("CONFIRM PASSWORD", lambda again: self._pw_confirm(pw, again))

    def _pw_confirm(self, pw, again):
        if pw != again:
            self.message = (False, "PASSWORDS_DIFFER", "typed differently twice: the password is unchanged")
            return
        self.access.store(access.digest(pw) if pw else None)
        self.message = (True, "PASSWORD SET" if pw else "PASSWORD CLEARED", "")


def _err_text(e):
    # (code, message) of a refusal; any other exception is a fault of the firmware
    code = getattr(e, "code", None)
    if isinstance(code, str):
        return code, str(getattr(e, "message", "") or "")
    return "FIRMWARE_ERROR", "%s: %s" % (type(e).__name__, e)


def session_noise(e):
    # iSCSI session traffic: info-level events of the host ports (logins, logouts, closed and
    # reinstated sessions, portals up); their warnings (refused logins, digest errors) count
    return e.get("level") == "info" and str(e.get("text", "")).startswith("iSCSI")


def alerts(drives, disks, pair=None):
    # the faults a front panel alerts on: the pair's (below), a drive not ONLINE or holding an
    # incomplete copy, a failed or removed disk. Each is (first line, second line or None: the
    # snapshot line); a first line has at most 19 characters (the LCD shows it after "!")
    out = pair_alerts(pair) if pair else []
    for d in drives:
        if d.get("incomplete"):
            out.append(("SD%s INCOMPLETE COPY" % d.get("sd"), None))
        elif d.get("status", ONLINE) != ONLINE:
            out.append(("SD%s %s" % (d.get("sd"), d.get("status")), None))
    for d in disks:
        if d.get("state") in ("failed", "removed"):
            out.append(("DISK %s %s" % (d.get("name"), str(d.get("state")).upper()), None))
    return out


def waiting(p):
    # the controller of the pair that waits for a failback (its drives served by the other), or None
    me = p.get("controller", 0)
    if me not in p.get("serving", []) and me in p.get("partner_serving", []):
        return me
    if 1 - me in p.get("serving", []) and p.get("partner") == pairmod.UP:
        return 1 - me
    return None


def pair_alerts(p):
    # pair_status p as the fault display says it: a controller that stood down, one that waits for
    # a failback, a partner failed or cut off and who serves its ports now
    me, other = p.get("controller", 0), 1 - p.get("controller", 0)
    if p.get("mode") == pairmod.STOOD_DOWN:
        return [("C%d STOOD DOWN" % me, "SERVES NO DRIVE")]
    w = waiting(p)
    if w is not None:
        return [("C%d WAITS FAILBACK" % w, "C%d SERVES C%d PORTS" % (1 - w, w))]
    partner = p.get("partner")
    if partner not in (pairmod.DEAD, pairmod.APART):
        return []
    if other in p.get("serving", []):
        return [("PARTNER " + partner, "C%d SERVES C%d PORTS" % (me, other))]
    return [("PARTNER " + partner, "DECIDING WHO SERVES")]
