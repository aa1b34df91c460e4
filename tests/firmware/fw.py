# Helpers for firmware tests: a small board (16 MiB disks) booted into a fresh state directory.
import os
import time
from hw import board
from hw import nvram
import factory
from control import controller

_n = [0]


def tmpdir(name="t"):
    _n[0] += 1
    d = "%s/%s%d" % (os.getenv("RB_TMP") or "/tmp", name, _n[0])
    try:
        os.mkdir(d)
    except OSError:
        pass
    return d


def small_board(disk_mb=16, buffer_kb=2048, slots=6):
    b = board.load(os.getenv("RB_ROOT", "../..") + "/boards/dac960sx.json")
    b["disk_mb"] = disk_mb
    b["buffer_kb"] = buffer_kb
    b["populated_slots"] = slots
    return b


def boot(state=None, b=None, factory_cfg=True):
    # a controller over `state` (new dir if None); the first boot writes the factory layout
    if b is None:
        b = small_board()
    if state is None:
        state = tmpdir("board")
    img = state + "/factory.bin"
    try:
        os.stat(img)
    except OSError:
        with open(img, "wb") as f:
            f.write(nvram.encode(factory.default_config(b) if factory_cfg else nvram.Config(), 1))
    b["factory_nvram"] = img
    return controller.Controller(b, state, os.getenv("RB_ROOT", "../.."))


def reboot(ctl):
    # drop the controller as a killed process would (nothing flushed) and boot again
    state, b = ctl.state_dir, ctl.board
    ctl.iop.close()
    return controller.Controller(b, state, os.getenv("RB_ROOT", "../.."))


def cdb(*b):
    return bytes(b)


def run(ctl, lun, c, data=None, port=0, ini="iqn.test:i"):
    st, sn, d = ctl.execute((ini, port, lun), c, data)
    return st, (bytes(sn) if sn else None), bytes(d)


def sense3(sn):
    return (sn[2] & 0x0F, sn[12], sn[13])


def read10(lba, n):
    return bytes([0x28, 0]) + lba.to_bytes(4, "big") + bytes([0]) + n.to_bytes(2, "big") + bytes([0])


def write10(lba, n):
    return bytes([0x2A, 0]) + lba.to_bytes(4, "big") + bytes([0]) + n.to_bytes(2, "big") + bytes([0])


def pattern(seed, n):
    # n bytes of a cheap repeatable pattern
    out = bytearray(n)
    x = (seed * 2654435761 + 1) & 0xFFFFFFFF
    for i in range(0, n, 4):
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF
        out[i:i + 4] = x.to_bytes(4, "little")
    return out


def best_of(fn, n, rounds=5):
    # microseconds per iteration of fn's n: the best of a few rounds (the machine is shared, the
    # minimum is the cost)
    best = None
    for _ in range(rounds):
        t0 = time.ticks_us()
        fn()
        dt = time.ticks_diff(time.ticks_us(), t0) / n
        best = dt if best is None else min(best, dt)
    return best


def copy_file(src, dst, mv, mode="wb"):
    # the ceiling the copy benchmarks compare with: the same bytes file to file through mv, by the
    # same interpreter
    fi = open(src, "rb")
    fo = open(dst, mode)
    while True:
        n = fi.readinto(mv)
        if not n:
            break
        fo.write(mv[:n])
    fi.close()
    fo.close()


class UartEnd:
    # the far end of the console's UART in tests: keeps what the console sent (the last 64 KB)
    def __init__(self):
        self.data = bytearray()
        self.writes = 0
        self.total = 0

    def gone(self):
        return False

    def probe(self, b):
        pass

    async def write(self, b):
        self.writes += 1
        self.total += len(b)
        self.data += bytes(b)
        if len(self.data) > 65536:
            self.data = self.data[-32768:]

    def lines(self):
        return bytes(self.data).decode().split("\n")

    def answers(self):
        # the line protocol's answers among them
        return [l for l in self.lines() if " OK " in l or " ERR " in l]
