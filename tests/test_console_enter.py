"""Enter on every default never destroys data, through the real console (VT-100 read with pyte).

One test walks to every item of every menu and presses nothing but Enter there; the other takes
each action that destroys data (delete a drive, unmap a LUN, end the snapshot, initialize, copy or
re-sync onto a drive, fail, remove or replace a disk) down every list it offers to its question,
checks that the question names the loss and that NO is the default, and presses Enter. Before and
after: the bytes of every disk image, the configuration in NV memory and the snapshot state."""
import hashlib
import json

from console_term import DOWN, ENTER, Line, Term

LEFT = b"\x1b[D"

HELP = {b"MONITOR  Enter": "monitor", b"MENU  Up/Down: move   Enter/Right": "menu",
        b"MENU  Up/Down: move   Enter: choose": "pick", b"MENU  Up/Down: scroll": "view",
        b"Type the password": "password"}
BODY = range(5, 22)


def fingerprint(board, skip_slots=()):
    """What must survive: disk bytes (but slots in skip_slots), the NV configuration without its
    update count, the snapshot state. The console must be free (no Term attached)."""
    disks = {}
    for p in sorted(board.state.glob("disk-*.img")):
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        disks[p.name] = h.hexdigest()
    c = Line(board.console)
    c.hello()
    nv = c.call("nvram_dump")
    snap = c.call("snapshot_status")
    c.s.sendall(b"z bye\n")
    c.close()
    tpc = 4
    for slot in skip_slots:
        disks.pop("disk-%d-%d.img" % (slot // tpc, slot % tpc))
    return disks, json.dumps(_without(nv, "generation"), sort_keys=True), (snap["state"], snap["generation"])


def _without(d, key):
    if isinstance(d, dict):
        return {k: _without(v, key) for k, v in d.items() if k != key}
    if isinstance(d, list):
        return [_without(v, key) for v in d]
    return d


def write_pattern(c, lun, lba, blocks, seed):
    data = bytes((i * seed + lun) & 0xFF for i in range(blocks * 512))
    r = c.call("cdb", {"port": 0, "lun": lun, "cdb": "2a00%08x00%04x00" % (lba, blocks), "data": data.hex()})
    assert r["status"] == 0, r


def settle(t):
    """Ctrl-L after the keys sent: once its full redraw is in, the screen shows their outcome."""
    t.raw = b""
    t.key(b"\x0c")
    t.wait(lambda t: b"\x1b[2J" in t.raw and any(h in t.raw.rsplit(b"\x1b[2J", 1)[1] for h in HELP))


def kind(t):
    row = t.screen.display[23].encode()
    return next(k for h, k in HELP.items() if row.startswith(h))


def labels(t):
    return [t.screen.display[y].strip() for y in BODY if t.screen.display[y].strip()]


class Walker:
    """A person at the terminal who goes to a frame by the labels of the items chosen on the
    way (arrows, then Enter), always starting from monitor mode."""

    def __init__(self, t):
        self.t = t
        self.lists = {}         # path -> the labels listed at the end of it, as last seen

    def go(self, path):
        for i in range(len(path)):
            if path[:i] not in self.lists:
                self.at(path[:i])         # first visit: learn what is listed on the way
        keys = LEFT * 6 + ENTER           # Left: back, one frame at a time (nothing in monitor mode)
        for i, label in enumerate(path):
            keys += DOWN * self.lists[path[:i]].index(label) + ENTER
        self.press(keys)
        assert self.t.screen.display[4].startswith("== MAIN MENU"), (path, self.t.text())

    def press(self, keys):
        self.t.key(keys)
        settle(self.t)

    def at(self, path):
        self.go(path)
        if kind(self.t) in ("menu", "pick"):
            self.lists[path] = labels(self.t)
        return kind(self.t)

    def leaves(self, path=()):
        """Every item of the menu tree under `path` that is not a menu itself."""
        out = []
        self.at(path)
        for label in self.lists[path]:
            # a menu shows its label last in the path row; an action refused at once (CREATE
            # DRIVE with every disk taken) leaves the menu it was chosen from
            if self.at(path + (label,)) == "menu" and self.t.screen.display[4].rstrip().endswith("> " + label):
                out += self.leaves(path + (label,))
            else:
                out.append(path + (label,))
        return out

    def questions(self, path, first=None, chosen=()):
        """Every way down the lists of the action at `path` to its question (lists of choices)."""
        self.at(path + chosen)
        here = self.lists.get(path + chosen, [])
        if here[:1] == ["NO"]:
            return [chosen]
        assert kind(self.t) == "pick", (path, chosen, self.t.text())
        options = [x for x in here if x != "(NONE AVAILABLE)" and (first is None or chosen or x in first)]
        out = []
        for label in options:
            out += self.questions(path, first, chosen + (label,))
        return out


def board_with_data(make_board):
    """The factory layout plus SD2 (RAID 5 over four more disks), all three holding data."""
    b = make_board(populated_slots=10, disk_mb=16)
    c = Line(b.console)
    c.hello()
    c.call("sd_create", {"raid": 5, "slots": [6, 7, 8, 9]})
    c.call("lun_map", {"port": 0, "lun": 2, "sd": 2})
    for lun, seed in ((0, 3), (2, 5)):
        write_pattern(c, lun, 0, 64, seed)
        write_pattern(c, lun, 20000, 64, seed + 4)
    return b, c


def test_enter_on_every_default_of_every_menu_item_destroys_nothing(make_board):
    b, c = board_with_data(make_board)
    c.s.sendall(b"z bye\n")
    c.close()
    # the log drive's disks (slots 4, 5) are left out: Enter on START SNAPSHOT's default starts
    # a snapshot, whose log is written there by design
    before = fingerprint(b, skip_slots=(4, 5))
    t = Term(b.console)
    t.wait("MONITOR MODE")
    w = Walker(t)
    walked = w.leaves()
    assert len(walked) >= 20 and ("ADMINISTRATION", "LONG OPERATIONS", "START OPERATION") in walked, walked
    for path in walked:
        w.go(path)
        w.press(ENTER * 6)
    t.close()
    after = fingerprint(b, skip_slots=(4, 5))
    assert after[0] == before[0], "disk data changed"
    assert after[1] == before[1], "configuration changed"


# the actions that destroy data, and the choices of their first list that lead to a question
DESTRUCTIVE = [
    (("CONFIGURATION", "DELETE DRIVE"), None),
    (("CONFIGURATION", "UNMAP LUN"), None),
    (("ADMINISTRATION", "END SNAPSHOT"), None),
    (("ADMINISTRATION", "LONG OPERATIONS", "START OPERATION"), ("INITIALIZE", "COPY DRIVE", "RESYNC")),
    (("DISKS", "FAIL DISK"), None),
    (("DISKS", "REMOVE DISK"), None),
    (("DISKS", "REPLACE DISK"), None),
]


def test_enter_at_every_step_of_each_destructive_action_destroys_nothing(make_board):
    b, c = board_with_data(make_board)
    c.call("lun_unmap", {"port": 0, "lun": 2})          # SD2 unmapped: DELETE DRIVE offers it
    c.call("snapshot_start", {"sd": 0})                 # COPY DRIVE and RESYNC have a source
    c.s.sendall(b"z bye\n")
    c.close()
    before = fingerprint(b)
    t = Term(b.console)
    t.wait("MONITOR MODE")
    w = Walker(t)
    asked = []
    for path, first in DESTRUCTIVE:
        for chosen in w.questions(path, first):
            w.go(path + chosen)
            question = t.screen.display[4].rsplit(" > ", 1)[-1].strip()
            body = labels(t)
            assert question.endswith("?") and body[1].startswith("YES, ") and len(body) == 2, t.text()
            assert t.selected() == "NO", t.text()                 # the default
            w.press(ENTER)
            assert "CANCELLED" in t.screen.display[1], t.text()
            asked.append("%s %s" % (question, body[1]))
    t.close()
    for q in ("DELETE SD2? YES, ALL DATA LOST", "INIT SD2? YES, ALL DATA LOST",
              "OVERWRITE SD2? YES, SD2 DATA LOST", "UNMAP P0 LUN 0? YES, HOSTS LOSE IT",
              "END SNAPSHOT? YES, BACKUP LOST", "FAIL DISK 0:0? YES, DRIVES DEGRADE",
              "REMOVE DISK 2:1? YES, DRIVES DEGRADE", "REPLACE DISK 1:3? YES, DISK WIPED"):
        assert q in asked, (q, asked)
    after = fingerprint(b)
    assert after == before
    assert after[2][0] == "ACTIVE"
