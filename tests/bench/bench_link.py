"""Round trip of a blocking link call with 4 KiB (controller 0 to 1 and the reply back), between
two firmware processes: the median and 99th percentile of 2000 calls, in microseconds."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from link_pair import run_pair  # noqa: E402


def run(emit, argv):
    zero, _ = run_pair("bench", 2000)
    median, p99 = [int(x) for x in [ln for ln in zero.splitlines() if ln.startswith("RTT_US ")][-1].split()[1:]]
    emit("link_call_4k_rtt_median", median, "us")
    emit("link_call_4k_rtt_p99", p99, "us")
