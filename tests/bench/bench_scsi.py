"""SCSI core cost per command (READ/WRITE 10/16 of 64 KiB, TEST UNIT READY) measured inside the
firmware on micropython, with the drive's own cost measured beside it (core overhead = the
difference)."""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
MICROPYTHON = str(Path(sys.executable).with_name("micropython"))


def run(emit, argv):
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, RB_TMP=d, RB_ROOT=str(HERE.parent.parent))
        p = subprocess.run([MICROPYTHON, "-X", "heapsize=32M", str(HERE / "scsibench.py"), d],
                           capture_output=True, text=True, timeout=300, env=env)
        for line in p.stdout.splitlines():
            if line.startswith("BENCH "):
                print(line, flush=True)
        if p.returncode:
            raise RuntimeError(p.stdout[-2000:] + p.stderr[-2000:])
