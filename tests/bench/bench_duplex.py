"""Duplex crash torture: kill -9 of either controller of a pair at random instants of a host storm
(writes through both controllers' ports, first-write copies, backup LUN reads through the
non-owner, initiate and terminate, FIG. 8 copies cut short by the kill, failbacks cut short by a
second kill), each kill taken over, checked through all four portals and failed back
(tests/duplex_storm.py). `make torture` runs 200 kills, `make bench` a short run; `--kills N`
(`tests/bench/run.py --only duplex --kills 200`). Prints BENCH duplex_kills, BENCH
duplex_divergences (must be 0), duplex_fig8_copies_resumed, duplex_failback_kills and what the hosts retried by kind (duplex_retries_*)."""
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from duplex_storm import run_duplex_storm  # noqa: E402


def run(emit, argv):
    kills = int(argv[argv.index("--kills") + 1]) if "--kills" in argv else 20
    with tempfile.TemporaryDirectory() as d:
        bad, retries, counts = run_duplex_storm(d, kills, random.Random(kills), log=lambda s: print(s, file=sys.stderr))
    for kind, n in sorted(retries.items()):
        emit("duplex_retries_%s" % kind.replace("/", "_"), n, "count")
    emit("duplex_fig8_copies_resumed", counts["copies"], "count")
    emit("duplex_failback_kills", counts["failback_kills"], "count")
    emit("duplex_kills", kills, "count")
    emit("duplex_divergences", bad, "count")
