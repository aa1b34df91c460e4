# The long operations' scheduler: slices of every running operation of a manager (lop/manager.py),
# as the firmware's asyncio task (run) or synchronously for tests and benches (finish_all; one
# slice is Manager.step).
import sys
import time
import asyncio


def finish_all(m, limit=1 << 30):
    # run slices until nothing runs (tests, benches); answers the slices taken
    n = 0
    while m.step() and n < limit:
        n += 1
    return n


async def run(m, ticks_us=time.ticks_us, sleep_ms=asyncio.sleep_ms):
    # the background task: a slice, then a pause that leaves (100 - rate)% of the time to the host
    # (measured in microseconds: a slice often takes less than a millisecond, and the pause it
    # owes is carried over until it amounts to a whole millisecond). The clock and the pause are
    # parameters so that a test can drive them.
    owed = 0
    while True:
        if not m.ops:
            owed = 0
            await sleep_ms(20)
            continue
        t0 = ticks_us()
        try:
            m.step()
        except Exception as e:
            sys.print_exception(e, sys.stderr)
        dt = time.ticks_diff(ticks_us(), t0)
        rate = min([op.rate for op in m.ops] or [m.rate])
        if rate < 100:
            owed += dt * (100 - rate) // rate
        await sleep_ms(owed // 1000)
        owed %= 1000
