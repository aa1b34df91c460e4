"""Boot time to ready: from starting the firmware process to its READY line (console and both
portals listening), for a new board (factory NV memory, disks created) and a second boot of the
same state directory."""
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import Board, default_memory, write_board  # noqa: E402


def run(emit, argv):
    with tempfile.TemporaryDirectory() as d:
        path, b = write_board(d, disk_mb=1024, **default_memory())
        state = Path(d) / "state"
        state.mkdir()
        t = time.perf_counter()
        board = Board(path, state, b["heap_kb"])
        first = time.perf_counter() - t
        board.stop()
        times = []
        for _ in range(5):
            t = time.perf_counter()
            board.boot()
            times.append(time.perf_counter() - t)
            board.stop()
        emit("boot_first_ms", first * 1000, "ms")
        emit("boot_ready_ms", sorted(times)[len(times) // 2] * 1000, "ms")
