# The back-end link of a controller pair (linkproto.md): one TCP connection to the partner
# controller standing for the DAC960's back-end channels. Reliable, ordered delivery of numbered
# frames (acknowledgements, NAK and resend after a damaged frame), a heartbeat and loss detection,
# requests with replies, and call(): a request that blocks until its reply, for code that cannot
# await. What the frames mean is the pair logic's (the `handler`); this module only carries them.
#
# The handler: hello() -> bytes of our HELLO; link_up(payload) when the partner's HELLO came;
# link_down(reason) once per connection that was up; light(kind) -> whether a pair frame may be
# handled while a call() waits; frame(kind, seq, payload) for each pair frame (payload: a
# memoryview valid during the call; frame may call reply()).
import asyncio
import errno
import select
import socket
import struct
import time
from micropython import const

from endpoints import ioready
from endpoints import listen
from endpoints.listen import EAGAIN
from endpoints.link import frame as F
from endpoints.link.window import Window

WINDOW_FRAMES = const(64)
WINDOW_BYTES = const(4 << 20)
TOO_MANY_BAD = const(16)       # damaged frames in a row that end the connection
ACK_MS = const(2)              # an ACK waits this long for a frame of ours to carry it ...
ACK_EVERY = const(16)          # ... unless this many frames wait for it
DEFER_FRAMES = const(64)       # pair frames a blocked call() keeps for the reader, at most ...
DEFER_BYTES = const(2 << 20)   # ... and their bytes
SLICE = const(64)              # frames the reader handles before it lets the other endpoints run
SPIN_US = const(500)           # a call() waits this long on the CPU before it sleeps in poll(): its
                               # controller has nothing else to do, and waking from poll() costs
                               # more than the partner's answer (linkproto.md "Calls")

# what the frames taken from the parser may reach (_take): everything (the async reader), light
# pair frames only (a call() waiting for its reply), no pair frame (waiting for room to send)
_ALL = const(0)
_LIGHT = const(1)
_NONE = const(2)


class LinkDown(Exception):
    pass


def _sequenced(kind):
    # HB, ACK, NAK and BYE are not numbered: they carry the highest number sent instead
    return kind == F.HELLO or kind == F.REPLY or kind >= F.FIRST_PAIR_KIND


class _Waiter:
    # a request() waiting for its REPLY
    def __init__(self):
        self.ev = asyncio.Event()
        self.data = None
        self.err = None


class Link:
    """The link to the partner. Controller 0 dials addr (the partner's link address), controller
    1 listens on addr (its own). `events` is the event log; `clock` gives the ms ticks that time
    heartbeats and loss (tests drive their own)."""

    def __init__(self, me, addr, handler, events, clock=time.ticks_ms, hb_ms=50, dead_ms=500,
                 window_frames=WINDOW_FRAMES, window_bytes=WINDOW_BYTES):
        self.me = me
        self.addr = addr
        self.handler = handler
        self.events = events
        self.clock = clock
        self.hb_ms = hb_ms
        self.dead_ms = dead_ms
        self.win = Window(window_frames, window_bytes)
        self.p = F.Parser(self.bad)
        self.spares = []              # parsers free to read on while a handler holds a payload
        self.cb = bytearray(F.HDR)    # HB, ACK and NAK are encoded here
        self.cbv = memoryview(self.cb)
        self.tag = bytearray(4)       # the request number that begins a REPLY
        self.s = None                 # the connection
        self.who = ""
        self.poller = None
        self.tasks = []               # the connection's reader and writer
        self.service = []             # dialer or acceptor, ticker
        self.ls = None
        self.port = addr[1]           # the port listened on (controller 1; port 0 picks one)
        self.ai = None
        self.up = False
        self.held = False
        self.gen = 0                  # connections so far
        self.why = "not connected"    # how the last connection ended
        self.unreachable = False      # a failed dial was logged: the next ones are not
        self.calling = False
        self.pending = {}             # request number -> _Waiter
        self.kick = asyncio.Event()   # wakes the writer
        self.room = asyncio.Event()   # the window has room again (or the link went down)
        self.frames_in = 0
        self.frames_out = 0
        self.bad_frames = 0
        self.resyncs = 0
        self.retransmits = 0
        self.dropped = 0              # frames dropped as out of order
        self.faults = 0               # what the partner did wrong (damaged frames included)
        self.reset()

    def reset(self):
        # the state of one connection
        self.win.reset()
        self.p.reset()
        self.next_seq = 1
        self.tx_hi = 0                # highest number written to the socket
        self.rx_seq = 0               # highest number received in order
        self.ack_sent = 0             # highest ack written to the socket
        self.ack_now = False
        self.hb_due = False
        self.nak_due = False
        self.nak_at = 0
        self.gap = False              # frames were lost: NAK until the partner sends again
        self.gap_logged = False
        self.ctl_left = None          # the rest of a control frame the socket has not taken
        self.bad_run = 0
        self.deferred = []            # (kind, seq, payload copy) a call() kept for the reader
        self.defer_bytes = 0
        self.drainer = None           # the task that hands them over once the loop runs again
        self.call_seq = 0
        self.call_reply = None
        self.call_kind = self.call_ms = self.call_deadline = 0
        now = self.clock()
        self.last_rx = now
        self.last_tx = now

    # ---------- life of the link ----------
    def start(self):
        """Dial (controller 0) or listen (controller 1; OSError when the address cannot be bound)."""
        if self.me:
            self.ls, self.port = listen.bind(self.addr[0], self.addr[1], 2)
            self.service.append(asyncio.create_task(listen.accept(self.ls, self.accept)))
        else:
            self.service.append(asyncio.create_task(self.dialer()))
        self.service.append(asyncio.create_task(self.ticker()))

    def close(self):
        """Ends the link for good: a BYE to the partner, no reconnection."""
        if self.s is not None and not self.win.part and self.ctl_left is None:
            self.bye(self.s, "partner shutting down")
        self.drop("closed by command")
        _cancel(self.service)
        self.service = []
        if self.ls is not None:
            self.ls.close()
            self.ls = None

    def hold(self, flag):
        """While held the link does not connect again (dials nothing, refuses the partner)."""
        self.held = bool(flag)

    async def dialer(self):
        while True:
            if self.s is None and not self.held:
                self.dial()
            await asyncio.sleep_ms(self.hb_ms)

    def dial(self):
        host, port = self.addr
        try:
            if self.ai is None:
                self.ai = socket.getaddrinfo(host, port)[0]
            s = socket.socket(self.ai[0], socket.SOCK_STREAM)
        except OSError as e:
            self.not_reached("%s:%d: %s" % (host, port, _text(e)))
            return
        s.setblocking(False)
        try:
            s.connect(self.ai[-1])
        except OSError as e:
            if e.errno != errno.EINPROGRESS:
                s.close()
                self.not_reached("%s:%d: %s" % (host, port, _text(e)))
                return
        self.adopt(s, "%s:%d" % (host, port))

    def accept(self, s, addr):
        who = listen.show(listen.peer(addr))
        if self.s is not None or self.held:
            why = "partner already connected" if self.s is not None else "link held"
            self.fault("warn", "link: connection from %s refused: %s" % (who, why))
            self.bye(s, why)
            s.close()
            return
        self.adopt(s, who)

    def adopt(self, s, who):
        # a new connection: both ends begin with HELLO
        try:
            s.setsockopt(6, 1, 1)   # IPPROTO_TCP, TCP_NODELAY: a frame goes out at once
        except OSError:
            pass
        self.reset()
        self.s = s
        self.who = who
        self.gen += 1
        self.poller = select.poll()
        self.poller.register(s, select.POLLIN)
        self.tasks = [asyncio.create_task(self.reader(s)), asyncio.create_task(self.writer(s))]
        try:
            hello = self.handler.hello()
        except Exception as e:   # the pair logic's failure: no HELLO, no connection
            self.drop("no HELLO to send: %r" % e)
            return
        self.queue(F.HELLO, hello)
        self.flush()

    def drop(self, reason="closed by command"):
        """Closes the connection without a word (as a cut cable does); link_down(reason) when it was
        up. Requests waiting for a reply fail with LinkDown. The dialer connects again unless held."""
        s = self.s
        if s is None:
            return
        self.s = None
        was_up = self.up
        self.up = False
        self.why = reason
        if self.drainer is not None:
            self.tasks.append(self.drainer)
        _cancel(self.tasks)
        self.tasks = []
        try:
            s.close()
        except OSError:
            pass
        for w in self.pending.values():
            w.err = reason
            w.ev.set()
        self.pending = {}
        self.deferred = []
        self.defer_bytes = 0
        self.room.set()
        if was_up:
            self.log("warn", "link down: %s" % reason)
            self.tell("link_down", self.handler.link_down, reason)
        elif self.me:
            self.fault("info", "link: connection from %s closed before its HELLO: %s" % (self.who, reason))
        else:
            self.not_reached("%s: %s" % (self.who, reason))

    def not_reached(self, why):
        # dialing fails every hb_ms while the partner is away: the first failure is logged
        if not self.unreachable:
            self.unreachable = True
            self.log("warn", "link: partner not reached (%s); dialing again every %d ms" % (why, self.hb_ms))

    async def ticker(self):
        while True:
            await asyncio.sleep_ms(max(1, self.hb_ms // 2))
            self.tick()

    def tick(self):
        """Loss detection, heartbeat and repeated NAK, on the link's clock (the ticker calls it
        every hb_ms/2, a blocked call() every time it wakes)."""
        if self.s is None:
            return
        now = self.clock()
        if time.ticks_diff(now, self.last_rx) >= self.dead_ms:
            self.drop("heartbeat lost after %d ms" % self.dead_ms)
            return
        if self.gap and time.ticks_diff(now, self.nak_at) >= self.hb_ms:
            self.nak_due = True
        if self.rx_seq > self.ack_sent:
            self.ack_now = True       # a call's reply, or frames taken while the loop was blocked
        if time.ticks_diff(now, self.last_tx) >= self.hb_ms:
            self.hb_due = True
        self.flush()

    # ---------- sending ----------
    async def send(self, kind, payload):
        """Sends pair frame `kind`; returns its number. Waits while the window is full; LinkDown
        when the link is down or goes down meanwhile."""
        _pair(kind)
        _fits(payload)
        gen = self.gen
        while True:
            if not self.up or self.gen != gen:
                raise LinkDown(self.why)
            seq = self.queue(kind, payload)
            if seq:
                self.flush()
                return seq
            self.room.clear()
            await self.room.wait()

    async def request(self, kind, payload):
        """Sends a pair frame and returns the payload of the partner's REPLY to it (a copy)."""
        seq = await self.send(kind, payload)
        w = _Waiter()
        self.pending[seq] = w
        try:
            await w.ev.wait()
        finally:
            self.pending.pop(seq, None)
        if w.err is not None:
            raise LinkDown(w.err)
        return w.data

    def reply(self, req_seq, payload=b"", gen=0):
        """Answers the partner's request req_seq. Never waits for the event loop: when the window
        is full it blocks until the partner acknowledges (at most dead_ms). A reply given after
        handler.frame returned passes `gen`, the link's gen when the request came: numbers start
        again on each connection, and an answer must not reach a newer request of the same number."""
        if gen and gen != self.gen:
            raise LinkDown("request %d came on an earlier connection" % req_seq)
        struct.pack_into("<I", self.tag, 0, req_seq)
        parts = [self.tag]
        if isinstance(payload, (list, tuple)):
            parts.extend(payload)
        else:
            parts.append(payload)
        _fits(parts)
        if not self.up:
            raise LinkDown(self.why)
        if not self.queue(F.REPLY, parts):
            self.queue_blocking(F.REPLY, parts, time.ticks_add(self.clock(), self.dead_ms))
        self.flush()

    def call(self, kind, payload, timeout_ms):
        """Sends pair frame `kind` and blocks (no await) until the partner's REPLY to it, whose
        payload it returns (a copy). While it waits it takes what comes: link frames, and pair
        frames the handler calls light, which it handles at once; other pair frames wait for the
        reader. LinkDown when the link drops or no reply came within timeout_ms."""
        self.post(kind, payload, timeout_ms)
        return self.wait()

    def post(self, kind, payload, timeout_ms):
        """call() in two halves: post() sends the request and returns at once, wait() gives the
        reply. Between them the controller may work on (the partner answers meanwhile), but
        makes no other call() and does not let the event loop run."""
        _pair(kind)
        _fits(payload)
        if self.calling:
            raise RuntimeError("link.call while a call waits")
        if not self.up:
            raise LinkDown(self.why)
        self.call_kind, self.call_ms = kind, timeout_ms
        self.call_deadline = time.ticks_add(self.clock(), timeout_ms)
        self.calling = True
        self.call_reply = None
        try:
            self.call_seq = self.queue(kind, payload) or self.queue_blocking(kind, payload, self.call_deadline)
            self.flush()
        except BaseException:
            self.called()
            raise

    def wait(self):
        """The reply to the request post() sent (see call())."""
        try:
            self.light_kept()
            kept = len(self.deferred)
            self.spin()
            while self.call_reply is None:
                if len(self.deferred) > kept:
                    # (a light handler's reply that waited for room kept frames without asking)
                    self.light_kept(kept)
                kept = len(self.deferred)
                if not self.block(self.call_deadline, _LIGHT):
                    raise LinkDown("no reply to kind %d within %d ms" % (self.call_kind, self.call_ms))
            # no ACK for the reply now: our next frame carries it, else the ticker's (tick), so
            # a stream of calls wakes neither the partner nor our writer for ACKs
            return self.call_reply
        finally:
            self.called()

    def light_kept(self, i=0):
        # frames kept for the reader (from the i-th) that the handler takes as light now that this
        # call waits (pair: a request that crosses it, which would otherwise wait for this call
        # while this call waits for the partner) are handled here; the others stay, in order
        while i < len(self.deferred):
            kind, seq, data = self.deferred[i]
            if self.handler.light(kind):
                del self.deferred[i]
                self.defer_bytes -= len(data)
                self.handle(kind, seq, data, False)
            else:
                i += 1

    def called(self):
        self.calling = False
        self.call_seq = 0
        self.call_reply = None

    def spin(self):
        # a call's first SPIN_US: read without sleeping, as long as the frame went out whole and
        # the kept frames have room
        s = self.s
        t0 = time.ticks_us()
        while s is not None and self.call_reply is None and self.s is s and not self.win.part \
                and not self.kept_full():
            if self.read(s) > 0:
                self.take(_LIGHT)
                if self.rx_seq - self.ack_sent >= ACK_EVERY:
                    self.ack_now = True
                    self.flush()
            elif time.ticks_diff(time.ticks_us(), t0) >= SPIN_US:
                return

    def queue(self, kind, payload):
        """Encodes a numbered frame into the window; its number, 0 when the window is full."""
        n = F.HDR + F.size(payload)
        off = self.win.room(n)
        if off < 0:
            return 0
        seq = self.next_seq
        F.encode(self.win.mv[off:off + n], kind, seq, self.rx_seq, payload)
        self.win.add(off, n, seq, self.rx_seq)
        self.next_seq = seq + 1
        return seq

    def queue_blocking(self, kind, payload, deadline):
        # queue(), waiting for acknowledgements without the event loop
        while True:
            seq = self.queue(kind, payload)
            if seq:
                return seq
            if not self.block(deadline, _NONE):
                raise LinkDown("send window full until the deadline")

    def flush(self):
        # what the socket takes now; the writer waits for it to take the rest
        if not self.pump():
            self.kick.set()

    async def writer(self, s):
        waits = ioready.Waits(s)
        while self.s is s:
            if not self.pump():
                waits.writable()
                yield                   # to the scheduler until then (endpoints/ioready.py)
                continue
            if self.rx_seq > self.ack_sent and not self.ack_now:
                await asyncio.sleep_ms(ACK_MS)   # a frame of ours may carry the ack meanwhile
                self.ack_now = True
                continue
            self.kick.clear()
            await self.kick.wait()

    def pump(self):
        """Writes what the socket takes now: due control frames between two frames, then the
        window's frames. True when nothing is left to write."""
        s = self.s
        win = self.win
        while self.s is s and s is not None:
            mv = self.ctl_left
            if mv is None and not win.part:
                mv = self.control()
            ctl = mv is not None
            if not ctl:
                mv = win.next_out()
                self.retransmits += win.resent
                if mv is None:
                    return True
            k = self.write(s, mv)
            if k <= 0:
                if ctl:
                    self.ctl_left = mv
                return k < 0
            self.last_tx = self.clock()
            if ctl:
                self.ctl_left = mv[k:] if k < len(mv) else None
                self.frames_out += k == len(mv)
            else:
                self.wrote_frame(win.wrote(k))
        return True

    def control(self):
        # the control frame due now (encoded in self.cb), or None
        if self.nak_due:
            kind = F.NAK
            self.nak_due = False
            self.nak_at = self.clock()
        elif self.ack_now and self.rx_seq > self.ack_sent:
            kind = F.ACK
        elif self.hb_due:
            kind = F.HB
        else:
            return None
        self.ack_now = self.hb_due = False
        F.encode(self.cb, kind, self.tx_hi, self.rx_seq)
        self.ack_sent = self.rx_seq
        return self.cbv

    def wrote_frame(self, i):
        if i < 0:
            return
        win = self.win
        self.frames_out += 1
        if win.acks[i] > self.ack_sent:
            self.ack_sent = win.acks[i]
            self.ack_now = self.ack_now and self.rx_seq > self.ack_sent
        if win.seqs[i] > self.tx_hi:
            self.tx_hi = win.seqs[i]

    def write(self, s, mv):
        # bytes of mv the socket took (0: none now; -1: the connection is gone)
        try:
            return s.write(mv) or 0
        except OSError as e:
            if e.errno in EAGAIN:
                return 0
            self.drop("socket error: %s" % _text(e))
            return -1

    def bye(self, s, why):
        # a last word on a connection about to close (best effort: it is not waited for)
        b = bytearray(F.HDR + len(why))
        F.encode(b, F.BYE, 0, 0, why.encode())
        try:
            s.write(b)
        except OSError:
            pass

    # ---------- receiving ----------
    async def reader(self, s):
        waits = ioready.Waits(s)
        while self.s is s:
            n = self.read(s)
            if n == 0:
                waits.readable()
                yield                   # to the scheduler until then (endpoints/ioready.py)
            elif n > 0:
                while self.take(_ALL, SLICE):
                    self.ack_soon()
                    await asyncio.sleep_ms(0)   # a long burst: the other endpoints run between slices
                self.ack_soon()

    def read(self, s):
        """Bytes read into the parser now: 0 when none are waiting, -1 when the connection ended."""
        if self.p.lends:
            self.swap()
        try:
            n = s.readinto(self.p.space())
        except OSError as e:
            if e.errno in EAGAIN:
                return 0
            self.drop("socket error: %s" % _text(e))
            return -1
        if n is None:
            return 0
        if not n:
            self.drop("eof")
            return -1
        self.p.fed(n)
        return n

    def swap(self):
        # a handler holds a payload in the parser and wants more frames read (its call()): the
        # unread bytes move to a free parser, which reads on; the old one is free once no
        # handler holds its payloads (handle)
        q = self.spares.pop() if self.spares else F.Parser(self.bad)
        q.take_over(self.p)
        self.p = q

    def take(self, mode, limit=-1):
        """Handles the complete frames the parser holds, as `mode` allows (_ALL, _LIGHT, _NONE);
        True when it stopped at `limit` frames with more to do."""
        s = self.s
        while self.s is s and s is not None:
            if not limit:
                return True
            limit -= 1
            if mode == _ALL:
                if self.deferred:
                    self.drain()
                    continue
            elif self.kept_full():
                return False
            k = self.p.next()
            if k == F.NEED:
                return False
            if k == F.BAD:
                if self.bad_run >= TOO_MANY_BAD:
                    self.drop("bad frames: too many")
                continue
            self.frame(k, mode)

    def bad(self, reason, offset):
        # the parser's report of a damaged frame: NAK, so the partner sends again from the last good one
        self.bad_frames += 1
        self.bad_run += 1
        self.fault("error", "link: bad frame from partner at byte %d: %s (resyncing)" % (offset, reason))
        self.gap = True
        self.nak_due = True

    def frame(self, kind, mode):
        p = self.p
        seq = p.seq
        self.frames_in += 1
        self.last_rx = self.clock()
        if self.bad_run:
            self.bad_run = 0
            self.resyncs += 1
        self.acked(p.ack)
        if not _sequenced(kind):
            self.control_in(kind, seq, p.payload)
            return
        if seq != self.rx_seq + 1:
            self.out_of_order(seq)
            return
        self.rx_seq = seq
        self.gap = self.gap_logged = False
        if kind == F.HELLO:
            self.hello(p.payload)
        elif not self.up:
            self.drop("partner sent frame %d (kind %d) before its HELLO" % (seq, kind))
        elif kind == F.REPLY:
            self.reply_in(p.payload)
        elif mode == _ALL or (mode == _LIGHT and self.handler.light(kind)):
            self.handle(kind, seq, p.payload, True)
        else:
            self.defer(kind, seq, p.payload)

    def control_in(self, kind, seq, payload):
        # HB, ACK, NAK, BYE: `seq` is the highest number the partner has sent
        if kind == F.NAK:
            self.fault("warn", "link: partner asks for the frames after %d again" % self.p.ack)
            self.win.rewind = True
            self.flush()
        elif kind == F.BYE:
            self.drop("closed by partner: %s" % _said(payload[:80]))
        elif self.gap and seq == self.rx_seq:
            self.gap = False          # the damaged frame was not a numbered one: nothing to resend

    def out_of_order(self, seq):
        # TCP keeps order: a number other than the next follows a damaged frame (or is a frame
        # sent again after our NAK that we already have); dropped, the partner sends again
        self.dropped += 1
        if seq <= self.rx_seq:
            return
        if not self.gap_logged:
            self.gap_logged = True
            self.fault("warn", "link: frame %d dropped, %d expected: the partner sends again from there"
                     % (seq, self.rx_seq + 1))
        if not self.gap:
            self.gap = True
            self.nak_due = True

    def acked(self, ack):
        if ack > self.tx_hi:
            self.fault("error", "link: partner acknowledges frame %d, only %d sent (ignored)" % (ack, self.tx_hi))
        elif self.win.release(ack):
            self.room.set()

    def ack_soon(self):
        # an ACK at once when many frames wait for it, else after ACK_MS unless a frame carries it
        if self.rx_seq - self.ack_sent >= ACK_EVERY:
            self.ack_now = True
            self.flush()
        elif self.rx_seq > self.ack_sent:
            self.kick.set()

    def hello(self, payload):
        if self.up:
            self.fault("warn", "link: second HELLO on one connection ignored")
            return
        self.up = True
        self.unreachable = False
        self.log("info", "link up: partner at %s" % self.who)
        self.tell("link_up", self.handler.link_up, bytes(payload))

    def reply_in(self, payload):
        if len(payload) < 4:
            self.fault("error", "link: REPLY of %d bytes has no request number (ignored)" % len(payload))
            return
        req = struct.unpack_from("<I", payload, 0)[0]
        if req == self.call_seq:
            self.call_reply = bytes(payload[4:])
            return
        w = self.pending.get(req)
        if w is None:
            self.fault("warn", "link: reply to request %d, which nobody waits for (ignored)" % req)
            return
        w.data = bytes(payload[4:])
        w.ev.set()

    def handle(self, kind, seq, payload, lent):
        # lent: the payload is in the parser, which must then keep it while the handler runs
        p = self.p
        p.lends += lent
        try:
            self.handler.frame(kind, seq, payload)
        except Exception as e:   # the pair logic's failure must not take the link down
            self.log("error", "link: handling frame %d (kind %d) failed: %r" % (seq, kind, e))
        p.lends -= lent
        if lent and not p.lends and p is not self.p:
            self.spares.append(p)

    def defer(self, kind, seq, payload):
        # a pair frame a blocked call() cannot handle: a copy waits for the reader
        if self.drainer is None:
            self.drainer = asyncio.create_task(self.drain_soon(self.s))
        self.deferred.append((kind, seq, bytes(payload)))
        self.defer_bytes += len(payload)

    async def drain_soon(self, s):
        # the kept frames, then what the call left in the parser (its bound may have stopped it)
        await asyncio.sleep_ms(0)
        if self.s is s:
            self.drainer = None
            while self.take(_ALL, SLICE):
                await asyncio.sleep_ms(0)

    def kept_full(self):
        return len(self.deferred) >= DEFER_FRAMES or self.defer_bytes >= DEFER_BYTES

    def drain(self):
        s = self.s
        while self.deferred and self.s is s:
            kind, seq, data = self.deferred.pop(0)
            self.defer_bytes -= len(data)
            self.handle(kind, seq, data, False)

    def block(self, deadline, mode):
        """Waits without the event loop (at most hb_ms at a time) for the socket and takes what
        came as `mode` allows. False once the deadline passed; LinkDown when the link dropped."""
        gen = self.gen
        if not self.up:
            raise LinkDown(self.why)
        left = time.ticks_diff(deadline, self.clock())
        if left <= 0:
            return False
        s = self.s
        mask = 0 if self.pump() else select.POLLOUT
        if self.s is not s:
            raise LinkDown(self.why)
        if not self.kept_full():
            mask |= select.POLLIN
        else:
            self.last_rx = self.clock()   # not reading is our doing, not the partner's silence
        self.poller.modify(s, mask)
        for _ in self.poller.ipoll(min(left, self.hb_ms)):
            pass
        self.take(mode)
        # take() stops early only when the kept frames are at their bound: the parser may then
        # hold whole frames, and reading waits
        if self.s is s and not self.kept_full() and self.read(s) > 0:
            self.take(mode)
        self.tick()                   # the loop is blocked: the ACKs due go out from here
        if self.gen != gen or not self.up:
            raise LinkDown(self.why)
        return True

    def fault(self, level, text):
        # what the partner did wrong: the first 8 and then the 16th, 32nd, 64th... are logged, so
        # a misbehaving partner cannot flood the event log
        self.faults += 1
        n = self.faults
        if n <= 8:
            self.log(level, text)
        elif not n & (n - 1):
            self.log(level, "%s (%d partner faults so far)" % (text, n))

    def tell(self, what, fn, arg):
        try:
            fn(arg)
        except Exception as e:
            self.log("error", "link: %s handler failed: %r" % (what, e))

    def log(self, level, text):
        try:
            self.events.log(level, text)
        except Exception:   # logging must never take the link down
            pass


def _pair(kind):
    if not F.FIRST_PAIR_KIND <= kind <= 255:
        raise ValueError("link: kind %d is not a pair kind (16-255)" % kind)


def _fits(payload):
    if F.size(payload) > F.MAX_PAYLOAD:
        raise ValueError("link: payload of %d bytes over %d" % (F.size(payload), F.MAX_PAYLOAD))


def _said(payload):
    # the partner's text, as far as it is UTF-8
    try:
        return str(bytes(payload), "utf-8")
    except UnicodeError:
        return repr(bytes(payload))


def _text(e):
    return errno.errorcode.get(e.errno, str(e.errno)) if isinstance(e, OSError) else repr(e)


def _cancel(tasks):
    try:
        me = asyncio.current_task()
    except Exception:   # not inside the event loop
        me = None
    for t in tasks:
        if t is not me:
            t.cancel()
