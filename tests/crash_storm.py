"""kill -9 under a write storm with a snapshot active (used by tests/test_crash_snapshot.py and by
`make torture`). After every kill the board reboots and two promises are checked block by block:
the backup LUN shows exactly the image at initiate, and every acknowledged write is on the primary
(a block of the one write in flight at the kill may hold its old or its new data, nothing else)."""
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
    model = {}                 # block -> seed of the last acknowledged write
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
        inflight = None
        for line in out:
            w = line.split()
            if not w:
                continue
            if w[0] == "GO" and len(w) == 4:    # (the kill may cut the last line short: the
                                                # write it announces had not started)
                inflight = (int(w[1]), int(w[2]), int(w[3]))
                seed = max(seed, int(w[1]))
            elif w[0] == "ACK" and len(w) == 2 and inflight:
                s, lba, n = inflight
                for b in range(lba, lba + n):
                    model[b] = s
                inflight = None
            elif w[0] == "FAIL":
                raise AssertionError("a write failed during the storm: " + line)
        seed += 1000          # the next run's seeds never repeat an in-flight seed
        chk = subprocess.run([MICROPYTHON, "-X", "heapsize=32M", STORM, str(state), str(board_file), "check"],
                             capture_output=True, text=True, timeout=120)
        lines = {l[:1]: l[2:].split() for l in chk.stdout.splitlines() if l[:2] in ("P ", "B ")}
        if "STATE ACTIVE" not in chk.stdout or len(lines.get("P", [])) == 0:
            raise AssertionError("board did not come back with the snapshot active:\n" + chk.stdout[-2000:] + chk.stderr[-2000:])
        bad = 0
        for b, tag in enumerate(lines["B"]):
            if tag != "%d:0" % b:
                bad += 1
        for b, tag in enumerate(lines["P"]):
            ok = {"%d:%d" % (b, model.get(b, 0))}
            if inflight and inflight[1] <= b < inflight[1] + inflight[2]:
                ok.add("%d:%d" % (b, inflight[0]))
            if tag not in ok:
                bad += 1
        if inflight:         # the in-flight write may or may not have landed: learn which
            s, lba, n = inflight
            for b in range(lba, lba + n):
                if lines["P"][b] == "%d:%d" % (b, s):
                    model[b] = s
        if log is not None and bad:
            log("kill %d: %d divergent blocks" % (k, bad))
        divergences += bad
    return divergences
