"""kill -9 under a write storm with a snapshot active (used by tests/test_crash_snapshot.py and by
`make torture`). After every kill the board reboots and two promises are checked block by block:
the backup LUN shows exactly the image at initiate, and every acknowledged write is on the primary
(a block of the one write in flight at the kill may hold its old or its new data, nothing else)."""
import struct
import subprocess
import time
from pathlib import Path

from harness import MICROPYTHON, ROOT, write_board

STORM = str(ROOT / "tests" / "firmware" / "storm.py")
# the storms by name: the system drives set to write-back (SD0 the primary, SD1 the log drive)
CONFIGS = {"write-through": (), "write-back": (0,), "write-back-log": (0, 1)}


def run_storm(tmp, kills, rnd, write_back=(), log=None):
    """-> number of divergences (blocks that broke a promise) over `kills` kill/reboot cycles;
    `write_back`: the system drives switched to write-back before the storm."""
    board_file, _ = write_board(tmp)
    state = Path(tmp) / "state"
    state.mkdir(exist_ok=True)
    if write_back:
        # switch them to write-back before the storm (through a short-lived boot)
        subprocess.run([MICROPYTHON, "-X", "heapsize=32M", "-c", (
            "import sys; sys.path.insert(0, %r)\n"
            "from hw import board\nfrom control import controller\n"
            "c = controller.Controller(board.load(%r), %r, %r)\n"
            "for sd in %r: c.command('sd_policy', {'sd': sd, 'wb': True})\n") % (
                str(ROOT / "firmware"), str(board_file), str(state), str(ROOT), tuple(write_back))],
            check=True, capture_output=True)
    ledger = Ledger()
    divergences = 0
    seed = 0
    for k in range(kills):
        p = subprocess.Popen([MICROPYTHON, "-X", "heapsize=32M", STORM, str(state), str(board_file),
                              "write", str(seed)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        if k == 0:
            while p.stdout.readline() not in (b"SNAP\n", b""):   # the snapshot is taken before any kill
                pass
        time.sleep(rnd.uniform(0.02, 0.25))
        p.kill()
        out = p.stdout.read().decode(errors="replace").split("\n")    # what the firmware acknowledged
        p.wait()
        for line in out:
            w = line.split()
            if not w:
                continue
            if w[0] == "GO" and len(w) == 4:    # (the kill may cut the last line short: the
                                                # write it announces had not started)
                ledger.go(int(w[1]), int(w[2]), int(w[3]))
                seed = max(seed, int(w[1]))
            elif w[0] == "ACK" and len(w) == 2 and ledger.inflight:
                ledger.ack()
            elif w[0] == "FAIL":
                raise AssertionError("a write failed during the storm: " + line)
        seed += 1000          # the next run's seeds never repeat an in-flight seed
        chk = subprocess.run([MICROPYTHON, "-X", "heapsize=32M", STORM, str(state), str(board_file), "check"],
                             capture_output=True, text=True, timeout=120)
        lines = {l[:1]: l[2:].split() for l in chk.stdout.splitlines() if l[:2] in ("P ", "B ")}
        if "STATE ACTIVE" not in chk.stdout or len(lines.get("P", [])) == 0:
            raise AssertionError("board did not come back with the snapshot active:\n" + chk.stdout[-2000:] + chk.stderr[-2000:])
        bad = differ([_seed(b, t) for b, t in enumerate(lines["B"])], {}) + ledger.settle(
            [_seed(b, t) for b, t in enumerate(lines["P"])])
        if log is not None and bad:
            log("kill %d: %d divergent blocks" % (k, bad))
        divergences += bad
    return divergences


def _seed(block, tag):
    # storm.py's "block:seed" tag of `block` -> its seed (-1: another block's, or torn)
    b, _, s = tag.partition(":")
    return int(s) if s and b == str(block) else -1


def tagged(lba, seed):
    """A block that says which block and which write it is (the layout of tests/firmware/storm.py)."""
    return struct.pack("<II", lba, seed) * 64


def seed_of(lba, block):
    """-> the write seed a block read from `lba` carries (-1: another block's, torn or never written)."""
    b, s = struct.unpack_from("<II", block, 0)
    return s if b == lba and block[8:] == block[:504] else -1


def differ(seen, image, lba=0):
    """seen: the seeds read from block `lba` on -> the blocks whose seed is not the one `image`
    (block -> seed, 0 when absent) holds"""
    return sum(1 for i, s in enumerate(seen) if s != image.get(lba + i, 0))


class Ledger:
    """What a host was promised on one drive: block -> seed of its last acknowledged write, and the
    one write in flight (announced, not acknowledged), whose blocks may hold their old or new seed."""

    def __init__(self):
        self.acked = {}
        self.inflight = None

    def go(self, seed, lba, n):
        self.inflight = (seed, lba, n)

    def ack(self):
        s, lba, n = self.inflight
        for b in range(lba, lba + n):
            self.acked[b] = s
        self.inflight = None

    def settle(self, seen):
        """seen: the seed read back from each block -> the blocks that broke the promise; a block of
        the in-flight write that holds it is acknowledged from here on, and nothing is in flight."""
        bad = 0
        s, lba, n = self.inflight or (None, 0, 0)
        for b, got in enumerate(seen):
            if lba <= b < lba + n and got == s:
                self.acked[b] = s
            elif got != self.acked.get(b, 0):
                bad += 1
        self.inflight = None
        return bad
