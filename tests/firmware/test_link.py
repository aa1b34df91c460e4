# The back-end link between the controllers of a pair (endpoints/link, linkproto.md): the frame
# codec, the parser's handling of damaged frames, the send window, and a live Link against a
# partner this test plays by hand on a real socket (or against a second Link). No test looks at
# the wall clock: heartbeats and loss run on a clock the test drives; waits are bounded loops.
import asyncio
import socket
import binascii
import struct
import time
from hw import events
from endpoints import listen
from endpoints.link import frame as F
from endpoints.link import link as L
from endpoints.link.window import Window

SMALL_WINDOW = F.MAX_FRAME + 65536     # tests keep the heap small: one largest frame and change
LIGHT = 16                             # answered at once, also while a call() waits
HEAVY = 20                             # handled by the reader, in order


# ---------- the codec and the parser ----------
class Rnd:
    # a small repeatable generator (MicroPython's random has no separate instances)
    def __init__(self, seed):
        self.x = seed

    def getrandbits(self, n):
        self.x = (self.x * 1103515245 + 12345) & 0x7FFFFFFF
        return (self.x >> 8) & ((1 << n) - 1)


class Errors:
    def __init__(self):
        self.seen = []

    def __call__(self, reason, offset):
        self.seen.append((reason, offset))


def raises(kind, fn, *args):
    # the message of the `kind` exception fn(*args) raises
    try:
        fn(*args)
    except kind as e:
        return str(e)
    raise AssertionError("%r did not raise %r" % (fn, kind))


def frame(kind, seq, ack, payload=b""):
    b = bytearray(F.HDR + F.size(payload))
    F.encode(b, kind, seq, ack, payload)
    return bytes(b)


def parse(p, data, step=None):
    # feeds data to p (in pieces of `step` bytes, or whole) and returns the good frames
    out = []
    step = step or len(data) or 1
    for i in range(0, len(data), step):
        p.feed(data[i:i + step])
        while True:
            k = p.next()
            if k == F.NEED:
                break
            if k != F.BAD:
                out.append((k, p.seq, p.ack, bytes(p.payload)))
    return out


def test_codec_round_trip():
    p = F.Parser(Errors())
    big = bytes(range(256)) * (F.MAX_PAYLOAD // 256)
    cases = [(F.HELLO, 1, 0, b'{"id": 0}'), (F.HB, 7, 3, b""), (200, 0xFFFFFFFF, 0x80000000, b"x" * 4096),
             (17, 9, 8, big)]
    for kind, seq, ack, payload in cases:
        assert parse(p, frame(kind, seq, ack, payload)) == [(kind, seq, ack, payload)]
    parts = [b"head", bytearray(b"-"), memoryview(b"tail")]
    assert frame(30, 2, 1, parts) == frame(30, 2, 1, b"head-tail")      # parts are not joined first
    wire = frame(30, 2, 1, b"head-tail")
    assert wire[0:4] == b"RL\x02\x1e" and struct.unpack_from("<III", wire, 4) == (2, 1, 9)
    assert raises(ValueError, F.encode, bytearray(F.MAX_FRAME + 1), 30, 1, 0, bytes(F.MAX_PAYLOAD + 1)) == \
        "link payload of 1052673 bytes over 1052672"


def test_parser_takes_bytes_one_by_one_and_in_odd_slices():
    frames = [(16 + i, i + 1, i, bytes((i * 7 + j) & 0xFF for j in range(i * 37))) for i in range(12)]
    wire = b"".join(frame(*f) for f in frames)
    for step in (1, 3, 7, 19, 64, 1000, len(wire)):
        errs = Errors()
        assert parse(F.Parser(errs), wire, step) == frames, step
        assert errs.seen == []


def bad_case(damaged, reason, step=None):
    # damaged bytes, then a good frame: one error naming `reason` at byte 0, the good frame comes
    errs = Errors()
    p = F.Parser(errs)
    good = frame(18, 5, 4, b"the next good frame")
    got = parse(p, damaged + good, step)
    assert got == [(18, 5, 4, b"the next good frame")], got
    assert errs.seen[0] == (reason, 0), errs.seen
    assert p.errors == len(errs.seen) and p.resyncs == 1
    return errs.seen


def test_garbage_before_a_frame_is_one_error_then_the_frame():
    assert bad_case(b"\x00garbage line noise\xff" * 10, "bad magic") == [("bad magic", 0)]
    assert bad_case(b"\x00garbage line noise\xff" * 10, "bad magic", step=5) == [("bad magic", 0)]


def test_a_flipped_payload_bit_fails_the_payload_check():
    f = bytearray(frame(18, 4, 3, b"payload" * 10))
    f[F.HDR + 11] ^= 0x08
    bad_case(bytes(f), "payload check mismatch")


def test_a_flipped_header_bit_is_refused_before_its_payload_is_waited_for():
    # a damaged length would otherwise hold back the frames behind it until that many bytes came
    for byte in (4, 8, 13, 16):
        f = bytearray(frame(18, 4, 3, b"payload" * 10))
        f[byte] ^= 0x10
        assert bad_case(bytes(f)[:F.HDR], "header CRC mismatch") == [("header CRC mismatch", 0)]


def test_the_payload_check_is_the_documented_word_sum():
    # linkproto.md "Frame": Fletcher-style sums of little-endian 32-bit words, the last padded
    def documented(b):
        b = bytes(b) + bytes(-len(b) % 4)
        s1 = s2 = 0
        for i in range(0, len(b), 4):
            s1 = (s1 + struct.unpack_from("<I", b, i)[0]) & 0xFFFFFFFF
            s2 = (s2 + s1) & 0xFFFFFFFF
        return s1 ^ (((s2 << 16) | (s2 >> 16)) & 0xFFFFFFFF)

    for n in list(range(0, 24)) + [4095, 4096, 4097]:
        payload = bytes((i * 131 + n * 7 + 0xA5) & 0xFF for i in range(n))
        wire = frame(20, 1, 0, payload)
        assert struct.unpack_from("<I", wire, 16)[0] == documented(payload), n
    wire = frame(20, 1, 0, b"\xff" * 65536)                   # the sums wrap at 32 bits
    assert struct.unpack_from("<I", wire, 16)[0] == documented(b"\xff" * 65536)


def test_a_length_over_the_limit_is_refused_before_any_wait():
    f = bytearray(frame(18, 4, 3, b"abc"))
    struct.pack_into("<I", f, 12, F.MAX_PAYLOAD + 1)
    struct.pack_into("<I", f, 20, binascii.crc32(f[0:20]))     # a header whose CRC holds
    bad_case(bytes(f), "length %d over %d" % (F.MAX_PAYLOAD + 1, F.MAX_PAYLOAD))


def test_a_wrong_version_or_kind_is_refused():
    f = bytearray(frame(18, 4, 3, b"abc"))
    f[2] = 1
    bad_case(bytes(f), "bad version 1")
    for kind in (0, 7, 15):
        f = bytearray(frame(18, 4, 3, b"abc"))
        f[3] = kind
        bad_case(bytes(f), "bad kind %d" % kind)


def test_a_cut_off_frame_then_a_good_one():
    # the cut frame's length takes bytes of the good one: the check fails, and the good one is
    # found again in the bytes the damaged frame had taken (a frame cut by more than what
    # follows it waits for more traffic: on a live link heartbeats bring it)
    f = frame(18, 4, 3, b"p" * 10)
    bad_case(f[:F.HDR + 4], "payload check mismatch")
    bad_case(f[:F.HDR + 4], "payload check mismatch", step=1)


def test_error_offsets_count_from_the_start_of_the_stream():
    errs = Errors()
    p = F.Parser(errs)
    first = frame(18, 1, 0, b"a" * 70000)             # the buffer is compacted in between
    parse(p, first + b"junk" + frame(18, 2, 1), 4096)
    assert errs.seen == [("bad magic", len(first))]


def test_noise_with_false_magics_never_raises_and_never_grows():
    rnd = Rnd(7)
    errs = Errors()
    p = F.Parser(errs)
    buf = p.buf
    good = [(18, i, i, bytes([i]) * (i * 5)) for i in range(1, 40)]
    wire = bytearray()
    for f in good:
        noise = bytearray(rnd.getrandbits(8) for _ in range(rnd.getrandbits(7)))
        if rnd.getrandbits(1):
            noise += b"RL\x01" + bytes([rnd.getrandbits(8)])   # a false start of a frame
        wire += noise + frame(*f)
    got = parse(p, bytes(wire) + frame(18, 99, 0) * 3, 333)
    assert p.buf is buf and len(buf) == F.MAX_FRAME + F.CHUNK
    assert [g for g in got if g in good] == got[:len([g for g in got if g in good])]
    assert all(g in good or g[1] == 99 for g in got)             # nothing made up from noise
    assert got[-1][1] == 99 and p.errors == len(errs.seen) and p.errors > 0


def test_a_parser_taking_over_leaves_the_handed_out_payload_intact():
    # the link reads on in a second parser while a handler holds a payload of the first
    a, b = F.Parser(Errors()), F.Parser(Errors())
    a.feed(frame(18, 1, 0, b"held payload") + frame(18, 2, 1, b"next")[:10])
    assert a.next() == 18
    held = a.payload
    b.take_over(a)
    assert a.next() == F.NEED
    assert parse(b, frame(18, 2, 1, b"next")[10:] + frame(18, 3, 2, b"x" * 200000), 4096) == [
        (18, 2, 1, b"next"), (18, 3, 2, b"x" * 200000)]
    assert bytes(held) == b"held payload"


# ---------- the send window ----------
def test_the_window_is_bounded_and_reuses_its_ring_in_order():
    w = Window(4, F.MAX_FRAME)
    off = w.room(600000)
    w.add(off, 600000, 1, 0)
    assert w.room(600000) == -1                  # bytes: one largest-frame ring
    assert w.room(400000) == 600000
    w.add(600000, 400000, 2, 0)
    assert w.next_out() is not None and w.wrote(600000) == 0
    assert w.release(5) == 1                     # only written frames are released
    assert w.room(500000) == 0                   # wraps to the front, before the oldest
    w.add(0, 500000, 3, 0)
    w.add(500000, 10, 4, 0)
    w.add(500010, 10, 5, 0)
    assert w.count == 4 and w.room(10) == -1     # frames: 4
    w.wrote(400000)
    w.rewind = True
    assert bytes(w.next_out()[:2]) == b"\x00\x00" and w.resent == 1 and w.sent == 0


# ---------- a live link ----------
class Clock:
    def __init__(self):
        self.t = 0

    def __call__(self):
        return self.t


class Pair:
    """The pair logic, as far as the link sees it: records what it is told; kind 16 is light and
    answered with b"re:" + the request."""

    def __init__(self, name=b"test"):
        self.name = name
        self.link = None
        self.ups = []
        self.downs = []
        self.got = []
        self.during_call = []

    def hello(self):
        return b'{"controller": "%s"}' % self.name

    def link_up(self, payload):
        self.ups.append(payload)

    def link_down(self, reason):
        self.downs.append(reason)

    def light(self, kind):
        return kind == LIGHT

    def frame(self, kind, seq, payload):
        self.got.append((kind, seq, bytes(payload)))
        self.during_call.append(self.link.calling)
        if kind == LIGHT:
            self.link.reply(seq, [b"re:", payload])


class Log(events.EventLog):
    def texts(self, part):
        return [e["text"] for e in self.recent(64) if part in e["text"]]


def listening(pair, clock=None, **kw):
    log = Log()
    link = L.Link(1, ("127.0.0.1", 0), pair, log, clock or Clock(), window_bytes=SMALL_WINDOW, **kw)
    pair.link = link
    link.start()
    return link, log


class Peer:
    """The partner controller, played by the test on a plain socket."""

    def __init__(self, port):
        self.s = socket.socket()
        self.s.connect(socket.getaddrinfo("127.0.0.1", port)[0][-1])
        self.s.setblocking(False)
        self.errs = Errors()
        self.p = F.Parser(self.errs)
        self.got = []
        self.closed = False

    def raw(self, data):
        mv = memoryview(data)
        while mv:
            try:
                mv = mv[self.s.write(mv) or 0:]
            except OSError:
                pass

    def send(self, kind, seq, ack=0, payload=b""):
        self.raw(frame(kind, seq, ack, payload))

    def poll(self):
        while not self.closed:
            try:
                n = self.s.readinto(self.p.space())
            except OSError:
                return
            if not n:
                self.closed = n == 0
                return
            self.p.fed(n)
            while True:
                k = self.p.next()
                if k == F.NEED:
                    break
                if k != F.BAD:
                    self.got.append((k, self.p.seq, self.p.ack, bytes(self.p.payload)))

    def kinds(self, kind):
        self.poll()
        return [g for g in self.got if g[0] == kind]


async def until(cond, what, peer=None):
    for _ in range(400):
        if peer is not None:
            peer.poll()
        if cond():
            return
        await asyncio.sleep_ms(5)
    raise AssertionError("never happened: " + what)


async def connected(pair, **kw):
    # a listening link with the test's partner connected and both HELLOs through
    link, log = listening(pair, **kw)
    peer = Peer(link.port)
    peer.send(F.HELLO, 1, 0, b'{"controller": "peer"}')
    await until(lambda: link.up and peer.kinds(F.HELLO), "link up")
    return link, log, peer


def run(coro):
    asyncio.run(coro)


def stepping(link):
    # the link's clock from now on: each look at it is 10 ms later (a blocked call() times out
    # after a count of looks, whatever the machine's speed)
    t = [0]

    def clock():
        t[0] += 10
        return t[0]
    link.clock = clock
    link.last_rx = link.last_tx = 0


def live(body, **kw):
    # body(pair, link, log, peer) against a listening link with the test's partner connected
    async def main():
        pair = Pair()
        link, log, peer = await connected(pair, **kw)
        try:
            await body(pair, link, log, peer)
        finally:
            link.close()
    run(main())


def test_hello_both_ways_brings_the_link_up():
    async def main(pair, link, log, peer):
        assert pair.ups == [b'{"controller": "peer"}']
        assert peer.kinds(F.HELLO) == [(F.HELLO, 1, 0, b'{"controller": "test"}')]
        assert log.texts("link up")
    live(main)


def test_request_and_reply_both_ways():
    async def main(pair, link, log, peer):
        task = asyncio.create_task(link.request(HEAVY, b"question"))
        await until(lambda: peer.kinds(HEAVY), "request sent", peer)
        k, seq, ack, payload = peer.kinds(HEAVY)[0]
        assert (seq, ack, payload) == (2, 1, b"question")
        peer.send(F.REPLY, 2, 2, struct.pack("<I", seq) + b"answer")
        await until(lambda: task.done(), "reply taken")
        assert await task == b"answer"
        peer.send(LIGHT, 3, 2, b"ping")                  # the partner asks: the handler replies
        await until(lambda: peer.kinds(F.REPLY), "reply", peer)
        assert peer.kinds(F.REPLY)[0][3] == struct.pack("<I", 3) + b"re:ping"
    live(main)


def test_a_late_reply_cannot_reach_a_request_of_a_newer_connection():
    async def main(pair, link, log, peer):
        peer.send(HEAVY, 2, 1, b"answered later")
        await until(lambda: pair.got, "request")
        gen = link.gen
        link.reply(2, b"in time", gen)
        peer.s.close()
        await until(lambda: not link.up, "down")
        again = Peer(link.port)
        again.send(F.HELLO, 1, 0, b"again")
        await until(lambda: link.up, "up again")
        assert raises(L.LinkDown, link.reply, 2, b"too late", gen) == "request 2 came on an earlier connection"
        await asyncio.sleep_ms(10)
        assert not again.kinds(F.REPLY)
    live(main)


def test_pending_requests_fail_when_the_link_drops():
    async def main(pair, link, log, peer):
        task = asyncio.create_task(link.request(HEAVY, b"never answered"))
        await until(lambda: peer.kinds(HEAVY), "request sent", peer)
        peer.s.close()
        await until(lambda: task.done(), "request ended")
        try:
            await task
            raise AssertionError("request survived the link")
        except L.LinkDown as e:
            assert str(e) == "eof"
    live(main)


def damaged_then_resent(damage, reason, last_good=1):
    # the partner's frame 2 arrives damaged, frame 3 whole: an error naming the reason, a NAK for
    # what followed frame 1, frame 3 dropped; the partner sends 2 and 3 again, each handled once
    # (noise before an intact frame 2 loses nothing: the NAK then acknowledges whatever came)
    return lambda pair, link, log, peer: resend_after(damage, reason, last_good, pair, link, log, peer)


async def resend_after(damage, reason, last_good, pair, link, log, peer):
    one = frame(HEAVY, 2, 1, b"second frame")
    peer.raw(damage(bytearray(one)))
    peer.send(HEAVY, 3, 1, b"third frame")
    await until(lambda: peer.kinds(F.NAK), "NAK", peer)
    assert last_good is None or peer.kinds(F.NAK)[0][2] == last_good     # ack: the last good one
    assert any(reason in t and "bad frame from partner at byte" in t for t in log.texts("bad frame")), \
        log.texts("bad frame")
    peer.raw(one)
    peer.send(HEAVY, 3, 1, b"third frame")
    await until(lambda: len(pair.got) == 2, "frames resent")
    await asyncio.sleep_ms(20)
    assert pair.got == [(HEAVY, 2, b"second frame"), (HEAVY, 3, b"third frame")]
    assert link.bad_frames >= 1 and link.resyncs >= 1 and link.up


def test_damaged_frames_from_the_partner_are_logged_nakked_and_resent():
    def flip(f):
        f[F.HDR + 3] ^= 1
        return f

    def garbage(f):
        return b"\x13\x37 noise " + f

    def version(f):
        f[2] = 9
        return f

    def length(f):
        struct.pack_into("<I", f, 12, 0x7FFFFFFF)
        return f

    def cut(f):
        return f[:F.HDR + 4]

    for damage, reason in ((flip, "payload check mismatch"), (version, "bad version 9"),
                           (length, "header CRC mismatch"), (cut, "payload check mismatch")):
        live(damaged_then_resent(damage, reason))
    live(damaged_then_resent(garbage, "bad magic", last_good=None))


def test_a_frame_after_a_damaged_one_is_dropped_and_logged_once():
    async def main(pair, link, log, peer):
        await damaged_then_resent(lambda f: f[:-1] + bytes([f[-1] ^ 1]), "payload check mismatch")(pair, link, log, peer)
        assert link.dropped >= 1 and len(log.texts("dropped, 2 expected")) == 1
    live(main)


def test_a_partners_protocol_errors_are_logged_and_ignored():
    # whole frames that make no sense: logged, nothing else happens, the link stays up
    async def main(pair, link, log, peer):
        peer.send(F.REPLY, 2, 1, b"\x01\x00")              # no request number
        peer.send(F.REPLY, 3, 1, struct.pack("<I", 99))    # nobody asked
        peer.send(F.ACK, 3, 50)                            # acknowledges what was never sent
        peer.send(F.HELLO, 4, 1, b"again")                 # a second HELLO
        peer.send(LIGHT, 5, 1, b"still works")
        await until(lambda: peer.kinds(F.REPLY), "reply", peer)
        for text in ("REPLY of 2 bytes has no request number", "reply to request 99, which nobody waits for",
                     "acknowledges frame 50, only 1 sent", "second HELLO on one connection ignored"):
            assert log.texts(text), text
        assert link.up and pair.ups == [b'{"controller": "peer"}'] and pair.got == [(LIGHT, 5, b"still works")]
    live(main)


def test_a_misbehaving_partner_cannot_flood_the_event_log():
    async def main(pair, link, log, peer):
        for seq in range(2, 42):
            peer.send(F.REPLY, seq, 1, struct.pack("<I", 1000 + seq))
        await until(lambda: link.faults == 40, "forty faults")
        texts = log.texts("which nobody waits for")
        assert len(texts) == 10 and texts[8].endswith("(16 partner faults so far)") and texts[9].endswith(
            "(32 partner faults so far)"), texts
    live(main)


def test_a_burst_from_the_partner_leaves_room_for_the_other_endpoints():
    async def main(pair, link, log, peer):
        turns = [0]

        async def other_endpoint():
            while True:
                turns[0] += 1
                await asyncio.sleep_ms(0)
        other = asyncio.create_task(other_endpoint())
        seen = []
        handled = pair.frame
        pair.frame = lambda kind, seq, payload: (seen.append(turns[0]), handled(kind, seq, payload))
        peer.raw(b"".join(frame(HEAVY, seq, 1, b"burst") for seq in range(2, 302)))
        await until(lambda: len(seen) == 300, "burst handled")
        other.cancel()
        assert max(seen.count(t) for t in seen) <= L.SLICE
    live(main)


def test_a_partner_that_skips_its_hello_is_disconnected():
    async def main():
        pair = Pair()
        link, log = listening(pair)
        peer = Peer(link.port)
        peer.send(LIGHT, 1, 0, b"no hello first")
        await until(lambda: peer.closed, "disconnected", peer)
        assert log.texts("partner sent frame 1 (kind 16) before its HELLO") and not pair.got
        assert not pair.downs                              # it never was up
        link.close()
    run(main())


def test_a_nak_from_the_partner_makes_the_link_send_again():
    async def main(pair, link, log, peer):
        for i in range(3):
            await link.send(HEAVY + i, b"frame %d" % i)
        await until(lambda: len(peer.got) >= 4, "frames out", peer)
        peer.send(F.NAK, 0, 2)                        # "frame 2 came, the rest did not"
        await until(lambda: link.retransmits == 2, "resent")
        await until(lambda: len(peer.kinds(HEAVY + 2)) == 2, "frame 4 again", peer)
        assert [g[1] for g in peer.got if g[0] >= HEAVY] == [2, 3, 4, 3, 4]
        assert log.texts("frames after 2 again")
    live(main)


def test_too_many_bad_frames_in_a_row_end_the_connection_and_it_comes_back():
    async def main(pair, link, log, peer):
        for seq in range(2, 2 + L.TOO_MANY_BAD):    # every frame damaged
            f = bytearray(frame(HEAVY, seq, 1, b"data"))
            f[-1] ^= 0x40
            peer.raw(f)
        await until(lambda: pair.downs, "dropped")
        assert pair.downs == ["bad frames: too many"] and not link.up
        assert link.bad_frames == L.TOO_MANY_BAD
        again = Peer(link.port)                      # the partner connects again
        again.send(F.HELLO, 1, 0, b"again")
        await until(lambda: link.up, "up again")
        assert pair.ups[-1] == b"again" and pair.downs == ["bad frames: too many"]
    live(main)


def test_heartbeat_when_idle_and_loss_after_dead_ms_on_the_links_clock():
    clock = Clock()

    async def main(pair, link, log, peer):
        await asyncio.sleep_ms(30)                   # the delayed ACK of the partner's HELLO
        peer.poll()
        sent = link.frames_out
        clock.t = 49
        link.tick()
        assert link.frames_out == sent               # not idle for hb_ms yet
        clock.t = 50
        link.tick()
        assert link.frames_out == sent + 1
        await until(lambda: peer.kinds(F.HB), "heartbeat", peer)
        assert peer.kinds(F.HB)[0][1:3] == (1, 1)    # seq: the highest sent; ack: the HELLO
        clock.t = 499
        link.tick()
        assert link.up
        clock.t = 500                                # nothing from the partner since t=0
        link.tick()
        assert not link.up and pair.downs == ["heartbeat lost after 500 ms"]
        await asyncio.sleep_ms(20)
        assert pair.downs == ["heartbeat lost after 500 ms"]
    live(main, clock=clock, hb_ms=50, dead_ms=500)


def test_eof_is_one_link_down_and_a_new_connection_replaces_the_old():
    async def main(pair, link, log, peer):
        peer.s.close()
        await until(lambda: pair.downs, "link down")
        await asyncio.sleep_ms(30)
        assert pair.downs == ["eof"] and log.texts("link down: eof")
        again = Peer(link.port)
        again.send(F.HELLO, 1, 0, b"back")
        await until(lambda: link.up, "up again")
        assert pair.ups[-1] == b"back"
    live(main)


def test_a_bye_ends_the_connection_with_the_partners_reason():
    async def main(pair, link, log, peer):
        peer.send(F.BYE, 1, 1, b"\xff\xfe going away")         # not UTF-8: shown as bytes
        await until(lambda: pair.downs, "link down")
        assert pair.downs == ["closed by partner: b'\\xff\\xfe going away'"], pair.downs
    live(main)


def test_false_frame_starts_in_noise_are_one_report_and_the_heartbeat_ends_a_silent_partner():
    clock = Clock()

    async def main(pair, link, log, peer):
        peer.raw(b"RL\x01\x09" * 100 + b"RL\x07" * 100)       # bad kinds, bad versions: one stretch
        await until(lambda: link.bad_frames, "reported")
        await asyncio.sleep_ms(20)
        assert link.bad_frames == 1 and link.up
        clock.t = 500
        link.tick()
        assert pair.downs == ["heartbeat lost after 500 ms"]
    live(main, clock=clock)


def test_a_second_connection_is_refused_while_the_partner_is_connected():
    async def main(pair, link, log, peer):
        other = Peer(link.port)
        await until(lambda: other.kinds(F.BYE), "BYE", other)
        assert other.kinds(F.BYE)[0][3] == b"partner already connected"
        await until(lambda: other.closed, "closed", other)
        assert log.texts("refused: partner already connected")
        peer.send(LIGHT, 2, 1, b"still here")
        await until(lambda: peer.kinds(F.REPLY), "first connection still serves", peer)
    live(main)


def test_a_held_link_refuses_the_partner():
    async def main():
        pair = Pair()
        link, log = listening(pair)
        link.hold(True)
        peer = Peer(link.port)
        await until(lambda: peer.kinds(F.BYE), "BYE", peer)
        assert peer.kinds(F.BYE)[0][3] == b"link held" and not pair.ups
        link.close()
    run(main())


def test_a_full_window_makes_send_wait_until_acknowledged():
    async def main(pair, link, log, peer):
        done = []

        async def sender():
            for i in range(6):
                await link.send(HEAVY, b"%d" % i)
                done.append(i)
        task = asyncio.create_task(sender())
        await until(lambda: len(done) == 3, "three sent (and the HELLO)")
        for _ in range(10):
            await asyncio.sleep_ms(2)
        assert len(done) == 3 and link.win.count == 4          # waits: nothing acknowledged
        peer.send(F.ACK, 1, 3)
        await until(lambda: task.done(), "the rest sent")
        assert done == [0, 1, 2, 3, 4, 5] and link.win.count <= 4
    live(main, window_frames=4)


def test_call_answers_a_light_request_inline_and_keeps_others_for_later():
    # the partner's light request arrives while our call waits: answered at once (else two
    # controllers calling each other would wait for ever); a heavy frame waits, in order
    async def main(pair, link, log, peer):
        peer.send(LIGHT, 2, 1, b"light")
        peer.send(HEAVY, 3, 1, b"heavy")
        peer.send(F.REPLY, 4, 1, struct.pack("<I", 2) + b"the answer")     # our call will be frame 2
        await asyncio.sleep_ms(0)
        assert link.call(30, b"question", 1000) == b"the answer"
        assert pair.got == [(LIGHT, 2, b"light")] and pair.during_call == [True]
        await until(lambda: len(pair.got) == 2, "heavy frame handled after the call")
        assert pair.got[1] == (HEAVY, 3, b"heavy") and pair.during_call[1] is False
        replies = peer.kinds(F.REPLY)
        await until(lambda: peer.kinds(F.REPLY), "inline reply", peer)
        assert peer.kinds(F.REPLY)[0][3] == struct.pack("<I", 2) + b"re:light"
        assert peer.kinds(30)[0][3] == b"question"
    live(main)


class Crossing(Pair):
    """A pair logic that takes kind 31 as light only while a call of its own of kind 31 waits
    (as a controller answers busy a request crossing one of its own)."""

    def light(self, kind):
        return Pair.light(self, kind) or (kind == 31 and self.link.calling and self.link.call_kind == 31)


def test_a_kept_frame_the_handler_takes_as_light_once_a_later_call_waits_is_handled_inside_it():
    # kept during a call it did not cross, the frame is still there when a call it crosses
    # begins (the reader has not run between): that call handles it before waiting, so the two
    # controllers do not wait for each other
    async def main():
        pair = Crossing()
        link, log, peer = await connected(pair)
        try:
            peer.send(31, 2, 1, b"crossing")
            peer.send(F.REPLY, 3, 1, struct.pack("<I", 2) + b"first")        # to our call 2 (kind 30)
            await asyncio.sleep_ms(0)
            assert link.call(30, b"q1", 1000) == b"first"
            assert pair.got == [] and len(link.deferred) == 1
            peer.send(F.REPLY, 4, 1, struct.pack("<I", 3) + b"second")       # to our call 3 (kind 31)
            assert link.call(31, b"q2", 1000) == b"second"
            assert pair.got == [(31, 2, b"crossing")] and pair.during_call == [True]
            assert not link.deferred and link.defer_bytes == 0
        finally:
            link.close()
    run(main())


def test_a_frame_kept_while_a_light_reply_waited_for_room_is_asked_again_inside_the_call():
    # the window is full (our HELLO and call unacknowledged): the reply to the partner's light
    # request waits for room, and the frames read meanwhile are kept without being asked; the
    # one that crosses the call is still handled inside it
    async def main():
        pair = Crossing()
        link, log, peer = await connected(pair, window_frames=2)
        try:
            peer.send(LIGHT, 2, 0, b"light")
            peer.send(31, 3, 0, b"crossing")
            peer.send(F.ACK, 3, 2)                               # room, once read
            stepping(link)
            assert raises(L.LinkDown, link.call, 31, b"q", 200) == "no reply to kind 31 within 200 ms"
            assert pair.got == [(LIGHT, 2, b"light"), (31, 3, b"crossing")], pair.got
            assert pair.during_call == [True, True] and not link.deferred
        finally:
            link.close()
    run(main())


def test_a_call_keeps_at_most_its_bound_of_frames_for_later_and_loses_none():
    # 70 heavy frames before the reply: the call keeps 64, stops reading and times out; then the
    # reader handles all 70 in order, and the late reply finds nobody waiting
    async def main(pair, link, log, peer):
        peer.raw(b"".join(frame(HEAVY, seq, 1, b"%d" % seq) for seq in range(2, 72)))
        peer.send(F.REPLY, 72, 1, struct.pack("<I", 2) + b"late")
        stepping(link)
        assert raises(L.LinkDown, link.call, 30, b"question", 200) == "no reply to kind 30 within 200 ms"
        assert len(link.deferred) == L.DEFER_FRAMES and not pair.got and link.up
        await until(lambda: len(pair.got) == 70, "all handled")
        assert [g[1] for g in pair.got] == list(range(2, 72)) and log.texts("reply to request 2, which nobody")
    live(main)


def test_call_without_a_reply_fails_at_its_timeout_and_when_down():
    async def main(pair, link, log, peer):
        stepping(link)
        assert raises(L.LinkDown, link.call, 30, b"no answer", 100) == "no reply to kind 30 within 100 ms"
        assert link.up                              # the heartbeat decides about the link
        link.drop("cut")
        assert raises(L.LinkDown, link.call, 30, b"x", 100) == "cut"
        assert raises(ValueError, link.call, 5, b"x", 100) == "link: kind 5 is not a pair kind (16-255)"
    live(main)


def test_a_call_in_two_halves_lets_work_run_between_and_fails_cleanly():
    # post() sends at once; the answer is read by wait(); no second call meanwhile; a link lost
    # between the halves is the wait's LinkDown and leaves the link ready for the next call
    async def main(pair, link, log, peer):
        link.post(30, b"announce", 1000)
        assert raises(RuntimeError, link.call, 31, b"x", 100) == "link.call while a call waits"
        peer.send(F.REPLY, 2, 2, struct.pack("<I", 2) + b"noted")
        assert link.wait() == b"noted" and not link.calling
        await until(lambda: peer.kinds(30), "the request reached the peer", peer)
        assert peer.kinds(30)[0][3] == b"announce"
        link.post(30, b"again", 1000)
        link.drop("cut")
        assert raises(L.LinkDown, link.wait) == "cut" and not link.calling
    live(main)


# ---------- two links, and noise on the wire ----------
def test_the_dialer_logs_once_while_the_partner_is_away_and_connects_when_it_comes():
    async def main():
        ls, port = listen.bind("127.0.0.1", 0, 1)
        ls.close()                                       # a port nobody listens on, for now
        pa, pb = Pair(b"0"), Pair(b"1")
        log = Log()
        a = L.Link(0, ("127.0.0.1", port), pa, log, window_bytes=SMALL_WINDOW)
        pa.link = a
        a.start()
        await until(lambda: a.gen >= 3, "three dials")
        assert len(log.texts("partner not reached")) == 1, log.texts("")
        assert "127.0.0.1:%d" % port in log.texts("partner not reached")[0] and not pa.downs
        b = L.Link(1, ("127.0.0.1", port), pb, Log(), window_bytes=SMALL_WINDOW)
        pb.link = b
        b.start()
        await until(lambda: a.up and b.up, "up")
        assert pa.ups == [b'{"controller": "1"}'] and pb.ups == [b'{"controller": "0"}']
        a.close()
        b.close()
    run(main())


class Echo(Pair):
    # answers every request with its payload; records the numbers of the requests it saw
    def __init__(self, name):
        Pair.__init__(self, name)
        self.numbers = []

    def frame(self, kind, seq, payload):
        self.numbers.append(struct.unpack_from("<I", payload, 0)[0])
        self.link.reply(seq, payload)


async def pair_of_links():
    pa, pb = Echo(b"0"), Echo(b"1")
    b, lb = listening(pb, clock=time.ticks_ms)
    a = L.Link(0, ("127.0.0.1", b.port), pa, Log(), window_bytes=SMALL_WINDOW)
    pa.link = a
    a.start()
    await until(lambda: a.up and b.up, "pair up")
    return a, b, pa, pb


def test_megabyte_requests_cross_the_link_intact_through_a_one_frame_window():
    async def main():
        a, b, pa, pb = await pair_of_links()
        for i in range(3):
            data = struct.pack("<I", i) + bytes((i + k) & 0xFF for k in range(256)) * 4096    # 1 MiB
            assert await a.request(HEAVY, data) == data
        assert pb.numbers == [0, 1, 2] and a.bad_frames == b.bad_frames == 0
        a.close()
        b.close()
    run(main())


def test_random_noise_on_a_live_link_is_survived():
    # random bytes written into the wire between two frames, over and over, while requests go
    # both ways: every damaged stretch is logged and recovered (NAK and resend, or at worst a new
    # connection); no request gets another's reply, none is handled twice, nothing raises
    async def main():
        a, b, pa, pb = await pair_of_links()
        rnd = Rnd(11)
        answered = [0, 0]
        failed = [0]

        async def asker(link, side):
            for i in range(1, 200):
                data = struct.pack("<I", i) + bytes(rnd.getrandbits(6))
                try:
                    assert await link.request(HEAVY, data) == data
                    answered[side] += 1
                except L.LinkDown:
                    failed[0] += 1
                    while not link.up:
                        await asyncio.sleep_ms(5)
        tasks = [asyncio.create_task(asker(a, 0)), asyncio.create_task(asker(b, 1))]
        for _ in range(60):
            await asyncio.sleep_ms(rnd.getrandbits(3))
            link = a if rnd.getrandbits(1) else b
            if link.s is not None and not link.win.part and link.ctl_left is None:
                noise = bytes(rnd.getrandbits(8) for _ in range(1 + rnd.getrandbits(6)))
                link.s.write(noise)
        for t in tasks:
            while not t.done():
                await asyncio.sleep_ms(10)
        assert a.bad_frames + b.bad_frames > 0 and answered[0] + answered[1] + failed[0] == 2 * 199
        for pair in (pa, pb):
            seen = pair.numbers
            assert all(x < y for x, y in zip(seen, seen[1:])), "a request handled twice or out of order"
        await until(lambda: a.up and b.up, "up after the noise")
        assert await a.request(HEAVY, struct.pack("<I", 7777)) == struct.pack("<I", 7777)
        a.close()
        b.close()
    run(main())
