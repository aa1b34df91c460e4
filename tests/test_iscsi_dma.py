"""Answers sent beside the main loop (hw/dma.py, endpoints/iscsi/README.md "Sends beside the main
loop"), seen by an initiator on the wire: a read's Data-In goes to the host ports' DMA engine while
the board runs the next commands, so these prove that nothing cuts into it. Commands of every kind
sent back to back on one connection are answered whole, StatSN by StatSN, each with its own data —
with and without digests, and when the host reads so slowly that every send waits for it; a host
that stops reading is closed at the task timeout while another host is served all along."""
import struct
import threading
import time

import pytest

import test_iscsi_initiator as I

K64 = 65536


def command10(c, opcode, flags, lba, n, data=b""):
    # a READ(10) or WRITE(10) of n bytes sent without waiting for its answer: its ITT
    itt = c.next_itt()
    b = I.bhs(0x01, flags, 0, itt, [(20, n), (24, c.cmdsn), (28, c.expstatsn)])
    b[32:42] = struct.pack(">BBIBHB", opcode, 0, lba, 0, n // 512, 0)
    c.send(b, data)
    c.cmdsn += 1
    return itt


def read10(c, lba, n):
    return command10(c, 0x28, 0x80 | 0x40 | 1, lba, n)


def write10(c, lba, data):
    # all its data in the command PDU (immediate data, F bit)
    return command10(c, 0x2A, 0x80 | 0x20 | 1, lba, len(data), data)


def write_no_data(c, lba, n):
    # a write whose data is all to be asked for (F bit, no immediate data): it takes a transfer
    # buffer, and its R2T comes
    return command10(c, 0x2A, 0x80 | 0x20 | 1, lba, n)


def tur(c):
    itt = c.next_itt()
    c.send(I.bhs(0x01, 0x80 | 1, 0, itt, [(20, 0), (24, c.cmdsn), (28, c.expstatsn)]))
    c.cmdsn += 1
    return itt


def nop(c, payload):
    itt = c.next_itt()
    c.send(I.bhs(0x40, 0x80, 0, itt, [(20, 0xFFFFFFFF), (24, c.cmdsn), (28, c.expstatsn)]), payload)
    return itt


def abort_task(c, rtt):
    itt = c.next_itt()
    c.send(I.bhs(0x42, 0x80 | 1, 0, itt, [(20, rtt), (24, c.cmdsn), (28, c.expstatsn)]))
    return itt


def answers(c, n, pause=0.0):
    """The next n answers in the order they come: (ITT, status, data), each status-bearing PDU's
    StatSN one past the one before."""
    out = []
    data = {}
    sn = None
    while len(out) < n:
        r = c.recv()
        itt = r.u32(16)
        if r.op in (0x21, 0x20, 0x22) or (r.op == 0x25 and r.bhs[1] & 1):
            if sn is not None:
                assert r.u32(24) == (sn + 1) & 0xFFFFFFFF, "StatSN out of order"
            sn = r.u32(24)
        if r.op == 0x25:
            d = data.setdefault(itt, bytearray())
            assert r.u32(40) == len(d), "Data-In offset out of order"
            d += r.data
            if r.bhs[1] & 1:
                out.append((itt, r.bhs[3], bytes(data.pop(itt))))
        elif r.op == 0x21:
            out.append((itt, r.bhs[3], b""))
        elif r.op == 0x20:
            out.append((itt, None, r.data))
        elif r.op == 0x22:
            out.append((itt, "task management %d" % r.bhs[2], b""))
        else:
            raise AssertionError("unexpected %r" % r)
        if pause:
            time.sleep(pause)
    return out


def chunk(i):
    return bytes((i * 37 + k * 11) & 0xFF for k in range(256)) * (K64 // 256)


@pytest.mark.parametrize("digests", [False, True])
def test_commands_back_to_back_are_answered_whole_in_turn_each_with_its_own_data(make_board, digests):
    b = I.BootedBoard(make_board(disk_mb=32))
    c = I.Initiator(*b.portals[0])
    c.login(digests=digests)
    for i in range(8):
        assert c.write(0, i * 128, chunk(i))["status"] == 0
    want = []
    for rnd in range(3):
        for i in range(8):
            want.append((read10(c, i * 128, K64), 0, chunk(i)))
            if i == 3:     # a write, a status alone, a ping and a larger read between the reads
                want.append((write10(c, 4096 + rnd * 64, chunk(rnd)[:8192]), 0, b""))
                want.append((tur(c), 0, b""))
                want.append((nop(c, b"ping%d" % rnd), None, b"ping%d" % rnd))
                want.append((read10(c, 0, 2 * K64), 0, chunk(0) + chunk(1)))
    assert answers(c, len(want)) == want
    assert c.read(0, 4096, 16)["data"] == chunk(0)[:8192]
    c.logout()


def test_a_host_reading_slowly_gets_every_answer_whole_and_right(make_board):
    # 6 MiB of answers asked for at once by a host with a 4 KiB receive buffer: more than the
    # sockets between hold, so the DMA engine's sends wait for it in the middle. Every other PDU
    # the board answers meanwhile waits its turn behind them: writes (run by the I/O processor's
    # thread, answered as they end), a status alone, pings, task management, and a larger read
    # answered BUSY (its connection holds two transfer buffers, for writes whose data it withholds;
    # the task timeout is longer than the test, so they hold them throughout)
    b = I.BootedBoard(make_board(disk_mb=32, iscsi_task_timeout_s=3600))
    c = I.Initiator(*b.portals[0], rcvbuf=4096)
    c.login()
    for i in range(4):
        assert c.write(0, i * 128, chunk(i))["status"] == 0
    write_no_data(c, 1000, 262144)
    write_no_data(c, 2000, 262144)
    assert [c.recv().op, c.recv().op] == [0x31, 0x31]
    want = []
    for rnd in range(24):
        for i in range(4):
            want.append((read10(c, i * 128, K64), 0, chunk(i)))
        kind = rnd % 4
        if kind == 0:
            want.append((write10(c, 8192 + rnd * 64, chunk(rnd % 4)[:32768]), 0, b""))
        elif kind == 1:
            want.append((tur(c), 0, b""))
        elif kind == 2:
            want.append((nop(c, b"ping%d" % rnd), None, b"ping%d" % rnd))
        else:
            want.append((read10(c, 0, 2 * K64), 8, b""))
        if rnd == 12:
            want.append((abort_task(c, 0x7FFF0000), "task management 1", b""))
    # (a write the I/O processor's thread runs is answered when it ends: after later reads, maybe)
    assert sorted(answers(c, len(want), pause=0.001), key=str) == sorted(want, key=str)
    for rnd in range(0, 24, 4):
        assert c.read(0, 8192 + rnd * 64, 64)["data"] == chunk(rnd % 4)[:32768]
    texts = [e["text"] for e in b.command("events", {"n": 64})["events"]]
    assert not [t for t in texts if "while a send was in flight" in t]
    c.close()


def test_a_host_that_stops_reading_is_closed_at_the_task_timeout_and_others_are_served(make_board):
    b = I.BootedBoard(make_board(disk_mb=32, iscsi_task_timeout_s=2))
    w = I.Initiator(*b.portals[1], name="iqn.2026-11.test:witness", source="127.0.0.2")
    w.login()
    assert w.write(0, 0, chunk(1))["status"] == 0
    s = I.Initiator(*b.portals[0], name="iqn.2026-11.test:stops", rcvbuf=4096)
    s.login()
    for _ in range(128):               # 8 MiB of answers it never reads: more than the
        read10(s, 0, K64)              # socket buffers between hold
    served = 0
    for _ in range(200):               # the other host meanwhile, every answer whole
        assert w.read(0, 0, 128)["data"] == chunk(1)
        served += 1
    assert served == 200
    closed = threading.Event()

    def drain_until_closed():
        # reads what the board had sent before, then the end the board gives the connection
        try:
            while s.sock.recv(65536):
                time.sleep(0.01)
        except OSError:
            pass
        closed.set()
    time.sleep(0.5)
    found = []
    for _ in range(120):               # bounded: the reaper looks every 250 ms after 2 s
        found = [e["text"] for e in b.command("events", {"n": 64})["events"]
                 if "did not take what was sent" in e["text"]]
        if found:
            break
        time.sleep(0.25)
    assert found and "iqn.2026-11.test:stops" in found[0]
    threading.Thread(target=drain_until_closed, daemon=True).start()
    assert closed.wait(30)
    assert w.read(0, 0, 128)["data"] == chunk(1)
    w.logout()


def test_more_hosts_than_the_engine_has_buffers_for_are_all_answered_right(make_board):
    # ten sessions reading back to back at once: eight hold the engine's second buffers, the
    # others send on the main loop; then they log out and ten more take the buffers given back
    b = I.BootedBoard(make_board(disk_mb=32))
    w = I.Initiator(*b.portals[0])
    w.login()
    for i in range(4):
        assert w.write(0, i * 128, chunk(i))["status"] == 0
    w.logout()
    for spell in range(2):
        hosts = []
        for h in range(10):
            c = I.Initiator(*b.portals[h % 2], name="iqn.2026-11.test:h%d-%d" % (spell, h))
            c.login()
            hosts.append(c)
        wants = [[(read10(c, i % 4 * 128, K64), 0, chunk(i % 4)) for i in range(16)] for c in hosts]
        got = [None] * len(hosts)

        def take(k):
            got[k] = answers(hosts[k], 16)
        threads = [threading.Thread(target=take, args=(k,)) for k in range(len(hosts))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert got == wants
        for c in hosts:
            c.logout()
