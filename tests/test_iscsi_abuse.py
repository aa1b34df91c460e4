"""Issue 9: no iSCSI client can starve the others, and CHAP cannot be guessed at line rate.

Boards here abort tasks that make no progress for 2 s (`iscsi_task_timeout_s`), so the tests wait a
few seconds at most, by bounded polling; they assert on answers and events, never on durations."""
import fcntl
import socket
import struct
import termios
import time

import pytest

import test_iscsi_initiator as I

TIMEOUT_S = 2
HOLDERS = 8                  # as many as the board-wide pool of transfer buffers
HALF = HOLDERS // 2          # what one source address may hold of it
BIG_READ = 256               # blocks: 128 KiB, above the 64 KiB that reads without a pool buffer
BUSY = 0x08
GOOD = 0x00


@pytest.fixture
def iboard(make_board):
    return I.BootedBoard(make_board(iscsi_task_timeout_s=TIMEOUT_S))


def session(board, port, name, **kw):
    c = I.Initiator(*board.portals[port], name=name, **kw)
    c.login()
    return c


def hold_write(c, lba=0, blocks=1):
    """A WRITE(10) whose data is never sent: returns (ITT, TTT) of the target's R2T."""
    itt = c.next_itt()
    b = I.bhs(0x01, 0x80 | 0x20 | 1, 0, itt, [(20, blocks * 512), (24, c.cmdsn), (28, c.expstatsn)])
    b[32:42] = struct.pack(">BBIBHB", 0x2A, 0, lba, 0, blocks, 0)
    c.send(b)
    c.cmdsn += 1
    r = c.recv()
    assert r.op == 0x31 and r.u32(16) == itt, r   # R2T: the target waits for the data
    return itt, r.u32(20)


def stall_read(board, name, source, reads=8):
    """A session from `source` that asks for `reads` MiB (more than the socket buffers between it
    and the board hold) and never reads its Data-In; returns once its receive buffer is full."""
    c = session(board, 0, name, rcvbuf=4096, source=source)
    for _ in range(reads):
        itt = c.next_itt()
        b = I.bhs(0x01, 0x80 | 0x40 | 1, 0, itt, [(20, 1 << 20), (24, c.cmdsn), (28, c.expstatsn)])
        b[32:42] = struct.pack(">BBIBHB", 0x28, 0, 0, 0, 2048, 0)
        c.send(b)
        c.cmdsn += 1
    for _ in range(100):   # bounded: the board fills it at once
        if struct.unpack("i", fcntl.ioctl(c.sock, termios.FIONREAD, b"\0" * 4))[0] >= 2048:
            break
        time.sleep(0.05)
    return c


def witness_statuses(board):
    """What a well-behaved initiator (another host, the other host port) gets for writes and
    128 KiB reads."""
    w = session(board, 1, "iqn.2026-01.test:witness", source="127.0.0.2")
    out = []
    for i in range(4):
        out.append(w.write(0, 100 + i, bytes([i + 1]) * 512)["status"])
        out.append(w.read(0, 0, BIG_READ)["status"])
    w.logout()
    return out


def events_matching(board, text, want, polls=40):
    """The events containing `text`, polled (0.25 s apart, bounded) until there are `want`."""
    for _ in range(polls):
        found = [e["text"] for e in board.command("events", {"n": 64})["events"] if text in e["text"]]
        if len(found) >= want:
            return found
        time.sleep(0.25)
    return found


def test_writes_that_never_send_data_do_not_starve_other_initiators(iboard):
    holders = [session(iboard, 0, "iqn.2026-01.test:holder%d" % i) for i in range(HOLDERS)]
    held = [hold_write(c, lba=i) for i, c in enumerate(holders)]
    statuses = witness_statuses(iboard)
    assert statuses.count(BUSY) == 0 and set(statuses) == {GOOD}, statuses
    # every held write was aborted and its buffer freed; data sent now is refused unexecuted
    assert len(events_matching(iboard, "task aborted", HOLDERS)) == HOLDERS
    c = holders[0]
    itt, ttt = held[0]
    c._data_out(0, itt, ttt, 0, 512, b"\xee" * 512)
    r = c.recv()
    assert r.op == 0x21 and r.bhs[3] == 0x02, r
    assert I.sense_key(r.data[2:]) == (0x0B, 0x4B, 0x06)   # ABORTED COMMAND, INITIATOR RESPONSE TIMEOUT
    assert c.read(0, 0, 1)["data"] != b"\xee" * 512        # the session carries on; nothing written
    for c in holders:
        c.close()


def test_readers_that_never_read_do_not_starve_other_initiators(iboard):
    # two hosts, each with the half of the pool one address may hold
    readers = [stall_read(iboard, "iqn.2026-01.test:reader%d" % i, "127.0.0.%d" % (3 + i // HALF))
               for i in range(HOLDERS)]
    statuses = witness_statuses(iboard)
    assert statuses.count(BUSY) == 0 and set(statuses) == {GOOD}, statuses
    # the stalled readers' connections were closed and their buffers freed
    assert len(events_matching(iboard, "did not take what was sent", HOLDERS)) == HOLDERS
    for c in readers:
        c.sock.settimeout(5)
        with pytest.raises(ConnectionError):
            while True:
                c.recv_exact(65536)   # what was queued, then the end (not a time-out)
        c.close()


def test_one_session_holds_at_most_its_share_of_the_pool_and_its_next_write_waits_its_turn(iboard):
    c = session(iboard, 0, "iqn.2026-01.test:greedy")
    held = [hold_write(c, 0, BIG_READ), hold_write(c, 256, BIG_READ)]
    # past its share of 2 transfer buffers this write is queued: none of its data is asked for
    # (no R2T), nor is it answered BUSY
    itt = c.next_itt()
    b = I.bhs(0x01, 0x80 | 0x20 | 1, 0, itt, [(20, BIG_READ * 512), (24, c.cmdsn), (28, c.expstatsn)])
    b[32:42] = struct.pack(">BBIBHB", 0x2A, 0, 512, 0, BIG_READ, 0)
    c.send(b)
    c.cmdsn += 1
    statuses = witness_statuses(iboard)   # the rest of the pool is there for others, at once
    assert set(statuses) == {GOOD}, statuses
    # the held writes' data never comes: at the task timeout they are aborted, and a buffer goes
    # to the queued write, whose data is asked for then
    r = c.recv()
    assert r.op == 0x31 and r.u32(16) == itt and r.u32(40) == 0 and r.u32(44) == BIG_READ * 512, r
    c._data_out(0, itt, r.u32(20), 0, BIG_READ * 512, b"\x5a" * (BIG_READ * 512))
    r = c.recv()
    assert r.op == 0x21 and r.u32(16) == itt and r.bhs[3] == GOOD, r
    assert c.read(0, 512, 1)["data"] == b"\x5a" * 512
    assert len(events_matching(iboard, "task aborted", 2)) == 2
    c.close()


SECRET = "s3cret-s3cret"


def chap_login(board, source, secret):
    """Login status of one CHAP attempt from `source` (0: logged in)."""
    c = I.Initiator(*board.portals[0], name="iqn.2026-01.test:chap", source=source)
    try:
        c.login(chap=("backup", secret))
        c.logout()
        return 0
    except I.ISCSIError:
        return c.status
    finally:
        c.close()


def test_chap_retries_after_a_failure_are_refused_unchecked_until_the_delay_has_passed(iboard):
    iboard.command("chap_set", {"user": "backup", "secret": SECRET})
    guesser = "127.0.0.3"
    assert chap_login(iboard, guesser, "wrong-guess-0") == 0x0201     # checked: authentication failure
    # quick retries from that address are not even checked, the right secret no more than guesses
    quick = [chap_login(iboard, guesser, s) for s in (SECRET, "wrong-guess-1", "wrong-guess-2", SECRET)]
    assert quick == [0x0301] * 4, quick                                # service unavailable: retry later
    assert chap_login(iboard, "127.0.0.2", SECRET) == 0                # other addresses are not slowed
    # not locked out: once the delay (1 s after one failure) has passed, the right secret works
    answers = []
    for _ in range(60):
        answers.append(chap_login(iboard, guesser, SECRET))
        if answers[-1] == 0:
            break
        time.sleep(0.1)
    assert answers[-1] == 0 and set(answers[:-1]) <= {0x0301}, answers
    assert chap_login(iboard, guesser, "wrong-guess-3") == 0x0201      # and a success starts afresh


def test_a_data_out_pdu_cut_short_ends_its_connection_after_the_timeout(iboard):
    c = session(iboard, 0, "iqn.2026-01.test:trickle")
    itt, ttt = hold_write(c)
    b = I.bhs(0x05, 0x80, 0, itt, [(20, ttt), (28, c.expstatsn), (36, 0), (40, 0)])
    b[5:8] = (512).to_bytes(3, "big")
    c.send_raw(bytes(b) + b"\x01" * 100)   # 100 of the 512 bytes it announces, then nothing
    assert len(events_matching(iboard, "data-out PDU from iqn.2026-01.test:trickle stalled", 1)) == 1
    c.sock.settimeout(5)
    with pytest.raises(ConnectionError):
        c.recv()
    assert session(iboard, 1, "iqn.2026-01.test:after").read(0, 0, 1)["status"] == GOOD


def test_a_write_whose_immediate_data_stops_ends_its_connection_after_the_timeout(iboard):
    # data sent with its command (immediate, F bit: read into a buffer as it comes) and cut short:
    # the board serves others meanwhile, waits for the rest no longer than the task timeout, then
    # closes the connection, which gives the buffer back
    c = session(iboard, 0, "iqn.2026-01.test:cutshort")
    b = I.bhs(0x01, 0x80 | 0x20 | 1, 0, c.next_itt(), [(20, 4096), (24, c.cmdsn), (28, c.expstatsn)])
    b[5:8] = (4096).to_bytes(3, "big")
    b[32:42] = struct.pack(">BBIBHB", 0x2A, 0, 0, 0, 8, 0)
    c.send_raw(bytes(b) + b"\x02" * 100)   # 100 of its 4096 bytes, then nothing
    assert session(iboard, 1, "iqn.2026-01.test:meanwhile").read(0, 0, 1)["status"] == GOOD
    assert len(events_matching(iboard, "write data from iqn.2026-01.test:cutshort stalled", 1)) == 1
    c.sock.settimeout(5)
    with pytest.raises(ConnectionError):
        c.recv()
    assert session(iboard, 1, "iqn.2026-01.test:after").read(0, 0, 1)["status"] == GOOD


def test_a_write_whose_data_trickles_in_is_aborted_like_one_without_data(iboard):
    c = session(iboard, 0, "iqn.2026-01.test:trickler")
    itt, ttt = hold_write(c, blocks=BIG_READ)
    sent = sn = 0
    while sn < 40:   # a 512-byte Data-Out PDU every 0.25 s: progress, but far too slow
        c.send(I.bhs(0x05, 0, 0, itt, [(20, ttt), (28, c.expstatsn), (36, sn), (40, sent)]),
               b"\x04" * 512)
        sent += 512
        sn += 1
        if events_matching(iboard, "not in within %d s" % TIMEOUT_S, 1, polls=1):
            break
    c.send(I.bhs(0x05, 0x80, 0, itt, [(20, ttt), (28, c.expstatsn), (36, sn), (40, sent)]),
           b"\x04" * (BIG_READ * 512 - sent))   # the rest, in order
    r = c.recv()
    assert r.op == 0x21 and I.sense_key(r.data[2:]) == (0x0B, 0x4B, 0x06), r


def connect(board, source):
    s = socket.socket()
    s.bind((source, 0))
    s.settimeout(10)
    s.connect(board.portals[0])
    return s


def closed_at_once(s):
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True


def test_one_host_cannot_take_every_connection(iboard):
    flood = [connect(iboard, "127.0.0.3") for _ in range(16)]   # idle, never log in
    assert closed_at_once(connect(iboard, "127.0.0.3"))          # its 17th
    w = session(iboard, 1, "iqn.2026-01.test:witness", source="127.0.0.2")
    assert w.read(0, 0, BIG_READ)["status"] == GOOD              # others are served meanwhile
    # 64 connections in all: 16 + the witness + 47 from three more hosts; the 65th evicts the
    # idle connection opened first, and logs in
    flood += [connect(iboard, "127.0.0.%d" % (4 + i // 16)) for i in range(47)]
    late = session(iboard, 0, "iqn.2026-01.test:late", source="127.0.0.7")
    assert closed_at_once(flood[0])
    assert late.read(0, 0, 1)["status"] == GOOD
    assert w.write(0, 7, b"\x07" * 512)["status"] == GOOD        # the witness carries on
    assert len(events_matching(iboard, "closed at once", 1)) == 1
    late.logout()
    w.logout()
    for s in flood:
        s.close()
