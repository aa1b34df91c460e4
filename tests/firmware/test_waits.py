# A kept wait (endpoints/ioready.py: an iSCSI connection's socket) stays registered with the
# poller between waits, so a host's every command waits without the heap; what that must never
# cost: a scheduler spinning on a peer that hung up, a closed descriptor left in poll(2), or a
# waiter cancelled for good. Real TCP sockets on the loopback.
import asyncio
import gc
import socket
import struct
from endpoints import ioready
from test_dma import pair

_q = asyncio.core._io_queue
SO_LINGER = 13          # Linux: (onoff, seconds) of 0, 0 makes close() reset the connection


def _pair():
    # (host, board): a connected TCP pair, the board's end non-blocking
    board, host = pair()
    return host, board


def _registered(obj):
    return id(obj) in _q.map


def _done(waits, host, board):
    # the owner's drop() before the close takes the registration off, whatever it was
    waits.drop()
    assert not _registered(board)
    host.close()
    board.close()


def _counted_waits():
    # asyncio's I/O waits, counted: a scheduler spinning on a socket would make thousands;
    # -> (the count, what to put back)
    before = _q.wait_io_event
    calls = [0]

    def wait(dt):
        calls[0] += 1
        before(dt)
    _q.wait_io_event = wait
    return calls, before


async def _reader(waits, board, buf, n, got):
    for _ in range(n):
        waits.readable()
        yield
        got[0] += board.readinto(buf)


def test_a_kept_socket_is_waited_on_again_and_again_without_the_heap():
    host, board = _pair()
    waits = ioready.Waits(board, keep=True)
    buf = bytearray(16)
    one = b"x"
    got = [0]
    n = 500

    async def main():
        t = asyncio.create_task(_reader(waits, board, buf, n, got))
        await asyncio.sleep_ms(1)
        used = gc.mem_alloc()
        for _ in range(n - 1):
            host.send(one)
            while got[0] < 1:
                await asyncio.sleep_ms(0)
            got[0] = 0
            assert _registered(board)      # still registered while nobody waits
        used = gc.mem_alloc() - used
        host.send(one)
        await t
        return used
    gc.collect()
    gc.disable()
    try:
        used = asyncio.run(main())
    finally:
        gc.enable()
    assert used == 0, "%d waits cost the heap %d bytes" % (n - 1, used)
    _done(waits, host, board)


def test_a_peer_reset_nobody_waits_for_takes_the_registration_off_and_the_scheduler_sleeps():
    host, board = _pair()
    waits = ioready.Waits(board, keep=True)
    buf = bytearray(16)
    got = [0]
    calls, put_back = _counted_waits()

    async def main():
        t = asyncio.create_task(_reader(waits, board, buf, 1, got))
        await asyncio.sleep_ms(1)
        host.send(b"x")
        await t
        assert _registered(board)          # kept, with an empty mask
        board.send(b"unread")              # the host closes with this unread: a reset
        host.setsockopt(socket.SOL_SOCKET, SO_LINGER, struct.pack("ii", 1, 0))
        host.close()
        before = calls[0]
        await asyncio.sleep_ms(50)         # nobody waits on the board's socket meanwhile
        polls = calls[0] - before
        assert not _registered(board), "a reset socket nobody waits for stayed registered"
        t = asyncio.create_task(_reader(waits, board, buf, 1, got))
        try:                               # the next wait registers it again, and is told
            await t
        except OSError:
            pass
        return polls
    try:
        polls = asyncio.run(main())
    finally:
        _q.wait_io_event = put_back
    assert polls <= 5, "the scheduler polled %d times in one 50 ms sleep" % polls
    waits.drop()
    assert not _registered(board)
    board.close()


def test_a_cancelled_waiter_leaves_the_socket_kept_for_the_next_one():
    host, board = _pair()
    waits = ioready.Waits(board, keep=True)
    buf = bytearray(16)
    got = [0]

    async def main():
        t = asyncio.create_task(_reader(waits, board, buf, 1, got))
        await asyncio.sleep_ms(1)
        t.cancel()
        try:
            await t
        except asyncio.CancelledError:
            pass
        sm = _q.map.get(id(board))
        assert sm is not None and sm[0] is None and sm[1] is None, sm
        t = asyncio.create_task(_reader(waits, board, buf, 1, got))
        await asyncio.sleep_ms(1)
        host.send(b"y")
        await t
    asyncio.run(main())
    assert got[0] == 1
    _done(waits, host, board)


def test_a_socket_not_kept_is_taken_off_after_each_wait_as_asyncio_does():
    host, board = _pair()
    waits = ioready.Waits(board)
    buf = bytearray(16)
    got = [0]

    async def main():
        t = asyncio.create_task(_reader(waits, board, buf, 1, got))
        await asyncio.sleep_ms(1)
        assert _registered(board)
        host.send(b"z")
        await t
    asyncio.run(main())
    assert got[0] == 1 and not _registered(board)
    host.close()
    board.close()
