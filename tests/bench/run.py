"""`make bench`: runs every tests/bench/bench_*.py and prints `BENCH <name> <value> <unit>` lines.

Each bench module has `run(emit)`; `emit(name, value, unit)` prints one figure. Ratios are measured
side by side in one run (same process, same files), never against remembered numbers.
Usage: run.py [--only SUBSTRING] [extra args passed to the modules as `argv`]
"""
import importlib.util
import sys
import traceback
from pathlib import Path

HERE = Path(__file__).parent


def emit(name, value, unit):
    if isinstance(value, float):
        value = "%.4g" % value
    print("BENCH %s %s %s" % (name, value, unit), flush=True)


def main(argv):
    only = None
    if "--only" in argv:
        only = argv[argv.index("--only") + 1]
    failed = 0
    for path in sorted(HERE.glob("bench_*.py")):
        if only and only not in path.stem:
            continue
        spec = importlib.util.spec_from_file_location(path.stem, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        try:
            mod.run(emit, argv)
        except Exception:
            failed += 1
            print("BENCH-ERROR %s" % path.stem, file=sys.stderr)
            traceback.print_exc()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
