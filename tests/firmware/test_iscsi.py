# iSCSI target pieces on MicroPython: CRC32C, text parsing, negotiation, and a login plus a SCSI
# command against a real controller inside one asyncio loop.
import asyncio
import socket
import struct
import uctypes
import fw
from endpoints import ioready, listen
from endpoints.iscsi import target as iscsi
from endpoints.iscsi import chap, flow
from endpoints.iscsi import pdu as P
from hw.dma import DMA
from test_dma import held_send


def test_crc32c_rfc_vectors():
    # RFC 3720 B.4 (values as the CRC register, before iSCSI's little-endian placement)
    assert P.crc32c(bytes(32)) == 0x8A9136AA
    assert P.crc32c(b"\xff" * 32) == 0x62A8AB43
    assert P.crc32c(bytes(range(32))) == 0x46DD794E
    assert P.crc32c(bytes(range(31, -1, -1))) == 0x113FDB5C
    assert P.crc32c(b"123456789") == 0xE3069283


def test_crc32c_pieces_and_views():
    data = bytes((i * 7 + 3) & 0xFF for i in range(1000))
    whole = P.crc32c(data)
    for cut in (0, 1, 7, 8, 9, 500, 999, 1000):
        assert P.crc32c(data[cut:], P.crc32c(data[:cut])) == whole
    mv = memoryview(bytearray(data))
    assert P.crc32c(mv[3:77]) == P.crc32c(data[3:77])


def test_crc32c_known_answers():
    # the check value of CRC-32C (RFC 3720 B.4) and the all-zero block of 32 bytes; the
    # eight-byte steps and the byte tail of the table-driven routine both take part
    assert P.crc32c(b"123456789") == 0xE3069283
    assert P.crc32c(bytes(32)) == 0x8A9136AA
    assert P.crc32c(b"") == 0


def test_parse_text():
    assert P.parse_text(b"A=1\x00B=x,y\x00") == [("A", "1"), ("B", "x,y")]
    assert P.parse_text(b"") == []
    for bad in (b"A=1", b"=1\x00", b"novalue\x00", b"A=1\x00A=2\x00", b"\xff=1\x00",
                b"K" * 64 + b"=1\x00", b"A=" + b"v" * 8193 + b"\x00", b"A B=1\x00"):
        try:
            P.parse_text(bad)
        except P.TextError:
            continue
        raise AssertionError("accepted %r" % bad)


def test_negotiate_rules():
    p = P.Params()
    assert P.negotiate(p, "HeaderDigest", "CRC32C,None") == "CRC32C" and p.header_digest
    assert P.negotiate(p, "DataDigest", "None,CRC32C") == "None" and not p.data_digest
    assert P.negotiate(p, "DataDigest", "MD5") == "Reject"
    assert P.negotiate(p, "InitialR2T", "No") == "No" and not p.initial_r2t
    assert P.negotiate(p, "InitialR2T", "Yes") == "Yes"
    assert P.negotiate(p, "ImmediateData", "No") == "No" and not p.immediate_data
    assert P.negotiate(p, "MaxBurstLength", "99999999") == "Reject"
    assert P.negotiate(p, "MaxBurstLength", "16777215") == str(P.TARGET_MAX_BURST)
    assert P.negotiate(p, "FirstBurstLength", "4096") == "4096" and p.first_burst == 4096
    assert P.negotiate(p, "MaxRecvDataSegmentLength", "16384") is None and p.mrdsl_out == 16384
    assert P.negotiate(p, "MaxRecvDataSegmentLength", "-5") == "Reject"
    assert P.negotiate(p, "ErrorRecoveryLevel", "2") == "0"
    assert P.negotiate(p, "MaxOutstandingR2T", "16") == "1"
    assert P.negotiate(p, "DefaultTime2Wait", "5") == "5"
    assert P.negotiate(p, "IFMarker", "Yes") == "No"
    assert P.negotiate(p, "IFMarkInt", "1~65535") == "Irrelevant"
    assert P.negotiate(p, "X-vendor.thing", "1") == "NotUnderstood"
    assert P.negotiate(p, "InitiatorName", "iqn.x:y") is None and p.initiator_name == "iqn.x:y"
    assert P.negotiate(p, "TargetAddress", "1.2.3.4") == "Reject"
    try:
        P.negotiate(p, "SessionType", "Weird")
        raise AssertionError("bad SessionType accepted")
    except P.TextError:
        pass


def test_lun_field_and_serial_numbers():
    b = bytearray(16)
    P.put_lun(b, 1)
    assert P.lun_number(b) == 1
    P.put_lun(b, 300)
    assert P.lun_number(b) == 300
    b[8] = 0x80   # logical unit addressing: not one of ours
    assert P.lun_number(b) == -1
    assert P.sn_lt(0xFFFFFFFF, 0) and not P.sn_lt(0, 0xFFFFFFFF) and not P.sn_lt(5, 5)


def _login_pdu(itt, pairs):
    data = b"".join(("%s=%s" % kv).encode() + b"\x00" for kv in pairs)
    b = bytearray(48)
    b[0] = 0x43
    b[1] = 0x87
    b[5:8] = bytes([len(data) >> 16, (len(data) >> 8) & 0xFF, len(data) & 0xFF])
    b[8:14] = b"\x80\x00\x00\x00\x00\x01"
    struct.pack_into(">I", b, 16, itt)
    return bytes(b) + data + b"\x00" * (-len(data) & 3)


async def _read_pdu(r):
    h = await r.readexactly(48)
    n = (h[5] << 16) | (h[6] << 8) | h[7]
    d = await r.readexactly(n + (-n & 3)) if n else b""
    return h, d[:n]


def test_login_and_command_in_process():
    ctl = fw.boot()

    async def main():
        port = await iscsi.start(ctl, 0, "127.0.0.1", 0)
        assert port > 0
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(_login_pdu(1, [("InitiatorName", "iqn.2026-01.mp:test"), ("TargetName", ctl.iqn),
                               ("SessionType", "Normal"), ("HeaderDigest", "None"),
                               ("MaxRecvDataSegmentLength", "65536")]))
        await w.drain()
        h, d = await _read_pdu(r)
        assert h[0] == 0x23 and h[36] == 0 and h[37] == 0, (h[36], h[37])
        assert h[1] & 0x80 and h[1] & 3 == 3   # transit to full feature phase
        keys = dict(kv.split("=", 1) for kv in d.decode().split("\x00") if kv)
        assert keys["HeaderDigest"] == "None" and keys["TargetPortalGroupTag"] == "1"
        tsih = (h[14] << 8) | h[15]
        assert tsih != 0
        # READ CAPACITY(10) on LUN 0: Data-In with phase-collapsed GOOD status
        c = bytearray(48)
        c[0] = 0x01
        c[1] = 0xC0 | 1
        struct.pack_into(">III", c, 16, 2, 8, 0)   # ITT, EDTL, CmdSN
        c[32] = 0x25
        w.write(bytes(c))
        await w.drain()
        h, d = await _read_pdu(r)
        assert h[0] & 0x3F == 0x25 and h[1] & 0x81 == 0x81 and h[3] == 0
        assert struct.unpack(">I", d[4:8])[0] == 512
        # READ(10) of 8 blocks: read straight into the connection's send buffer
        views = len(ctl.core._views)
        struct.pack_into(">III", c, 16, 3, 4096, 1)
        c[32:42] = bytes([0x28, 0, 0, 0, 0, 0, 0, 0, 8, 0])
        w.write(bytes(c))
        await w.drain()
        h, d = await _read_pdu(r)
        assert h[0] & 0x3F == 0x25 and h[3] == 0 and len(d) == 4096
        assert len(ctl.core._views) == views + 1
        w.close()
        await w.wait_closed()
        for _ in range(200):          # the target sees the close: the core lets go of that buffer
            if not iscsi._targets[id(ctl)].conns:
                break
            await asyncio.sleep_ms(5)
        assert len(ctl.core._views) == views
        await iscsi.stop(ctl)

    asyncio.run(main())


# ---------- abuse: CHAP guessing, stalled tasks, the transfer-buffer pool (a clock the test drives)
class _Clock:
    def __init__(self):
        self.ms = 1000

    def __call__(self):
        return self.ms


class _Ctl:
    """What a Target needs of the controller: the board definition and the event log."""

    def __init__(self, timeout_s):
        self.board = {"iscsi_task_timeout_s": timeout_s}
        self.events = self
        self.logged = []

    def log(self, level, text):
        self.logged.append(text)

    def buffer_gone(self, buf):
        pass


def test_chap_failures_double_the_delay_per_address_and_a_success_forgets():
    clock = _Clock()
    logged = []
    g = chap.ChapGuard(clock, lambda level, text: logged.append(text))
    a, b = b"\x02\x00\x7f\x00\x00\x01", b"\x02\x00\x7f\x00\x00\x02"
    assert g.wait_ms(a) == 0
    waits = []
    for n in range(12):
        g.result(a, False, "iqn.x:guesser")
        waits.append(g.wait_ms(a))
    assert waits == [1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000, 256000,
                     300000, 300000, 300000], waits
    assert g.wait_ms(b) == 0                        # other addresses are not slowed down
    assert len(logged) == 2 and "5 failed CHAP logins in a row from 127.0.0.1" in logged[0], logged
    assert "8 failed" in logged[1]
    clock.ms += 299999
    assert g.wait_ms(a) == 1                        # a retry now is refused unchecked
    clock.ms += 1
    assert g.wait_ms(a) == 0                        # once the delay has passed it is checked
    g.result(a, True, "iqn.x:owner")
    assert g.wait_ms(a) == 0 and a not in g.seen    # a success starts the address afresh
    g.result(a, False, "iqn.x:guesser")
    clock.ms += chap.CHAP_FORGET_MS
    assert g.wait_ms(a) == 0 and a not in g.seen    # an hour without failures: forgotten


def _addr(i):
    return b"\x02\x00" + bytes([10, 0, i >> 8, i & 255])


def test_chap_guessers_beyond_the_table_share_one_delay():
    clock = _Clock()
    logged = []
    g = chap.ChapGuard(clock, lambda level, text: logged.append(text))
    for i in range(chap.CHAP_TABLE):                # a full table of addresses still in their delay
        g.result(_addr(i), False, "iqn.x:y")
    fresh, other, owner = _addr(1000), _addr(1001), _addr(1002)
    assert g.wait_ms(fresh) == 0                    # the board-wide entry has no failures yet
    g.result(fresh, False, "iqn.x:y")
    assert len(g.seen) == chap.CHAP_TABLE and fresh not in g.seen   # nobody was forgotten for it
    assert g.wait_ms(_addr(0)) == 1000              # the table's own delays go on
    assert g.wait_ms(fresh) == g.wait_ms(other) == g.wait_ms(owner) == 1000   # one delay for all
    for n in range(2, 6):                           # guessing from ever new addresses doubles it
        clock.ms += g.wait_ms(_addr(1000 + n))
        g.result(_addr(1000 + n), False, "iqn.x:y")
    assert g.wait_ms(owner) == 16000
    assert "5 failed CHAP logins in a row from addresses beyond the 64 remembered" in logged[-1], logged
    clock.ms += 16000                               # once it has passed, a host that never failed
    assert g.wait_ms(owner) == 0                    # is checked at once
    g.result(owner, True, "iqn.x:owner")
    assert g.wait_ms(other) == 0 and g.common[0] == 5   # its success does not clear the others'


def test_a_full_chap_table_makes_room_only_from_forgotten_addresses():
    clock = _Clock()
    g = chap.ChapGuard(clock, lambda level, text: None)
    g.result(_addr(0), False, "iqn.x:y")
    clock.ms += chap.CHAP_FORGET_MS - 1
    for i in range(1, chap.CHAP_TABLE):
        g.result(_addr(i), False, "iqn.x:y")
    g.result(_addr(500), False, "iqn.x:y")          # _addr(0) is 1 ms short of forgotten
    assert _addr(0) in g.seen and _addr(500) not in g.seen
    clock.ms += 1
    g.result(_addr(501), False, "iqn.x:y")          # now it is, and its place is taken
    assert _addr(0) not in g.seen and g.seen[_addr(501)][0] == 1
    assert len(g.seen) == chap.CHAP_TABLE


def _pool(timeout_s=20, bufs=4, parks=6, conns=4):
    clock = _Clock()
    tgt = iscsi.Target(_Ctl(timeout_s), clock, bufs, parks)
    return clock, tgt, [_conn(tgt, _addr(i), "iqn.x:c%d" % i) for i in range(conns)]


def _conn(tgt, peer, iname, heard=True):
    c = iscsi.Conn(tgt, None, 0, peer)
    c.iname = iname
    c.heard = heard                  # it has sent its login request
    tgt.conns.add(c)
    return c


_itt = [0]


def _write(c, kib, unasked=0):
    """A WRITE of `kib` KiB arriving on connection c with `unasked` bytes of it sent along
    (immediate data): the task as scsi_cmd leaves it, where its data goes chosen."""
    _itt[0] += 1
    n = kib * 1024
    t = flow.Task(_itt[0], 0, b"\x2a", n, n, None, _itt[0])
    t.conn = c
    t.since = c.tgt.clock()
    c.buffer_for(t)
    c.pending[t.itt] = t
    if unasked and t.buf is not None:
        t.buf[:unasked] = bytes([t.itt & 0xFF]) * unasked
        t.got = t.unsol_end = unasked
    return t


def _transfer(b):
    return b is not None and len(b) == flow.TRANSFER


def test_a_large_write_past_the_pool_waits_with_its_unasked_data_parked_and_is_asked_once_a_buffer_comes():
    clock, tgt, conns = _pool(bufs=1)
    a, b = conns[0], conns[1]
    first = _write(a, 1024)
    assert _transfer(first.buf) and not first.waiting
    queued = _write(b, 1024, unasked=65536)
    assert queued.waiting and len(queued.buf) == flow.PARK and tgt.queue == [queued]
    assert tgt.busy == 0 and b.grants == []             # no BUSY, no R2T: its data is not asked for
    a.forget(a.pending.pop(first.itt))                  # the first write is done: its buffer ...
    assert tgt.queue == [] and not queued.waiting and _transfer(queued.buf)   # ... goes to the queued one
    assert bytes(queued.buf[:65536]) == bytes([queued.itt & 0xFF]) * 65536    # with what it parked
    assert b.grants == [queued] and b.held == 1 and len(tgt.parks) == 6      # its R2T is due
    assert queued.since == clock.ms                     # its data is timed from now


def test_small_writes_take_their_connections_buffer_then_parking_places_never_a_transfer_buffer():
    clock, tgt, conns = _pool(parks=2)
    c = conns[0]
    w = [_write(c, 64) for _ in range(4)]
    assert w[0].buf is c.stage and [len(t.buf) for t in w[1:3]] == [flow.PARK] * 2
    assert w[3].buf is None and tgt.busy == 1           # every parking place taken: BUSY
    assert c.held == 0 and len(tgt.free) == 4 and not any(t.waiting for t in w)
    for t in w[:3]:
        c.forget(t)
    assert not c.staged and len(tgt.parks) == 2


def test_a_buffer_given_back_goes_to_the_first_queued_write_whose_connection_and_address_are_under_their_share():
    clock, tgt, conns = _pool(bufs=3, parks=8)
    a, b = conns[0], conns[1]
    a2, b2 = _conn(tgt, a.peer, "iqn.x:a2"), _conn(tgt, b.peer, "iqn.x:b2")
    held_a = [_write(a, 512), _write(a, 512)]           # a holds two: its address's share
    held_b = _write(b, 512)
    queued = [_write(a, 512), _write(a2, 512), _write(b2, 512)]
    assert all(t.waiting for t in queued) and tgt.queue == queued
    b.forget(b.pending.pop(held_b.itt))                 # b's buffer: a's address holds its share,
    assert [t.waiting for t in queued] == [True, True, False]    # so b2's write, queued last, has it
    a.forget(a.pending.pop(held_a[0].itt))              # a's: a's own queued write first
    assert [t.waiting for t in queued] == [False, True, False]
    a.forget(a.pending.pop(held_a[1].itt))              # and the next one to a2's: a's address
    assert not any(t.waiting for t in queued)           # holds 1 when it comes back
    assert tgt.claims == {a.peer: 2, b.peer: 1} and tgt.queue == []


def test_one_address_holds_at_most_half_the_buffers_and_its_share_of_parking_places():
    clock, tgt, conns = _pool(bufs=4, parks=flow.PARK_SHARE + 8)
    one = [_conn(tgt, _addr(99), "iqn.x:one%d" % i) for i in range(20)]
    w = [_write(c, 512) for c in one for _ in range(2)]
    assert sum(_transfer(t.buf) for t in w) == flow.ADDR_SHARE
    assert sum(t.waiting for t in w) == flow.PARK_SHARE
    assert tgt.busy == len(w) - flow.ADDR_SHARE - flow.PARK_SHARE
    other = _write(conns[0], 512)                       # another address: a buffer at once
    assert _transfer(other.buf) and len(tgt.parks) == 8
    late = [_write(conns[1], 512) for _ in range(3)]    # a third one the last buffer, then its
    assert [_transfer(t.buf) for t in late] == [True, False, False]    # writes wait parked
    assert late[1].waiting and late[2].waiting and tgt.busy == len(w) - flow.ADDR_SHARE - flow.PARK_SHARE


def test_a_queued_write_is_not_timed_until_its_data_is_asked_for():
    clock, tgt, conns = _pool(bufs=1)
    holder = _write(conns[0], 1024)
    queued = _write(conns[1], 1024, unasked=4096)
    clock.ms += 20000 - 1
    tgt.reap()
    assert not holder.expired and queued.waiting
    clock.ms += 1
    tgt.reap()                                          # the holder's data did not come in time:
    assert holder.expired and holder.buf is None        # aborted, its buffer to the queued write
    assert not queued.waiting and not queued.expired and _transfer(queued.buf)
    assert sum("task aborted" in e for e in tgt.ctl.logged) == 1


def test_a_connection_stuck_in_a_send_is_closed_and_its_buffers_freed():
    clock, tgt, conns = _pool(timeout_s=3, bufs=2)
    reader = conns[0]
    held = [_write(reader, 1024), _write(reader, 1024)]
    queued = _write(reader, 1024, unasked=512)
    reader.stuck = clock.ms                             # its peer stopped taking Data-In
    clock.ms += 2999
    for t in held:
        t.since = clock.ms
    tgt.reap()
    assert reader in tgt.conns
    clock.ms += 1
    tgt.reap()
    assert reader not in tgt.conns and reader.held == 0 and not reader.pending
    assert len(tgt.free) == 2 and tgt.queue == [] and len(tgt.parks) == 6 and tgt.claims == {}
    assert queued.buf is None
    assert any("did not take what was sent within 3 s" in e for e in tgt.ctl.logged)


def test_a_closed_connection_leaves_the_queue_and_its_parking_places_come_back():
    clock, tgt, conns = _pool(bufs=1)
    holder = _write(conns[0], 1024)
    gone = [_write(conns[1], 1024, unasked=512) for _ in range(3)]
    stays = _write(conns[2], 1024, unasked=512)
    conns[1].kill()
    assert tgt.queue == [stays] and len(tgt.parks) == 6 - 1 and tgt.parked == {conns[2].peer: 1}
    conns[0].forget(conns[0].pending.pop(holder.itt))
    assert _transfer(stays.buf) and all(t.buf is None for t in gone)


def test_a_full_connection_table_evicts_a_silent_connection_never_a_session():
    clock, tgt, conns = _pool()
    for i in range(iscsi.MAX_CONNS - len(conns)):
        clock.ms += 1
        _conn(tgt, _addr(200 + i // 16), "?", heard=False)
    for c in conns:                                 # the first 6 are sessions, opened first
        c.full = True
    talker = sorted(tgt.conns, key=lambda c: c.opened)[len(conns)]
    talker.heard = True                             # the oldest pre-login one has sent a request
    silent = sorted([c for c in tgt.conns if not c.heard], key=lambda c: c.opened)
    assert tgt.admit(_addr(300))
    assert silent[0] not in tgt.conns and talker in tgt.conns   # the oldest silent one went first
    for c in silent[1:]:
        c.kill()
    for i in range(iscsi.MAX_CONNS - len(tgt.conns)):
        _conn(tgt, _addr(400 + i // 16), "iqn.x:s").full = True
    assert tgt.admit(_addr(300))
    assert talker not in tgt.conns                  # then the one still in login
    _conn(tgt, _addr(300), "iqn.x:s").full = True
    assert not tgt.admit(_addr(301))                # sessions are never closed for a newcomer
    assert len(tgt.conns) == iscsi.MAX_CONNS and all(c.full for c in tgt.conns)
    assert any("evicted before login" in e for e in tgt.ctl.logged)


def test_a_connection_that_sends_nothing_is_closed_after_the_first_pdu_timeout():
    clock, tgt, conns = _pool()                     # their login requests came
    silent = [_conn(tgt, _addr(200), "?", heard=False) for _ in range(3)]
    clock.ms += iscsi.FIRST_PDU_MS - 1
    tgt.reap()
    assert len(tgt.conns) == len(conns) + len(silent)
    clock.ms += 1
    tgt.reap()
    assert tgt.conns == set(conns)
    assert "no login request within 5 s" in tgt.ctl.logged[0]


def test_peers_are_told_apart_by_address_only():
    v4 = bytes([2, 0, 0x30, 0x39, 127, 0, 0, 3]) + bytes(8)
    assert listen.peer(v4) == b"\x02\x00\x7f\x00\x00\x03"
    assert listen.peer(bytes([2, 0, 0x30, 0x3a]) + v4[4:]) == listen.peer(v4)   # another port
    v6 = bytes([10, 0, 0x30, 0x39, 1, 2, 3, 4]) + bytes(15) + b"\x01" + bytes(4)   # ::1
    v6b = bytes([10, 0, 0x30, 0x3a, 9, 9, 9, 9]) + bytes(15) + b"\x01" + bytes(4)  # other flow label
    assert listen.peer(v6) == listen.peer(v6b) == b"\x0a\x00" + bytes(15) + b"\x01"


def test_a_write_past_the_window_of_writes_waiting_for_data_gets_task_set_full():
    # writes wait for their data only with a buffer, or once the task timeout aborted them (until
    # their late data is drained): with the CmdSN window's worth of those waiting, the next write
    # is refused with TASK SET FULL and its data drained; the session carries on
    ctl = fw.boot()

    async def main():
        port = await iscsi.start(ctl, 0, "127.0.0.1", 0)
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(_login_pdu(1, [("InitiatorName", "iqn.2026-01.mp:full"), ("TargetName", ctl.iqn),
                               ("SessionType", "Normal"), ("ImmediateData", "Yes")]))
        await w.drain()
        h, _ = await _read_pdu(r)
        assert h[0] == 0x23 and h[36] == 0
        conn = list(iscsi._targets[id(ctl)].conns)[0]
        for itt in range(100, 100 + flow.WINDOW):   # a window's worth aborted by the task timeout
            t = flow.Task(itt, 0, b"\x2a", 512, 512, None, itt)
            t.expired = True
            conn.pending[itt] = t
        c = bytearray(48)
        c[0], c[1] = 0x01, 0x80 | 0x20 | 1       # WRITE(10) of one block, its data immediate
        c[6] = 2                                  # data segment length 512
        struct.pack_into(">III", c, 16, 7, 512, 0)   # ITT, EDTL, CmdSN
        c[32:42] = struct.pack(">BBIBHB", 0x2A, 0, 5, 0, 1, 0)
        w.write(bytes(c) + b"\x05" * 512)
        await w.drain()
        h, _ = await _read_pdu(r)
        assert h[0] & 0x3F == 0x21 and struct.unpack_from(">I", h, 16)[0] == 7 and h[3] == 0x28
        del conn.pending[100]                     # one drained: the next write is served
        struct.pack_into(">III", c, 16, 8, 512, 1)
        w.write(bytes(c) + b"\x06" * 512)
        await w.drain()
        h, _ = await _read_pdu(r)
        assert h[0] & 0x3F == 0x21 and struct.unpack_from(">I", h, 16)[0] == 8 and h[3] == 0
        w.close()
        await iscsi.stop(ctl)

    asyncio.run(main())


def test_no_buffer_is_handed_over_while_the_parked_data_is_being_read_and_no_r2t_before_it_is_in():
    clock, tgt, conns = _pool(bufs=1)
    holder = _write(conns[0], 1024)
    c = conns[1]
    t = _write(c, 1024)                                 # queued; its immediate data still to read
    t.unsol_end = 65536
    c.filling = t                                       # ... and being read now
    conns[0].forget(conns[0].pending.pop(holder.itt))
    assert t.waiting and len(tgt.free) == 1             # not handed over mid-read
    c.filling = None
    t.got = 65536
    tgt.grant()                                         # what recv_into does when the read ends
    assert not t.waiting and _transfer(t.buf) and c.grants == [t]


def test_a_large_read_with_no_buffer_free_gets_busy_when_its_connection_holds_one():
    clock, tgt, conns = _pool(bufs=1)
    c = conns[0]
    _write(c, 1024)                                     # holds the only buffer, its data to come
    assert asyncio.run(tgt.lease(c)) is None            # its reader must not wait: BUSY
    assert tgt.queue == []


def test_every_write_the_thread_holds_has_a_record_for_its_answer():
    # Pool.defer keeps a write's answer in the record its chain ticket picks: as many chains as
    # the I/O processor's thread may hold at once must never share one
    from hw import chains
    assert flow.DEFER_SLOTS >= chains.CHAINS


def test_at_most_eight_connections_hold_a_second_copy_buffer_for_the_dma_engine():
    # (flow.DMA_SPARES: the memory a busy board gives the engine is bounded; a connection past
    # them sends its answers on the main loop)
    _, tgt, conns = _pool(conns=flow.DMA_SPARES + 1)
    assert all(tgt.spare(c) for c in conns[:-1])
    held = [c.spare for c in conns[:-1]]
    for c in conns[:-1]:     # each a view of its buffer, with room for a header before it
        at = uctypes.addressof(c.spare_in) - uctypes.addressof(c.spare)
        assert len(c.spare) == len(held[0]) and len(c.spare_in) == flow.COPY_MAX
        assert at >= 48 and at + flow.COPY_MAX <= len(c.spare)
    assert not tgt.spare(conns[-1]) and conns[-1].spare is None
    assert tgt.spares_made == flow.DMA_SPARES
    view = conns[0].spare_in
    tgt.spare_back(conns[0])          # a connection closed (Conn.cleanup gives its spare back)
    assert conns[0].spare is None and conns[0].spare_in is None
    assert tgt.spare(conns[-1]) and conns[-1].spare is held[0] and conns[-1].spare_in is view
    assert not tgt.spare(conns[0]) and tgt.spares_made == flow.DMA_SPARES


def test_one_host_holds_at_most_half_the_copy_buffers_and_others_still_get_theirs():
    _, tgt, conns = _pool(conns=1)
    hostile = [_conn(tgt, _addr(7), "iqn.x:h%d" % i) for i in range(flow.DMA_SPARES)]
    assert sum(tgt.spare(c) for c in hostile) == flow.DMA_SHARE
    assert tgt.spare(conns[0])                   # another host's session still has one


def test_a_connection_that_stops_using_the_dma_engine_gives_its_copy_buffer_back():
    clock, tgt, _ = _pool(conns=0)
    tgt.dma = DMA()                                  # (as iscsi.start makes it, before connections)
    conns = [_conn(tgt, _addr(i), "iqn.x:c%d" % i) for i in range(3)]
    quiet, talking, sending = conns
    try:
        quiet.dma_channel()
        talking.dma_channel()
        board, host, sending.dj = held_send(tgt.dma)   # a send its host does not take yet
        for c in conns:
            assert tgt.spare(c)
            c.dma_since = clock()
        clock.ms += flow.DMA_IDLE_MS - 1
        talking.dma_since = clock()                  # sent a moment ago
        tgt.reap()
        assert quiet.spare is not None               # not a whole second yet
        clock.ms += 1
        tgt.reap()
        assert quiet.spare is None and talking.spare is not None and sending.spare is not None
        assert len(tgt.spares) == 1 and tgt.spare_claims.get(quiet.peer, 0) == 0
        assert tgt.dma.close(sending.dj)
        board.close()
        host.close()
    finally:
        tgt.dma.stop()




def test_a_connection_the_board_closes_leaves_nothing_registered_with_the_poller():
    # (its socket stays registered between waits, endpoints/ioready.py: the descriptor of a closed
    # one may be the next accepted connection's at once)
    ctl = fw.boot()
    q = asyncio.core._io_queue
    left = []

    async def main():
        port = await iscsi.start(ctl, 0, "127.0.0.1", 0)
        tgt = iscsi._targets[id(ctl)]
        host = socket.socket()
        host.connect(socket.getaddrinfo("127.0.0.1", port)[0][-1])
        while not tgt.conns:
            await asyncio.sleep_ms(1)
        c = next(iter(tgt.conns))
        while id(c.s) not in q.map:          # its reader waits for the login request
            await asyncio.sleep_ms(1)
        s = c.s
        tgt.drop(c, "closed by the test")
        left.append(id(s) in q.map or id(s) in ioready._kept)
        host.close()
        await iscsi.stop(ctl)
    asyncio.run(main())
    assert left == [False]
