"""`make bench`: runs every tests/bench/bench_*.py and prints `BENCH <name> <value> <unit>` lines.

Each bench module has `run(emit)`; `emit(name, value, unit)` prints one figure. Ratios are measured
side by side in one run (same process, same files), never against remembered numbers. After each
part, `BENCH <part>_load_avg_1m` says how busy the machine was meanwhile (its 1-minute load average).
Usage: run.py [--only PART] [extra args passed to the modules as `argv`]
       run.py --help | --list
"""
import importlib.util
import os
import sys
import traceback
from pathlib import Path

HERE = Path(__file__).parent


def emit(name, value, unit):
    if isinstance(value, float):
        value = "%.4g" % value
    print("BENCH %s %s %s" % (name, value, unit), flush=True)


def parts():
    return sorted(HERE.glob("bench_*.py"))


def usage():
    lines = [__doc__.strip(), "", "parts (--only takes any part of a name; `make bench` runs them all):"]
    for path in parts():
        lines.append("  %-16s %s" % (path.stem[len("bench_"):], (_first_line(path))))
    return "\n".join(lines)


def _first_line(path):
    # the first line of a bench module's docstring says what it measures
    for line in path.read_text().splitlines():
        line = line.strip().strip('"').strip()
        if line and not line.startswith(("#", "import", "from")):
            return line if len(line) <= 60 else line[:line.rfind(" ", 0, 58)] + " …"
    return ""


def main(argv):
    if "--help" in argv or "-h" in argv or "--list" in argv:
        print(usage())
        return 0
    only = None
    if "--only" in argv:
        i = argv.index("--only")
        if i + 1 >= len(argv):
            print("run.py: --only needs a part\n\n" + usage(), file=sys.stderr)
            return 2
        only = argv[i + 1]
    chosen = [p for p in parts() if not only or only in p.stem]
    if not chosen:
        print("run.py: no part matches %r\n\n%s" % (only, usage()), file=sys.stderr)
        return 2
    failed = 0
    for path in chosen:
        spec = importlib.util.spec_from_file_location(path.stem, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        try:
            mod.run(emit, argv)
        except Exception:
            failed += 1
            print("BENCH-ERROR %s" % path.stem, file=sys.stderr)
            traceback.print_exc()
        emit("%s_load_avg_1m" % path.stem[len("bench_"):], os.getloadavg()[0], "load")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
