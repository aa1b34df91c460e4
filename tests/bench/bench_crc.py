"""CRC32C throughput of the iSCSI digest routine (iscsi_pdu.crc32c) on micropython: 4 MiB in 1 MiB
pieces. A figure only (the tests prove its answers, never its speed); the byte-wise Python loop it
replaced ran at about 1 MiB/s."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MICROPYTHON = str(Path(sys.executable).with_name("micropython"))
CODE = """
import sys, time
sys.path.insert(0, %r)
from endpoints.iscsi import pdu as iscsi_pdu
buf = bytearray(1 << 20)
t0 = time.ticks_us()
for _ in range(4):
    iscsi_pdu.crc32c(buf)
print(4 / (time.ticks_diff(time.ticks_us(), t0) / 1e6))
""" % str(ROOT / "firmware")


def run(emit, argv):
    p = subprocess.run([MICROPYTHON, "-X", "heapsize=8M", "-c", CODE], capture_output=True, text=True,
                       timeout=120)
    if p.returncode:
        raise RuntimeError(p.stdout[-2000:] + p.stderr[-2000:])
    emit("crc32c_throughput", float(p.stdout.split()[-1]), "MiB/s")
