"""Crash torture: kill -9 the firmware during a write storm with a snapshot active, reboot, check the
backup LUN and every acknowledged write block by block, in each storm of crash_storm.CONFIGS
(write-through; write-back primary; write-back primary and log drive), the kills shared between
them. `make torture` runs 1000 kills; `make bench` a short run; `--storm NAME` runs one storm only
(`tests/bench/run.py --only crash --kills 200 --storm write-back-log`). Prints BENCH crash_kills,
BENCH crash_divergences (must be 0) and the divergences of each storm."""
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crash_storm import CONFIGS, run_storm  # noqa: E402


def run(emit, argv):
    kills = int(argv[argv.index("--kills") + 1]) if "--kills" in argv else 40
    names = [argv[argv.index("--storm") + 1]] if "--storm" in argv else sorted(CONFIGS)
    total = 0
    for i, name in enumerate(names):
        n = kills * (i + 1) // len(names) - kills * i // len(names)
        with tempfile.TemporaryDirectory() as d:
            bad = run_storm(d, n, random.Random(kills + i), write_back=CONFIGS[name],
                            log=lambda s: print(s, file=sys.stderr))
        emit("crash_divergences_%s" % name.replace("-", "_"), bad, "count")
        total += bad
    emit("crash_kills", kills, "count")
    emit("crash_divergences", total, "count")
