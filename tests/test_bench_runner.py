"""`make bench`'s runner teaches instead of running: --help lists the parts, a part that does not
exist is refused with the list (it used to run the whole bench)."""
import subprocess
import sys
from pathlib import Path

RUN = str(Path(__file__).parent / "bench" / "run.py")


def bench(*argv):
    return subprocess.run([sys.executable, RUN] + list(argv), capture_output=True, text=True, timeout=60)


def test_help_lists_every_part_and_runs_nothing():
    p = bench("--help")
    assert p.returncode == 0 and not [l for l in p.stdout.splitlines() if l.startswith("BENCH ")]
    for part in ("snapshot", "iscsi", "crash", "abuse", "console_flood", "duplex", "pair"):
        assert "\n  %s " % part in p.stdout, p.stdout


def test_unknown_part_is_refused_with_the_list():
    p = bench("--only", "no-such-part")
    assert p.returncode == 2 and "no part matches 'no-such-part'" in p.stderr and "  snapshot " in p.stderr
    p = bench("--only")
    assert p.returncode == 2 and "--only needs a part" in p.stderr


def test_each_part_says_how_busy_the_machine_was():
    p = bench("--only", "crc")
    loads = [l.split() for l in p.stdout.splitlines() if l.startswith("BENCH crc_load_avg_1m ")]
    assert p.returncode == 0 and len(loads) == 1 and float(loads[0][2]) >= 0 and loads[0][3] == "load"
