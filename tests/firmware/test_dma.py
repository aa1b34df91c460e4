# The host ports' DMA engine (hw/dma.py), on micropython, against real TCP sockets on loopback: a
# send goes out whole and in order; a peer that is behind keeps only its own channel waiting, and
# the end of its send is told; a channel given back while its send waits leaves the socket free to
# close; a peer that is gone fails its send, and that is told too. The thread allocates nothing
# (it runs with the heap locked, so an allocation would fail the send).
import socket
import time
from hw.dma import DMA, IDLE, BUSY, FAILED
from endpoints import listen


SO_RCVBUF = 8     # (Linux; this port's socket module does not name it)


def pair(rcvbuf=0):
    # a connected loopback pair: (the board's side, non-blocking; the host's side)
    ls, port = listen.bind("127.0.0.1", 0, 1)
    host = socket.socket()
    if rcvbuf:   # (before connecting: the TCP window stays small)
        host.setsockopt(socket.SOL_SOCKET, SO_RCVBUF, rcvbuf)
    host.connect(socket.getaddrinfo("127.0.0.1", port)[0][-1])
    while True:
        try:
            board, _ = ls.accept()
            break
        except OSError:
            time.sleep_ms(1)              # (the listener is non-blocking)
    ls.close()
    board.setblocking(False)
    return board, host


def until(cond, what, ms=5000):
    t0 = time.ticks_ms()
    while not cond():
        assert time.ticks_diff(time.ticks_ms(), t0) < ms, what
        time.sleep_ms(1)


def read_n(s, n):
    out = bytearray()
    while len(out) < n:
        b = s.read(min(65536, n - len(out)))
        assert b, "the board's side closed"
        out += b
    return bytes(out)


def told(dma):
    try:
        return dma.rx.read(64) is not None
    except OSError:
        return False


def held_send(dma):
    # a send of 4 MiB on a new channel to a host with a 4 KiB receive buffer that reads nothing:
    # (the board's side, the host's side, the channel) once the send waits for its peer
    board, host = pair(rcvbuf=4096)
    j = dma.open()
    dma.send(j, board, bytearray(4 << 20), 0, 4 << 20)
    until(lambda: dma.tell[j] == 1, "the send is waiting for its peer")
    return board, host, j


def pattern(n, k):
    return bytes((i * k + 3) & 0xFF for i in range(n))


def test_sends_go_out_whole_and_in_order_and_are_counted():
    dma = DMA()
    board, host = pair()
    j = dma.open()
    buf = bytearray(b"xx" + pattern(65536, 7) + b"yy")
    for k in range(3):
        dma.send(j, board, buf, 2, 65536)
        assert dma.wait(j, 2000000) and dma.st[j] == IDLE
        assert read_n(host, 65536) == pattern(65536, 7)
    assert dma.sends == 3 and dma.bytes == 3 * 65536
    assert not told(dma)           # (whole at once: nothing to tell)
    dma.close(j)
    dma.stop()
    board.close()
    host.close()


def test_a_peer_that_is_behind_holds_only_its_own_channel_and_its_end_is_told():
    dma = DMA()
    slow, slow_host = pair(rcvbuf=4096)
    fast, fast_host = pair()
    a = dma.open()
    b = dma.open()
    big = pattern(4 << 20, 5)          # far more than the sockets between hold
    dma.send(a, slow, big, 0, len(big))
    until(lambda: dma.tell[a] == 1, "the thread found the slow peer behind")
    assert dma.st[a] == BUSY
    small = pattern(4096, 9)
    for _ in range(20):                # the other channel is served meanwhile
        dma.send(b, fast, small, 0, 4096)
        assert dma.wait(b, 2000000)
        assert read_n(fast_host, 4096) == small
    assert dma.st[a] == BUSY
    assert read_n(slow_host, len(big)) == big
    until(lambda: dma.st[a] == IDLE, "the slow send ended")
    until(lambda: told(dma), "its end was told")
    for j in (a, b):
        dma.close(j)
    dma.stop()
    for s in (slow, slow_host, fast, fast_host):
        s.close()


def test_a_channel_given_back_mid_send_lets_go_of_its_socket_and_the_channel_is_reused():
    dma = DMA()
    board, host, j = held_send(dma)
    dma.close(j)                       # returns once the thread has let go of the socket
    assert dma.ended == dma.given      # (only the thread counts a send ended)
    assert dma.st[j] == IDLE and dma.socks[j] is None and dma.bufs[j] is None
    board.close()
    host.close()
    assert dma.open() == j             # (the channel is free again)
    b2, h2 = pair()
    dma.send(j, b2, b"hello", 0, 5)
    assert dma.wait(j, 2000000) and read_n(h2, 5) == b"hello"
    dma.close(j)
    dma.stop()
    b2.close()
    h2.close()


def test_a_peer_that_is_gone_fails_its_send_and_that_is_told():
    dma = DMA()
    board, host, j = held_send(dma)
    host.close()                       # unread data: the host's side resets the connection
    until(lambda: dma.st[j] == FAILED, "the send failed")
    until(lambda: told(dma), "the failure was told")
    assert dma.wait(j, 0)              # (ended: the connection learns it failed from st)
    dma.close(j)
    assert dma.st[j] == IDLE
    dma.stop()
    board.close()


def test_a_busy_channel_takes_no_other_send_and_an_end_nobody_waited_for_is_not_told():
    dma = DMA()
    board, host, j = held_send(dma)
    try:
        dma.send(j, board, b"cut in", 0, 6)
        assert False, "a second send was taken on a busy channel"
    except RuntimeError:
        pass
    dma.close(j)
    b2, h2 = pair()
    j = dma.open()
    small = pattern(4096, 1)           # taken whole at once: nobody waits for its end
    dma.send(j, b2, small, 0, 4096)
    assert read_n(h2, 4096) == small
    until(lambda: dma.st[j] == IDLE, "the send ended")
    assert not told(dma)
    dma.close(j)
    dma.stop()
    for s in (board, host, b2, h2):
        s.close()


def test_every_channel_can_be_held_and_past_them_none_is_given():
    dma = DMA()
    got = [dma.open() for _ in range(64)]
    assert sorted(got) == list(range(64)) and dma.open() == -1
    dma.close(got[5])
    assert dma.open() == got[5]
    dma.stop()
