# The scheduler polls for POLL_US after an endpoint begins to wait, before it sleeps in poll(2), so
# a host's next command at queue depth 1 is served without waiting for an idle CPU to be woken
# (endpoints/ioready.py "Polling before sleeping"). Each test drives the microsecond clock (STEP a
# reading) and records what asyncio's I/O queue is asked: wait(0) polls, anything else may sleep.
import asyncio
import binascii
import os
import socket
import struct
from endpoints import ioready

STEP = 10
POLLS = ioready.POLL_US // STEP       # polls the window holds at that clock


def _recorded(on_poll=None):
    # the I/O queue's wait, recorded, with polling installed in front of it
    q = asyncio.core._io_queue
    real = type(q).wait_io_event
    calls = []

    def wait(dt):
        calls.append(dt)
        if on_poll is not None:
            on_poll(calls)
        real(q, dt)
    q.wait_io_event = wait
    now = [0]

    def clock():
        now[0] += STEP
        return now[0]
    ioready.poll_before_sleep(ioready.POLL_US, clock)
    return calls


def _pair():
    # a host and a board end of a datagram socket pair (an abstract name: no file to leave)
    name = struct.pack("<H", socket.AF_UNIX) + b"\0raidboard-test-polling-" + binascii.hexlify(os.urandom(6))
    board = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    board.bind(name)
    board.setblocking(False)
    host = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    host.connect(name)
    return host, board


def _served(board, seen, calls):
    async def serve():
        waits = ioready.Waits(board)
        waits.readable()      # an endpoint waits for the host: the scheduler polls from here on
        yield
        seen.append(list(calls))
    return serve()


def _run(board, calls, ms):
    seen = []

    async def main():
        asyncio.create_task(_served(board, seen, calls))
        await asyncio.sleep_ms(ms)     # the only timer: without polling the scheduler sleeps for it
    asyncio.run(main())
    return seen


def test_a_command_arriving_while_the_scheduler_polls_is_served_without_a_sleep():
    host, board = _pair()

    def command_arrives(calls):
        if len(calls) == 5 and not any(calls):
            host.send(b"\x01")         # the host's next command, a few polls into the window
    calls = _recorded(command_arrives)
    seen = _run(board, calls, 200)
    assert seen, "the endpoint was never woken"
    before = seen[0]
    assert len(before) >= 6 and not any(before), before    # polls only: the board never slept
    host.close()
    board.close()


def test_with_nothing_arriving_the_scheduler_polls_for_the_window_then_sleeps():
    host, board = _pair()
    calls = _recorded()
    _run(board, calls, 30)
    first = next(i for i, dt in enumerate(calls) if dt)    # the first wait that may sleep
    assert POLLS - 1 <= first <= POLLS + 1, calls[:first + 1]
    assert not any(calls[:first])
    host.close()
    board.close()


def test_an_idle_board_sleeps_at_once():
    # only timers, no endpoint waiting: the I/O queue is asked exactly what it is without polling
    async def idle():
        for _ in range(3):
            await asyncio.sleep_ms(5)
    q = asyncio.core._io_queue
    real = type(q).wait_io_event
    plain = []

    def wait(dt):
        plain.append(dt)
        real(q, dt)
    q.wait_io_event = wait
    asyncio.run(idle())
    del plain[:]                 # (the process's first run starts its loop once more)
    asyncio.run(idle())
    calls = _recorded()
    asyncio.run(idle())
    assert any(calls) and calls == plain, (calls, plain)
