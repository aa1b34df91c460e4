"""Crash torture: kill -9 the firmware during a write storm with a snapshot active, reboot, check the
backup LUN and every acknowledged write block by block. `make torture` runs 1000 kills; `make bench`
a short run. Prints BENCH crash_kills and BENCH crash_divergences (must be 0)."""
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crash_storm import run_storm  # noqa: E402


def run(emit, argv):
    kills = int(argv[argv.index("--kills") + 1]) if "--kills" in argv else 40
    total = 0
    for wb in (False, True):
        with tempfile.TemporaryDirectory() as d:
            total += run_storm(d, kills // 2, random.Random(kills + wb), write_back=wb,
                               log=lambda s: print(s, file=sys.stderr))
    emit("crash_kills", kills, "count")
    emit("crash_divergences", total, "count")
