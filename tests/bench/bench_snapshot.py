"""Snapshot figures (issue: SCSI core and snapshot engine): first-write and rewrite ratios at the SCSI
core against a bare three-file-operation loop, backup-LUN read ratios, chunk-size comparison,
initiate latency on 1 GiB and 1 TiB primaries, RAM per exception, physical I/Os per host write."""
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
MICROPYTHON = str(Path(sys.executable).with_name("micropython"))


def run(emit, argv):
    mb = argv[argv.index("--snap-mb") + 1] if "--snap-mb" in argv else "128"
    with tempfile.TemporaryDirectory() as d:
        p = subprocess.run([MICROPYTHON, "-X", "heapsize=96M", str(HERE / "snapbench.py"), d, mb],
                           capture_output=True, text=True, timeout=900)
        for line in p.stdout.splitlines():
            if line.startswith("BENCH "):
                print(line, flush=True)
        if p.returncode:
            raise RuntimeError(p.stdout[-2000:] + p.stderr[-2000:])
