# Command and data flow: SCSI commands to ctl.execute(nexus, cdb, data_out), a write's data-out
# collected (immediate, unsolicited, R2T bursts) before it runs, Data-In and the response, the
# board-wide pool of transfer buffers shared fairly between connections, and the task timeout.
import asyncio
import gc
import struct
import sys
import time
import uctypes
from micropython import const

from scsi.core import MAX_XFER_BLOCKS
from endpoints.iscsi import pdu as P
from endpoints.iscsi.pdu import get32, put32
from endpoints.iscsi.connio import Closed, TAIL
from endpoints.iscsi.session import Session, WINDOW

XFER = MAX_XFER_BLOCKS * 512   # the core's limit (VPD B0): one transfer buffer
POOL_MAX = const(8)          # transfer buffers in use at once, over all connections
POOL_IDLE = const(4)         # idle transfer buffers kept for reuse
SHARE = const(2)             # transfer buffers one connection may hold at once
ADDR_SHARE = const(4)        # transfer buffers one source address may hold and wait for at once
TASK_TIMEOUT = const(10)     # seconds a command's data may take to move (board: iscsi_task_timeout_s)
REAP_MS = const(250)         # how often stalled tasks, sends and pool waiters are looked for
COPY_MAX = const(65536)      # reads up to this EDTL use the core's buffer and a per-connection copy
# Data-In is sent as one write of header + data (one syscall per PDU, each costs as much as a
# 64 KiB copy on loopback): data buffers keep _HEAD bytes before the data for the header and its
# digest, and TAIL after it
_HEAD = const(52)
_DIN = ">BBBBI8xIIIIIIII"    # Data-In BHS: op, flags, 0, status, DSL, LUN 0, ITT, TTT, StatSN,
                             # ExpCmdSN, MaxCmdSN, DataSN, buffer offset, residual


def _sense(key, asc, ascq):
    s = bytearray(18)
    s[0] = 0x70
    s[2] = key
    s[7] = 10
    s[12] = asc
    s[13] = ascq
    return s


class Task:
    """A command on its way: a write waiting for its data-out (the only kind that is ever pending)
    or, reused per connection, the command running now."""

    def __init__(self, itt, lun, cdb, edtl, need, buf, cmdsn, flags=0, want_out=0):
        self.itt = itt
        self.lun = lun
        self.cdb = cdb
        self.flags = flags        # of the SCSI Command PDU (R, W, attributes)
        self.edtl = edtl          # what the initiator will send or take
        self.want_out = want_out  # data-out length the CDB asks for
        self.need = need          # what goes to the controller (min of EDTL and the CDB's length)
        self.buf = buf            # None: data is discarded (no memory) and the command fails
        self.got = 0              # bytes received, in order
        self.cmdsn = cmdsn
        self.unsol_end = 0        # end of the unsolicited burst
        self.ttt = P.ALL_ONES     # of the outstanding R2T
        self.burst_end = 0
        self.r2tsn = 0
        self.datasn = 0           # next DataSN expected in the current sequence
        self.bad = False          # data arrived out of order: the command fails unexecuted
        self.expired = False      # data-out not all in within the task timeout: fails unexecuted
        self.since = 0            # ticks of the command's arrival: all its data has the timeout


class Pool:
    """Transfer buffers (XFER bytes with _HEAD/TAIL room) shared by the connections in `conns`, and
    the timeouts of what holds them. The owner gives clock(), timeout_ms and log(level, text)."""

    def __init__(self):
        self.conns = set()
        self.free = []          # idle transfer buffers
        self.out = 0            # transfer buffers handed out
        self.queue = []         # connections waiting for a transfer buffer, first come first served
        self.claims = {}        # source address -> buffers its connections hold or wait for

    async def lease(self, c):
        """A transfer buffer for connection c, or None (-> BUSY) when c already holds its SHARE, its
        address holds or waits for ADDR_SHARE, or none came free within twice the task timeout.
        While the pool is exhausted connections wait in turn; a buffer given back goes to the first
        of them."""
        peer = c.peer
        mine = self.claims.get(peer, 0)
        if c.held >= SHARE or mine >= ADDR_SHARE:
            return None
        self.claims[peer] = mine + 1
        b = None if self.queue else self._take()
        if b is None:
            if c.ready is None:
                c.ready = asyncio.Event()
            c.ready.clear()
            c.waiting = self.clock()
            self.queue.append(c)
            await c.ready.wait()
            b, c.lent = c.lent, None
            if b is None:   # its claim was given up with its place in the queue
                return None
        c.held += 1
        return b

    def unclaim(self, peer):
        n = self.claims[peer] - 1
        if n:
            self.claims[peer] = n
        else:
            del self.claims[peer]

    def _take(self):
        """A transfer buffer, or None when POOL_MAX are in use or memory is short."""
        if self.free:
            self.out += 1
            return self.free.pop()
        if self.out >= POOL_MAX:
            return None
        try:
            b = bytearray(XFER + _HEAD + TAIL)
        except MemoryError:
            gc.collect()
            try:
                b = bytearray(XFER + _HEAD + TAIL)
            except MemoryError:
                return None
        self.out += 1
        return b

    def give(self, c, b):
        """Connection c gives buffer b back."""
        self.unclaim(c.peer)
        if self.queue:   # straight to the connection that has waited longest
            w = self.queue.pop(0)
            w.lent = b
            w.ready.set()
            return
        self.out -= 1
        if len(self.free) < POOL_IDLE:
            self.free.append(b)

    def leave(self, c):
        """Connection c is closing: it waits no more, and a buffer lent meanwhile goes back."""
        if c in self.queue:
            self.queue.remove(c)
            self.unclaim(c.peer)
        if c.lent is not None:
            self.give(c, c.lent)
            c.lent = None

    async def reap_forever(self):
        while True:
            await asyncio.sleep_ms(REAP_MS)
            self.reap()

    def reap(self):
        """Ends what overran the task timeout: a write whose data-out is not all in gives its
        buffer back, a connection stuck in the middle of a PDU (a Data-In sequence or other send
        not taken, a data-out PDU not finished) is closed; a pool waiter gets None (BUSY) after
        twice the timeout."""
        now = self.clock()
        lim = self.timeout_ms
        for c in list(self.conns):
            if c.stuck is not None and time.ticks_diff(now, c.stuck) >= lim:
                self.log("warn", "iSCSI port %d: %s did not take what was sent within %d s, "
                         "connection closed" % (c.port, c.iname, lim // 1000))
                c.kill("timed out")
                continue
            for t in list(c.pending.values()):
                if t.buf is not None and time.ticks_diff(now, t.since) >= lim:
                    if c.filling is t:   # its buffer is being read into: only closing stops that
                        self.log("warn", "iSCSI port %d: data-out PDU from %s stalled for %d s, "
                                 "connection closed" % (c.port, c.iname, lim // 1000))
                        c.kill("timed out")
                        break
                    c.expire(t)
        # after the holders above gave back theirs: no peer holds a buffer longer than the task
        # timeout, so a waiter gives up only when the board itself is that slow
        for c in [c for c in self.queue if time.ticks_diff(now, c.waiting) >= 2 * lim]:
            self.queue.remove(c)
            self.unclaim(c.peer)
            c.lent = None
            c.ready.set()


class Flow(Session):
    """The commands of one connection and the buffers they hold."""

    def __init__(self, tgt, sock, port_no, peer):
        Session.__init__(self, tgt, sock, port_no, peer)
        self.held = 0                # pool buffers this connection holds (at most SHARE)
        self.ready = None            # set when a pool buffer is lent while waiting in the queue
        self.lent = None
        self.waiting = 0             # ticks since when it waits in the pool's queue
        self.filling = None          # the task whose data-out is being read
        self.pending = {}            # itt -> Task
        self.cmd = Task(0, 0, b"", 0, 0, None, 0)   # the command that is not pending (reused)
        self.sbuf = bytearray(254)   # sense data of a response
        self.small = None            # copy of small read data (COPY_MAX + room), allocated on first use
        self.stage = None            # data-out of one small write (COPY_MAX), allocated on first use
        self.staged = False          # a pending write is using it

    def stage_for(self, need):
        """The connection's own buffer for a small write's data-out, when it is free: small
        writes then take nothing from the board-wide pool."""
        if need > COPY_MAX or self.staged:
            return None
        if self.stage is None:
            self.stage = bytearray(COPY_MAX)
        self.staged = True
        return self.stage

    def release(self, b):
        """Give back the buffer of a task (a pool buffer, or a small one of its own)."""
        if b is None:
            return
        if b is self.stage:
            self.staged = False
        elif len(b) == XFER + _HEAD + TAIL:
            self.held -= 1
            self.tgt.give(self, b)

    def drop_tasks(self):
        for t in self.pending.values():
            self.release(t.buf)
        self.pending = {}

    def expire(self, t):
        # its data-out did not all come within the task timeout (a trickle is no better than
        # nothing): the buffer goes back to the pool at once; the command never runs, and the rest
        # of its data, if it still comes, is answered with INITIATOR RESPONSE TIMEOUT
        self.release(t.buf)
        t.buf = None
        t.expired = True
        self.tgt.log("warn", "iSCSI port %d: data-out from %s for ITT 0x%x not in within %d s, "
                     "task aborted" % (self.port, self.iname, t.itt, self.tgt.timeout_ms // 1000))

    def command(self, itt, lun, cdb, flags, edtl, want_out):
        """The connection's Task for a command that runs at once (no data-out to wait for)."""
        t = self.cmd
        t.itt = itt
        t.lun = lun
        t.cdb = cdb
        t.flags = flags
        t.edtl = edtl
        t.want_out = want_out
        return t

    async def scsi_cmd(self, dlen):
        h = self.hdr
        b1 = h[1]
        immediate = h[0] & 0x40
        itt = get32(h, 16)
        edtl = get32(h, 20)
        cmdsn = get32(h, 24)
        if self.discovery:
            await self.read_data(None, 0, dlen)
            await self.reject(P.REJ_PROTOCOL)
            raise Closed()
        if not self.cmdsn_ok(cmdsn, immediate):
            await self.read_data(None, 0, dlen)
            return
        lun = P.lun_number(h)
        cdb = bytes(self.hmv[32:48])
        ahs = h[4] * 4
        if ahs >= 4 and self.ahs[2] == 1:   # extended CDB AHS
            alen = (self.ahs[0] << 8) | self.ahs[1]
            if alen < 1 or alen + 3 > ahs:
                await self.read_data(None, 0, dlen)
                await self.reject(P.REJ_INVALID_FIELD)
                return
            cdb += bytes(self.ahs[4:3 + alen])
        if itt in self.pending:
            await self.read_data(None, 0, dlen)
            await self.reject(P.REJ_TASK_IN_PROGRESS)
            return
        wbit = b1 & 0x20
        if not wbit:
            if dlen:   # data with a command that sends none: a protocol error
                await self.read_data(None, 0, dlen)
                await self.reject(P.REJ_PROTOCOL)
                return
            try:
                want_out = self.ctl.expected_out(cdb)
            except Exception:
                want_out = 0
            if want_out and edtl:
                # the CDB sends data but the initiator did not flag a write: refuse it unexecuted
                await self.scsi_rsp(itt, 2, _sense(0x05, 0x24, 0), 0x04, want_out, 0)
                return
            if want_out:   # EDTL 0: a write of nothing, the whole length is residual overflow
                await self.run_cmd(self.command(itt, lun, cdb, b1 | 0x20, 0, want_out), b"")
                return
            await self.run_cmd(self.command(itt, lun, cdb, b1, edtl, 0), None)
            return
        # a write: collect everything first
        if dlen > edtl or (dlen and not self.p.immediate_data) or dlen > self.p.first_burst:
            await self.read_data(None, 0, dlen)
            await self.reject(P.REJ_PROTOCOL)
            raise Closed()
        if len(self.pending) >= WINDOW:   # more writes waiting for data than the window holds
            await self.read_data(None, 0, dlen)
            await self.scsi_rsp(itt, 0x28, None, 0, 0, 0)   # TASK SET FULL
            return
        try:
            want_out = self.ctl.expected_out(cdb)
        except Exception:
            want_out = 0
        need = min(edtl, want_out)
        buf = None
        if need <= XFER:
            buf = self.stage_for(need) or await self.tgt.lease(self) if need else bytearray(0)
        t = Task(itt, lun, cdb, edtl, need, buf, cmdsn, b1, want_out)
        t.since = self.tgt.clock()
        self.pending[itt] = t   # from here the reaper watches it (and the close frees its buffer)
        if dlen:
            if not await self.recv_into(t, dlen):
                await self.reject(P.REJ_DIGEST)
                raise Closed()
        if b1 & 0x80 or self.p.initial_r2t:
            t.unsol_end = t.got      # F bit: no unsolicited Data-Out follows
        else:
            t.unsol_end = min(edtl, self.p.first_burst)
        await self.progress(t)

    async def recv_into(self, t, n):
        """Data segment of n bytes for task t at offset t.got (in order)."""
        off = t.got
        if t.buf is not None and off < t.need:
            k = min(n, t.need - off)
            self.filling = t
            ok = await self.read_data(memoryview(t.buf)[off:off + k], k, n - k)
            self.filling = None
        else:
            ok = await self.read_data(None, 0, n)
        t.got += n
        return ok

    async def progress(self, t):
        if t.got >= t.edtl:
            del self.pending[t.itt]
            if t.bad:   # ABORTED COMMAND, DATA PHASE ERROR
                await self.scsi_rsp(t.itt, 2, _sense(0x0B, 0x4B, 0), 0, 0, t.r2tsn)
            elif t.expired:   # ABORTED COMMAND, INITIATOR RESPONSE TIMEOUT
                await self.scsi_rsp(t.itt, 2, _sense(0x0B, 0x4B, 0x06), 0, 0, t.r2tsn)
            elif t.buf is None:
                await self.unbuffered(t)
            else:
                try:
                    await self.run_cmd(t, memoryview(t.buf)[:t.need])
                finally:   # also when the connection is closed while the answer waits
                    self.release(t.buf)
            return
        if t.got < t.unsol_end or t.got < t.burst_end:
            return   # more of the current burst is on its way
        if t.buf is None and not t.bad and not t.expired:
            # no buffer to put its data in: answered now, the rest of its data never solicited
            # (the initiator sends nothing more for a command it has the status of)
            del self.pending[t.itt]
            await self.unbuffered(t)
            return
        # solicit the next burst
        t.ttt = self.next_ttt()
        t.datasn = 0
        n = min(self.p.max_burst, t.edtl - t.got)
        t.burst_end = t.got + n
        r = self.begin(P.OP_R2T, 0x80)
        P.put_lun(r, t.lun)
        put32(r, 16, t.itt)
        put32(r, 20, t.ttt)
        self.seqs(r)
        put32(r, 36, t.r2tsn)
        put32(r, 40, t.got)
        put32(r, 44, n)
        t.r2tsn += 1
        await self.emit(None, 0)

    async def unbuffered(self, t):
        # a write that got no buffer: too long for one, or none free for it now
        if t.need > XFER:   # ILLEGAL REQUEST, INVALID FIELD IN CDB (transfer length)
            await self.scsi_rsp(t.itt, 2, _sense(0x05, 0x24, 0), 0, 0, t.r2tsn)
        else:               # no transfer buffer free: BUSY, the initiator retries
            await self.scsi_rsp(t.itt, 8, None, 0, 0, t.r2tsn)

    async def data_out(self, dlen):
        h = self.hdr
        itt = get32(h, 16)
        ttt = get32(h, 20)
        datasn = get32(h, 36)
        off = get32(h, 40)
        t = self.pending.get(itt)
        if t is None:
            await self.read_data(None, 0, dlen)
            if ttt == P.ALL_ONES:
                return   # unsolicited data of a command we ignored or aborted
            await self.reject(P.REJ_INVALID_FIELD)
            return
        solicited = ttt != P.ALL_ONES
        if (solicited and ttt != t.ttt) or t.got + dlen > (t.burst_end if solicited else t.unsol_end) \
                or (not solicited and t.burst_end):
            # more data than solicited, or for a transfer tag we never gave: at ERL 0 the
            # connection ends (the command never runs)
            await self.read_data(None, 0, dlen)
            self.tgt.log("warn", "iSCSI port %d: unexpected Data-Out from %s (ITT 0x%x)"
                         % (self.port, self.iname, itt))
            raise Closed()
        if (off != t.got or datasn != t.datasn) and not t.bad:
            # DataPDUInOrder/DataSequenceInOrder are Yes: data out of place fails the command
            # (CHECK CONDITION once all its data is in), the session carries on
            t.bad = True
            self.release(t.buf)
            t.buf = None
            self.tgt.log("warn", "iSCSI port %d: Data-Out out of order from %s (ITT 0x%x DataSN %d offset %d)"
                         % (self.port, self.iname, itt, datasn, off))
        if not await self.recv_into(t, dlen):
            raise Closed()
        t.datasn += 1
        if h[1] & 0x80:   # end of this sequence
            if solicited and t.got != t.burst_end:
                raise Closed()   # F bit before the burst we asked for was complete
            if not solicited:
                t.unsol_end = t.got
            await self.progress(t)
        elif t.got >= (t.burst_end if solicited else t.unsol_end):
            raise Closed()   # burst complete without the F bit

    def run_cmd(self, t, data_out):
        # returns the awaitable that runs the command: one coroutine less for the usual command
        if t.flags & 0x40 and t.edtl > COPY_MAX:
            return self.run_big(t, data_out)
        return self.finish_cmd(t, data_out, None)

    async def run_big(self, t, data_out):
        big = await self.tgt.lease(self)   # data-in straight into a buffer of ours, sent from there
        if big is None:
            await self.scsi_rsp(t.itt, 8, None, 0, 0, 0)
            return
        try:
            await self.finish_cmd(t, data_out, big)
        finally:
            self.release(big)

    async def finish_cmd(self, t, data_out, big):
        """Runs task t with its data-out and sends its Data-In and status; `big` is a pool buffer
        for the data-in of a large read (None: the core's own, copied)."""
        itt = t.itt
        flags = t.flags
        edtl = t.edtl
        ctl = self.ctl
        try:
            nexus = self.nexus_for(t.lun)
            if ctl.pair is not None and ctl.pair.routed(nexus, t.cdb):
                # of a pair: the drive's owner runs it (ALUA active/non-optimized here)
                status, sense, data_in = await ctl.pair.forward(nexus, t.cdb, data_out)
            else:
                status, sense, data_in = ctl.execute_here(
                    nexus, t.cdb, data_out, None if big is None else memoryview(big)[_HEAD:_HEAD + XFER])
        except Exception as e:
            sys.print_exception(e, sys.stderr)
            self.tgt.log("error", "iSCSI port %d: command 0x%02x failed inside the controller: %r"
                         % (self.port, t.cdb[0], e))
            status, sense, data_in = 2, _sense(0x04, 0x44, 0), b""
        if data_in is None:
            data_in = b""
        # residuals (RFC 7143 11.4.5.1): relative to what the command wanted to move
        rflags = 0
        resid = 0
        if flags & 0x20:   # write: compare EDTL with the CDB's data-out length
            want_out = t.want_out
            if want_out > edtl:
                rflags, resid = 0x04, want_out - edtl
            elif want_out < edtl:
                rflags, resid = 0x02, edtl - want_out
            await self.scsi_rsp(itt, status, sense, rflags, resid, t.r2tsn)
            return
        n = len(data_in)
        xfer = n if (flags & 0x40) else 0
        if xfer > edtl:
            xfer = edtl
        if n > edtl or (n and not flags & 0x40):
            rflags, resid = 0x04, n - xfer
        elif n < edtl:
            rflags, resid = 0x02, edtl - n
        if not xfer:
            await self.scsi_rsp(itt, status, sense, rflags, resid, 0)
            return
        if big is None:
            # the core's own buffer is reused by the next execute (any connection): copy now
            if self.small is None:
                self.small = bytearray(_HEAD + COPY_MAX + TAIL)
            buf = self.small
            buf[_HEAD:_HEAD + xfer] = data_in[:xfer]
        else:
            buf = big
            if uctypes.addressof(data_in) != uctypes.addressof(big) + _HEAD:
                # not read into our buffer (a short answer of the core): copy it there
                if xfer > XFER:
                    buf = bytearray(_HEAD + xfer + TAIL)
                buf[_HEAD:_HEAD + xfer] = data_in[:xfer]
        if sense:
            sense = bytes(sense)
        collapse = not sense
        seg = min(self.p.mrdsl_out, P.TARGET_MRDSL * 4)
        burst = self.p.max_burst
        hl = P.BHS + 4 if self.hd else P.BHS
        off = 0
        datasn = 0
        mv = memoryview(buf)
        e = self.expcmdsn   # no command arrives while this one answers
        emax = (e + WINDOW - 1) & 0xFFFFFFFF
        # per PDU, names are locals and sizes compared inline: each global or builtin looked up
        # costs a dictionary probe
        pack = struct.pack_into
        din = P.OP_DATA_IN
        ones = P.ALL_ONES
        while off < xfer:
            k = xfer - off
            if k > seg:
                k = seg
            r = burst - off % burst
            if k > r:
                k = r
            fl = 0x80 if (off + k == xfer or (off + k) % burst == 0) else 0
            st = sn = rs = 0
            if off + k == xfer and collapse:   # the last PDU carries the status
                fl = 0x81 | rflags
                st = status
                sn = self.next_statsn()
                rs = resid
            at = _HEAD + off
            # the header goes right before its data (over data of the PDU already sent)
            pack(_DIN, mv, at - hl, din, fl, 0, st, k, itt, ones, sn, e, emax, datasn, off, rs)
            tl = self.frame(mv, at - hl, at, k)
            out = mv[at - hl:at + k + tl]
            w = self.tx_now(self.s, out)
            if w < hl + k + tl:
                if self.stuck is None:   # the rest of the Data-In has the task timeout to go out
                    self.stuck = self.tgt.clock()
                await self.send(out[w:])
            if tl:   # put back the next PDU's data under this one's pad/digest
                mv[at + k:at + k + tl] = memoryview(self.save)[:tl]
            datasn += 1
            off += k
        self.stuck = None
        if not collapse:
            await self.scsi_rsp(itt, status, sense, rflags, resid, datasn)

    async def scsi_rsp(self, itt, status, sense, rflags, resid, expdatasn):
        t = self.begin(P.OP_SCSI_RSP, 0x80 | rflags)
        t[3] = status
        put32(t, 16, itt)
        self.status(t)
        put32(t, 36, expdatasn)
        put32(t, 44, resid)
        if sense:
            n = min(len(sense), 252)
            d = self.sbuf
            d[0] = 0
            d[1] = n
            d[2:2 + n] = sense[:n] if len(sense) != n else sense
            await self.emit(d, 2 + n)
        else:
            await self.emit(None, 0)
