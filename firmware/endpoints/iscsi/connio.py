# Connection I/O: received bytes buffered from the socket, non-blocking sends that wait for the
# peer only when it is not reading, sends handed to the host ports' DMA engine (hw/dma.py), and
# the framing of PDUs (AHS, pad, digests) in the stream.
import asyncio
from micropython import const

from endpoints.listen import EAGAIN
from endpoints.iscsi import pdu as P
from endpoints.iscsi.pdu import get24, put24
from endpoints import ioready
from hw.dma import BUSY, FAILED, IDLE


_SINK = const(65536)
SMALL = const(4096)          # data segments up to this size go out in one write with the header
TAIL = const(8)              # what follows a data segment: pad and data digest
_ZERO = bytes(48)
# received bytes are taken from the socket up to _RB at a time: the headers of commands queued by
# the initiator then cost one read together instead of one each
_RB = const(8192)
_BHS = const(48)             # (pdu.BHS, folded here)
# how long a send on the main loop waits in place for the DMA engine to end the one before it on
# the same connection (its usual time: a 64 KiB write to the socket) before it waits as a coroutine
DMA_SPIN_US = const(300)


class Closed(Exception):
    pass


class Link:
    """The byte stream of one connection, as PDUs. `hd`/`dd` say whether header and data digests
    are in use (from the end of login); `stuck` is when a send began to wait for the peer."""

    def __init__(self, tgt, sock, port_no, peer):
        self.tgt = tgt
        self.s = sock
        self.waits = ioready.Waits(sock, keep=True)   # dropped before the close: cleanup
        self.port = port_no
        self.peer = peer             # source address (CHAP failures are counted per address)
        self.iname = "?"
        self.stuck = None            # ticks since when a send waits for the peer to take data
        self.opened = tgt.clock()    # ticks of the accept
        self.heard = False           # the header of a first PDU has come
        self.hdr = bytearray(P.BHS)
        self.hmv = memoryview(self.hdr)
        self.ahs = bytearray(1020)
        self.tx = bytearray(P.BHS + 4 + SMALL + 8)   # outgoing header, small data, digests
        self.txmv = memoryview(self.tx)
        self.dig = bytearray(4)
        self.pad = bytearray(4)
        self.sink = None
        self.rx = None               # small data segments (text, NOP pings)
        self.save = bytearray(TAIL)
        self.rb = bytearray(_RB)
        self.rbv = memoryview(self.rb)
        # views of rb that rx_now copies through, made once: a header at its start (a command
        # that came alone, as at queue depth 1), and the last other part (p << 14 | length: a
        # write's data after its header, at queue depth 1)
        self.rb0 = self.rbv[0:_BHS]
        self.lv = self.rb0
        self.lkey = _BHS
        self.rp = 0                  # unread bytes of rb: rp..re
        self.re = 0
        self.hd = False              # digests become active after login
        self.dd = False
        # the DMA engine's channel of this connection (-1: none yet, or none to be had) and when
        # its last send was handed over (the reaper times a send its peer does not take)
        self.dma = tgt.dma
        self.dj = -1
        self.dma_since = 0
        self.dma_ev = None           # what tx_idle waits on (made when first needed)

    # rx_now/tx_now are plain calls: when the socket is ready (the usual case under load) a PDU
    # costs no coroutine of its own; recv/send wait for readiness when it is not
    def rx_now(self, s, mv):
        """Bytes of mv filled now from what was received (0: none waiting); Closed when the peer is
        gone."""
        n = len(mv)
        k = self.re - self.rp
        if not k:
            if n >= _RB:
                return self.read_now(s, mv)   # a large segment: straight into place
            k = self.read_now(s, self.rb)
            if not k:
                return 0
            self.rp = 0
            self.re = k
        if k > n:
            k = n
        p = self.rp
        if k == _BHS and not p:
            mv[0:k] = self.rb0
        elif p << 14 | k == self.lkey:
            mv[0:k] = self.lv
        else:
            v = self.rbv[p:p + k]
            mv[0:k] = v
            self.lv = v
            self.lkey = p << 14 | k
        self.rp = p + k
        return k

    def read_now(self, s, mv):
        try:
            r = s.readinto(mv)
        except OSError as e:
            if e.errno in EAGAIN:
                return 0
            raise Closed()
        if r is None:
            return 0
        if not r:
            raise Closed()
        return r

    def tx_now(self, s, mv):
        """Bytes of mv the socket took now (0: its buffer is full)."""
        try:
            r = s.write(mv)
        except OSError as e:
            if e.errno in EAGAIN:
                return 0
            raise Closed()
        return r or 0

    def tx_at(self, s, buf, off, n):
        """tx_now of buf[off:off + n], without making a view of it."""
        try:
            r = s.write(buf, off, n)
        except OSError as e:
            if e.errno in EAGAIN:
                return 0
            raise Closed()
        return r or 0

    # ---------- the send in flight on the DMA engine: nothing else goes out before its end
    def tx_free(self):
        """Whether this connection may send now: no DMA send of it in flight (waiting
        DMA_SPIN_US for one to end). Closed when the socket failed under that send."""
        j = self.dj
        if j < 0:
            return True
        st = self.dma.st
        if st[j] == BUSY and not self.dma.wait(j, DMA_SPIN_US):
            return False
        if st[j] == FAILED:
            raise Closed()
        return True

    async def tx_idle(self):
        # until the DMA send in flight has ended (its end is told: Flow.go_on); Closed if it failed
        j = self.dj
        while j >= 0 and not self.dma.wait(j, 0):
            if self.dma_ev is None:
                self.dma_ev = asyncio.Event()
            self.dma_ev.clear()
            await self.dma_ev.wait()
        self.tx_free()

    async def later(self, fn, *args):
        # fn(*args) (a send, a plain call or its awaitable) once the DMA send in flight has ended
        await self.tx_idle()
        aw = fn(*args)
        if aw is not None:
            await aw

    def dma_channel(self):
        """Whether this connection has a channel of the DMA engine (taken now if it can be)."""
        if self.dj < 0 and self.dma is not None:
            self.dj = self.dma.open()
        return self.dj >= 0

    def dma_send(self, buf, off, n):
        # hands buf[off:off + n] to the DMA engine (a channel held, tx_free() said yes)
        self.dma_since = self.tgt.clock()
        self.dma.send(self.dj, self.s, buf, off, n)

    def dma_close(self):
        """Before the socket closes: the thread lets go of it. False if it never did (the socket
        must then stay open, its descriptor never reused under the thread)."""
        j = self.dj
        if j < 0:
            return True
        if not self.dma.close(j):
            self.tgt.log("error", "iSCSI port %d: the DMA engine did not let go of the connection "
                         "of %s; its socket stays open" % (self.port, self.iname))
            return False
        self.dj = -1
        return True

    async def recv(self, mv):
        got = self.rx_now(self.s, mv)
        if got < len(mv):
            await self.recv_rest(mv, got)

    async def recv_rest(self, mv, got):
        s = self.s
        n = len(mv)
        while got < n:
            r = self.rx_now(s, mv[got:] if got else mv)
            if r:
                got += r
            else:
                self.waits.readable()
                yield                   # to the scheduler until then (endpoints/ioready.py)

    async def send(self, mv):
        s = self.s
        n = len(mv)
        off = self.tx_now(s, mv)
        if off < n:   # the peer is not reading: the reaper closes us if it stays so
            mine = self.stuck is None   # else a Data-In sequence is timed as a whole
            if mine:
                self.stuck = self.tgt.clock()
            while off < n:
                self.waits.writable()
                yield                   # to the scheduler until then (endpoints/ioready.py)
                off += self.tx_now(s, mv[off:])
            if mine:
                self.stuck = None

    # ---------- reading PDUs ----------
    async def header_ext(self):
        """The AHS and header digest of the BHS in self.hdr; returns the data segment length."""
        h = self.hdr
        ahs = h[4] * 4
        if ahs:
            await self.recv(memoryview(self.ahs)[:ahs])
        if self.hd:
            await self.recv(self.dig)
            c = P.crc32c(self.hdr)
            if ahs:
                c = P.crc32c(memoryview(self.ahs)[:ahs], c)
            if c != P.get_le32(self.dig, 0):
                self.tgt.log("warn", "iSCSI port %d: header digest error from %s" % (self.port, self.iname))
                raise Closed()   # the framing cannot be trusted any more
        return get24(h, 5)

    async def read_data(self, dst, n, extra=0):
        """Read an n-byte data segment: into dst (a memoryview of at least n bytes) or, when
        dst is None, discard it; `extra` further bytes (n excluded) are discarded too.
        Returns False on a data digest error (the data must not be used)."""
        total = n + extra
        crc = 0
        if dst is not None and n:
            await self.recv(dst[:n] if len(dst) != n else dst)
            if self.dd:
                crc = P.crc32c(dst[:n] if len(dst) != n else dst)
            left = extra
        else:
            left = total
        if left:
            if self.sink is None:
                self.sink = bytearray(_SINK)
            sm = memoryview(self.sink)
            while left:
                k = min(left, _SINK)
                await self.recv(sm[:k])
                if self.dd:
                    crc = P.crc32c(sm[:k], crc)
                left -= k
        padn = -total & 3
        if padn:
            pm = memoryview(self.pad)[:padn]
            await self.recv(pm)
            if self.dd:
                crc = P.crc32c(pm, crc)
        if self.dd and total:
            await self.recv(self.dig)
            return crc == P.get_le32(self.dig, 0)
        return True

    async def read_small(self, n, limit):
        """Data segment of a text-like PDU into self.rx; returns bytes or None if too long/bad."""
        if n > limit:
            await self.read_data(None, 0, n)
            return None
        if self.rx is None or len(self.rx) < n:
            self.rx = bytearray(max(n, 8192))
        mv = memoryview(self.rx)[:n]
        ok = await self.read_data(mv, n)
        return bytes(mv) if ok else None

    # ---------- writing PDUs ----------
    def begin(self, op, flags=0):
        if self.dj >= 0 and self.dma.st[self.dj] != IDLE:
            self.cut_in()
        t = self.tx
        t[0:48] = _ZERO
        t[0] = op
        t[1] = flags
        return t

    async def emit(self, data=None, n=0):
        """Send the PDU whose header is in self.tx with n bytes of data (bytes-like)."""
        if n <= SMALL:
            aw = self.emit_now(data, n)
            if aw is not None:
                await aw
            return
        hl = self.head(n)
        padn = -n & 3
        await self.send(self.txmv[:hl])
        if n:
            dm = memoryview(data)
            if len(dm) != n:
                dm = dm[:n]
            await self.send(dm)
            if padn:
                await self.send(memoryview(self.pad)[:padn])
            if self.dd:
                c = P.crc32c(dm)
                if padn:
                    c = P.crc32c(memoryview(self.pad)[:padn], c)
                P.put_le32(self.dig, 0, c)
                await self.send(self.dig)

    def cut_in(self):
        # a PDU begun while a DMA send of this connection is in flight: every path waits for its
        # end first (tx_free, tx_idle), so this is a slip of this code, never the peer's doing.
        # It waits a moment; the stream is never cut into: the connection ends instead
        if not self.tx_free():
            self.tgt.log("error", "iSCSI port %d: a PDU to %s was begun while a send was in "
                         "flight: connection closed" % (self.port, self.iname))
            raise Closed()

    def head(self, n):
        # the data segment length and header digest of the PDU in self.tx: its header's length
        put24(self.tx, 5, n)
        if self.hd:
            P.put_le32(self.tx, P.BHS, P.crc32c(self.txmv[:P.BHS]))
            return P.BHS + 4
        return P.BHS

    def emit_now(self, data=None, n=0):
        """emit() as a plain call: a PDU of at most SMALL data bytes goes out in one write from the
        preallocated buffer; None once the socket took it whole, else the awaitable that sends the
        rest (a larger PDU: emit())."""
        if n > SMALL:
            return self.emit(data, n)
        t = self.tx
        hl = self.head(n)
        if n:
            t[hl:hl + n] = data[:n] if len(data) != n else data
        end = hl + n
        for i in range(-n & 3):
            t[end + i] = 0
        end += -n & 3
        if self.dd and n:
            P.put_le32(t, end, P.crc32c(self.txmv[hl:end]))
            end += 4
        w = self.tx_at(self.s, t, 0, end)
        if w == end:
            return None
        return self.send(self.txmv[w:end])

    def frame(self, mv, hs, at, n):
        """Complete the PDU whose header is at mv[hs:at] and whose n (> 0) data bytes follow, for
        one write: header digest, pad and data digest go around them. Returns the trailer length;
        the bytes it covers (the next PDU's data) are kept in self.save to be put back."""
        if self.hd:
            P.put_le32(mv, at - 4, P.crc32c(mv[hs:hs + P.BHS]))
        end = at + n
        padn = -n & 3
        tl = padn + 4 if self.dd else padn
        if tl:
            memoryview(self.save)[:tl] = mv[end:end + tl]
            for i in range(padn):
                mv[end + i] = 0
            if self.dd:
                P.put_le32(mv, end + padn, P.crc32c(mv[at:end + padn]))
        return tl
