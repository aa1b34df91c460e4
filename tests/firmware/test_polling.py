# The scheduler polls for a window of POLL_US once an endpoint begins to wait, before it sleeps in
# poll(2), so a host's next command at queue depth 1 is served without waiting for an idle CPU to
# be woken (endpoints/ioready.py "Polling before sleeping"). Each test drives the microsecond clock
# (STEP a reading: it is read only while the window is open) and records what asyncio's I/O queue
# is asked: wait(0) polls, anything else may sleep.
import asyncio
import binascii
import os
import socket
import struct
from endpoints import ioready

STEP = 10
POLLS = ioready.POLL_US // STEP       # polls a window holds at that clock


class Clock:
    def __init__(self):
        self.now = 0
        self.reads = 0

    def __call__(self):
        self.now += STEP
        self.reads += 1
        return self.now


def _recorded(on_wait=None):
    # the I/O queue's wait, recorded (on_wait(calls) before each), with polling in front of it
    q = asyncio.core._io_queue
    real = type(q).wait_io_event
    calls = []

    def wait(dt):
        calls.append(dt)
        if on_wait is not None:
            on_wait(calls)
        real(q, dt)
    q.wait_io_event = wait
    clock = Clock()
    ioready.poll_before_sleep(ioready.POLL_US, clock)
    return calls, clock


def _pair():
    # a host and a board end of a datagram socket pair (an abstract name: no file to leave)
    name = struct.pack("<H", socket.AF_UNIX) + b"\0raidboard-test-polling-" + binascii.hexlify(os.urandom(6))
    board = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    board.bind(name)
    board.setblocking(False)
    host = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    host.connect(name)
    return host, board


async def _endpoint(board, seen, calls):
    waits = ioready.Waits(board)
    waits.readable()          # an endpoint waits for the host: a window opens when nothing is ready
    yield
    seen.append(list(calls))


def _run(board, calls, sleeps=(), alone=False):
    # the endpoint waiting, beside a task that sleeps `sleeps` (ms) one after the other; `alone`:
    # the endpoint is the only task (asyncio then sleeps with no timeout)
    seen = []

    async def timers():
        asyncio.create_task(_endpoint(board, seen, calls))
        for ms in sleeps:
            await asyncio.sleep_ms(ms)
    asyncio.run(_endpoint(board, seen, calls) if alone else timers())
    return seen


def _polls_then(calls):
    # how many polls came before the first wait that may sleep, and that wait's timeout
    first = next(i for i, dt in enumerate(calls) if dt)
    assert not any(calls[:first]), calls
    return first, calls[first]


def test_a_command_arriving_while_the_scheduler_polls_is_served_without_a_sleep():
    host, board = _pair()

    def command_arrives(calls):
        if len(calls) == 5 and not any(calls):
            host.send(b"\x01")         # the host's next command, a few polls into the window
    calls, _ = _recorded(command_arrives)
    seen = _run(board, calls, (200,))
    assert seen, "the endpoint was never woken"
    assert len(seen[0]) >= 6 and not any(seen[0]), seen[0]   # polls only: it never slept
    host.close()
    board.close()


def test_with_nothing_arriving_the_window_ends_in_one_sleep():
    # three timers come due while the endpoint still waits: one window, then sleeps only
    host, board = _pair()
    calls, clock = _recorded()
    _run(board, calls, (10, 10, 10))
    polls, dt = _polls_then(calls)
    assert POLLS - 1 <= polls <= POLLS + 1 and dt > 0, calls
    assert clock.reads <= POLLS + 1, clock.reads
    host.close()
    board.close()


def test_with_no_timer_at_all_the_window_ends_in_a_sleep_without_timeout():
    host, board = _pair()

    def command_after_the_window(calls):
        if calls[-1] == -1:
            host.send(b"\x01")        # (so that the sleep, once begun, ends)
    calls, _ = _recorded(command_after_the_window)
    seen = _run(board, calls, alone=True)
    polls, dt = _polls_then(calls)
    assert POLLS - 1 <= polls <= POLLS + 1 and dt == -1, calls
    assert seen
    host.close()
    board.close()


def test_a_board_with_only_timers_never_polls():
    calls, clock = _recorded()

    async def idle():
        for _ in range(3):
            await asyncio.sleep_ms(5)
    asyncio.run(idle())
    assert any(calls), calls          # it slept for its timers ...
    assert clock.reads == 0, calls    # ... and never opened a window
