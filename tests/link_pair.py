"""Two firmware processes joined by the back-end link (tests/firmware/linkpair.py, MicroPython):
controller 1 listens on a port of its choosing, controller 0 dials it. Used by the two-process
link test and the link benchmark."""
import subprocess

from harness import MICROPYTHON, ROOT

PEER = str(ROOT / "tests" / "firmware" / "linkpair.py")


def run_pair(mode, n, timeout=120):
    """Runs both ends in `mode` for n calls; returns their outputs (controller 0's, controller 1's)."""
    one = subprocess.Popen([MICROPYTHON, "-X", "heapsize=24M", PEER, "1", "0", mode, str(n)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = one.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError("controller 1 did not listen: " + line + one.stdout.read())
        zero = subprocess.run([MICROPYTHON, "-X", "heapsize=24M", PEER, "0", line.split()[1], mode, str(n)],
                              capture_output=True, text=True, timeout=timeout)
        rest, _ = one.communicate(timeout=timeout)
    finally:
        if one.poll() is None:
            one.kill()
            one.wait()
    if zero.returncode or one.returncode:
        raise RuntimeError("link pair failed:\n" + zero.stdout + zero.stderr + "\n---\n" + line + rest)
    return zero.stdout, line + rest


def done(out):
    """The counts of an end's DONE line: {"calls": …, "served": …, "nested": …, "parsers": …}."""
    line = [x for x in out.splitlines() if x.startswith("DONE ")][-1]
    return {k: int(v) for k, v in (w.split("=") for w in line.split()[1:])}
