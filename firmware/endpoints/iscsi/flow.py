# Command and data flow: SCSI commands to ctl.execute(nexus, cdb, data_out), a write's data-out
# collected (immediate, unsolicited, R2T bursts) before it runs, Data-In and the response, the
# board-wide pool of transfer buffers shared fairly between connections, and the task timeout.
import asyncio
import select
import struct
import sys
import time
import uctypes
from micropython import const

from scsi.core import MAX_XFER_BLOCKS
from endpoints.iscsi import pdu as P
from endpoints.iscsi.pdu import get32, put32
from endpoints import ioready
from endpoints.iscsi.connio import Closed, TAIL
from hw.dma import BUSY, FAILED, IDLE
from endpoints.iscsi.session import Session, WINDOW

XFER = MAX_XFER_BLOCKS * 512   # the core's limit (VPD B0): one transfer buffer
POOL_BUFS = const(4)         # transfer buffers (XFER bytes), made when the target starts
PARK = P.TARGET_FIRST_BURST  # a parking place: what a write sends before it is asked for more
PARK_SLOTS = const(64)       # parking places, made when the target starts: two sessions' depth
ADDR_SHARE = const(2)        # transfer buffers one source address may hold (the other half: other hosts)
PARK_SHARE = const(32)       # parking places one source address may hold: one session's depth
TASK_TIMEOUT = const(10)     # seconds a command's data may take to move (board: iscsi_task_timeout_s)
REAP_MS = const(250)         # how often stalled tasks and sends are looked for
COPY_MAX = const(65536)      # reads up to this EDTL go into a per-connection send buffer (copy_buffer)
CHAIN_MIN = const(16384)     # smaller writes cost the main loop as much to hand over as to do
DMA_MIN = const(16384)       # smaller Data-In as well (tests/bench/bench_qd.py, 4 KiB reads)
DMA_SPARES = const(8)        # connections whose answers the DMA engine sends: each holds a second
                             # copy buffer (64 KiB) for them while it uses the engine
DMA_SHARE = const(4)         # copy buffers one source address may hold (the other half: other hosts)
DMA_IDLE_MS = const(1000)    # a connection that sent nothing through the engine this long gives its back
# Data-In is sent as one write of header + data (one syscall per PDU, each costs as much as a
# 64 KiB copy on loopback): data buffers keep _HEAD bytes before the data for the header and its
# digest, and TAIL after it
_HEAD = const(52)
_DIN = ">BBBBI8xIIIIIIII"    # Data-In BHS: op, flags, 0, status, DSL, LUN 0, ITT, TTT, StatSN,
                             # ExpCmdSN, MaxCmdSN, DataSN, buffer offset, residual
TRANSFER = XFER + _HEAD + TAIL   # bytes of a transfer buffer
_EMPTY = bytearray(0)        # the buffer of a write of nothing
DEFER_SLOTS = const(128)     # writes whose answer waits for their chain: more than the I/O
                             # processor's thread holds (hw/chains.py CHAINS)
_REC = const(7)              # fields of a record of one (Pool.defer)
MORE = object()              # write_now: its data is not all in yet (the reader waits for it)


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
        self.since = 0            # ticks since when its data is asked for: all of it has the timeout
        self.conn = None          # the connection it came on
        self.waiting = False      # queued for a transfer buffer; its buffer is a parking place
        self.reads = False        # the queue entry of a large read whose connection waits


class Pool:
    """The board's transfer buffers and parking places, made once, shared by the connections in
    `conns`, and the timeouts of what holds them. The owner gives clock(), timeout_ms and
    log(level, text).

    A write larger than a parking place needs a transfer buffer for all its data. When none is to
    be had (the pool is in use, or its connection or its address holds its share) the write is
    queued, first come first served, and what it sent unasked (immediate data, unsolicited
    Data-Out: at most FirstBurstLength, a parking place) waits in a parking place; its R2T goes
    out when a buffer is given to it. Smaller writes take their connection's own buffer or a
    parking place. So a write's data is asked for only once there is room for it, and only a write
    that finds every parking place taken is answered BUSY (README "Queue")."""

    def __init__(self, bufs=POOL_BUFS, parks=PARK_SLOTS):
        self.conns = set()
        self.free = [bytearray(TRANSFER) for _ in range(bufs)]
        # the data-in view of each, made once: a large read's data goes straight in there
        self.views = {id(b): memoryview(b)[_HEAD:_HEAD + XFER] for b in self.free}
        self.parks = [bytearray(PARK) for _ in range(parks)]
        self.park_views = {id(b): memoryview(b) for b in self.parks}   # (made once)
        self.queue = []         # tasks waiting for a transfer buffer, first come first served
        self.claims = {}        # source address -> transfer buffers its connections hold
        self.parked = {}        # source address -> parking places its connections hold
        self.busy = 0           # writes answered BUSY (every parking place was taken)
        # writes the I/O processor's thread runs (defer): each in the record of its chain
        # ticket, made once (a tuple a write would allocate): ticket, connection, ITT, residual
        # flags, residual, ExpDataSN, the buffer its data-out is in
        self.deferred = 0
        self.d = [None] * (_REC * DEFER_SLOTS)
        self.chains = None      # the I/O processor's thread (Controller.io_thread)
        self.dma = None         # the host ports' DMA engine (hw/dma.py), made with the first portal
        self.spares = []        # second copy buffers given back by connections, their data-in views,
        self.spare_views = []   # and how many were made
        self.spares_made = 0
        self.spare_claims = {}  # source address -> copy buffers its connections hold
        self.ring = []          # the connections a walk over them goes through (copy_conns)
        self.chain_waits = None  # the doorbells' waits of complete_forever and dma_forever: they
        self.dma_waits = None    # stay registered between rings (endpoints/ioready.py)
        self.reaps = 0          # times reap() looked

    def take(self, c):
        """A transfer buffer for connection c now, or None: none free, or its address holds its
        share. (A buffer is free only while no queued task can have it: grant() serves them
        first.)"""
        if not self.free or self.claims.get(c.peer, 0) >= ADDR_SHARE:
            return None
        self._lend(c)
        return self.free.pop()

    def _lend(self, c):
        c.held += 1
        _more(self.claims, c.peer)

    def park(self, c):
        """A parking place for connection c, or None."""
        n = self.parked.get(c.peer, 0)
        if not self.parks or n >= PARK_SHARE:
            return None
        self.parked[c.peer] = n + 1
        return self.parks.pop()

    def park_view(self, b, n):
        # the first n bytes of parking place b (a whole one: no new view)
        v = self.park_views[id(b)]
        return v if n == PARK else v[:n]

    def unpark(self, c, b):
        _less(self.parked, c.peer)
        self.parks.append(b)

    def wait(self, t):
        """Queues task t for a transfer buffer (granted(t, buffer) on its connection)."""
        self.queue.append(t)

    def unwait(self, t):
        if t in self.queue:
            self.queue.remove(t)

    async def lease(self, c):
        """A transfer buffer for a large read on connection c, waiting in the queue when none is to
        be had now (the connection's reader waits with it); None (BUSY) when c holds a buffer
        itself: its writes' Data-Out, behind the read on the wire, would wait for the reader."""
        b = self.take(c)
        if b is not None or c.held:
            return b
        t = c.rtask
        if c.ready is None:
            c.ready = asyncio.Event()
        c.ready.clear()
        self.wait(t)
        try:
            await c.ready.wait()
        finally:
            self.unwait(t)
        b, c.lent = c.lent, None
        return b

    def spare(self, c):
        """Gives connection c, whose answers the DMA engine is to send, a second copy buffer
        (c.spare, c.spare_in): False when DMA_SPARES are held, or DMA_SHARE by c's address (its
        answers then go out on the main loop, as any connection's did before the engine)."""
        if self.spare_claims.get(c.peer, 0) >= DMA_SHARE:
            return False
        if self.spares:
            c.spare = self.spares.pop()
            c.spare_in = self.spare_views.pop()
        elif self.spares_made < DMA_SPARES:
            self.spares_made += 1
            c.spare, c.spare_in = copy_buffer()
        else:
            return False
        _more(self.spare_claims, c.peer)
        return True

    def spare_back(self, c):
        # c's copy buffer back to the pool: no send of c's is in flight (closed, or its channel idle)
        self.spares.append(c.spare)
        self.spare_views.append(c.spare_in)
        self.spare_lost(c)

    def spare_lost(self, c):
        # c no longer holds its copy buffer (one the engine never let go of is not reused)
        c.spare = c.spare_in = None
        _less(self.spare_claims, c.peer)

    def give(self, c, b):
        """Connection c gives transfer buffer b back: to the queue (grant), else to the free list."""
        c.held -= 1
        _less(self.claims, c.peer)
        self.free.append(b)
        self.grant()

    def grant(self):
        """Free buffers to the first queued tasks whose address is under its share and whose
        parked data is not being read this moment (its connection grants it once the read is
        done). The queue is looked at afresh for each: a grant may close a connection."""
        while self.free:
            for t in self.queue:
                w = t.conn
                if w.filling is not t and self.claims.get(w.peer, 0) < ADDR_SHARE:
                    break
            else:
                return
            self.queue.remove(t)
            self._lend(w)
            w.granted(t, self.free.pop())

    def leave(self, c):
        """Connection c is closing: its queued tasks leave the queue, a buffer lent meanwhile goes
        back."""
        self.queue = [t for t in self.queue if t.conn is not c]
        if c.lent is not None:
            b, c.lent = c.lent, None
            self.give(c, b)

    async def reap_forever(self):
        while True:
            await asyncio.sleep_ms(REAP_MS)
            try:
                self.reap()
            except Exception as e:       # the timeouts of every host must go on
                sys.print_exception(e, sys.stderr)
                self.log("error", "iSCSI: looking for stalled tasks failed: %r" % (e,))

    def go_on(self, c):
        # c.go_on(), a failure of it costing that connection only
        try:
            c.go_on()
        except Exception as e:
            sys.print_exception(e, sys.stderr)
            self.log("error", "iSCSI: sending held answers failed: %r" % (e,))
            c.kill("internal error")

    def defer(self, c, itt, rflags, resid, expdatasn, buf, ticket):
        """A write's answer waits for its chain (Controller.chained), its data-out in `buf`."""
        d = self.d
        i = ticket % DEFER_SLOTS * _REC
        if d[i] is not None:
            # (cannot be: the thread holds fewer chains than there are records, and every one
            # is settled) the write there never had its answer: its buffer back
            self.log("error", "iSCSI: write ITT 0x%x lost its chain" % d[i + 2])
            d[i + 1].release(d[i + 6])
            self.deferred -= 1
        d[i] = ticket
        d[i + 1] = c
        d[i + 2] = itt
        d[i + 3] = rflags
        d[i + 4] = resid
        d[i + 5] = expdatasn
        d[i + 6] = buf
        self.deferred += 1

    async def complete_forever(self, chains):
        waits = self.chain_waits = ioready.Waits(chains.rx, keep=True)   # (dropped by stop)
        while True:
            waits.readable()
            yield                   # to the scheduler until then (endpoints/ioready.py)
            try:
                chains.woken()
                self.ctl.settle_own()
                self.complete()
            except Exception as e:       # the answers of every host must go on
                sys.print_exception(e, sys.stderr)
                self.log("error", "iSCSI: answering writes failed: %r" % (e,))

    async def dma_forever(self):
        # the DMA engine tells the end of a send its connection stopped waiting for (its peer was
        # behind, or the thread slow to come): what that connection held back meanwhile goes on
        dma = self.dma
        waits = self.dma_waits = ioready.Waits(dma.rx, keep=True)   # (dropped by stop)
        while True:
            waits.readable()
            yield                   # to the scheduler until then (endpoints/ioready.py)
            dma.woken()
            ring = self.ring
            for i in range(self.copy_conns()):
                c = ring[i]
                ring[i] = None
                self.go_on(c)

    def copy_conns(self):
        """The connections copied into self.ring (a walk over them may close one, which a walk
        over the set itself would not survive), a list as long as the most there have been, made
        once; returns how many. Each walk takes its entries back out (None) as it goes."""
        ring = self.ring
        n = 0
        for c in self.conns:
            if n == len(ring):
                ring.append(c)
            else:
                ring[n] = c
            n += 1
        return n

    def complete(self):
        """Answers the writes whose chains have ended, in order: buffers go back, and a write a
        disk failed under is answered as its writing again here turned out."""
        d = self.d
        ctl = self.ctl
        while self.deferred:
            ticket = ctl.settle()
            if not ticket:
                return
            i = ticket % DEFER_SLOTS * _REC
            if d[i] != ticket:
                continue                 # a chain of no entry here (a target stopped since)
            c = d[i + 1]
            buf = d[i + 6]
            d[i] = d[i + 1] = d[i + 6] = None
            self.deferred -= 1
            c.release(buf)
            if c.s is not None:
                c.answer_late(d[i + 2], ctl.w_status, ctl.w_sense, d[i + 3], d[i + 4], d[i + 5])

    def answer_all(self):
        # every write the I/O processor's thread was given is answered now (before a task
        # management or logout response, which must follow the answers of what they cover)
        if self.deferred:
            self.ctl.settle_all()
            self.complete()

    def reap(self):
        """Ends what overran the task timeout: a write whose data-out is not all in gives its
        buffer back, a connection stuck in the middle of a PDU (a Data-In sequence or other send
        not taken, a data-out PDU not finished) is closed. Queued writes wait for the board, not
        for their initiator: their time starts when their data is asked for. R2Ts a busy
        connection could not send when their buffer came are tried again."""
        self.reaps += 1
        now = self.clock()
        lim = self.timeout_ms
        ring = self.ring
        for i in range(self.copy_conns()):
            c = ring[i]
            ring[i] = None
            if c.stuck is None and c.dj >= 0 and self.dma.st[c.dj] == BUSY \
                    and time.ticks_diff(now, c.dma_since) >= lim:
                c.stuck = c.dma_since    # (a DMA send its peer does not take)
            if c.stuck is not None and time.ticks_diff(now, c.stuck) >= lim:
                self.log("warn", "iSCSI port %d: %s did not take what was sent within %d s, "
                         "connection closed" % (c.port, c.iname, lim // 1000))
                c.kill("timed out")
                continue
            if c.w_mv is not None and time.ticks_diff(now, c.w_since) >= lim:
                # the immediate data of a write (write_now) stopped coming: only closing frees
                # the buffer it is read into
                self.log("warn", "iSCSI port %d: write data from %s stalled for %d s, "
                         "connection closed" % (c.port, c.iname, lim // 1000))
                c.kill("timed out")
                continue
            for t in list(c.pending.values()):
                if t.buf is not None and not t.waiting and time.ticks_diff(now, t.since) >= lim:
                    if c.filling is t:   # its buffer is being read into: only closing stops that
                        self.log("warn", "iSCSI port %d: data-out PDU from %s stalled for %d s, "
                                 "connection closed" % (c.port, c.iname, lim // 1000))
                        c.kill("timed out")
                        break
                    c.expire(t)
            if c.spare is not None and c.dj >= 0 and self.dma.st[c.dj] == IDLE \
                    and time.ticks_diff(now, c.dma_since) >= DMA_IDLE_MS:
                self.spare_back(c)       # (so that hosts reading at depth now can have it)
            self.go_on(c)                # (also a DMA send's end its ring did not reach)


def copy_buffer():
    # a connection's copy buffer for the data-in of reads up to COPY_MAX, with room for the
    # Data-In header before and the pad and digest after, and the view reads fill (made once)
    b = bytearray(_HEAD + COPY_MAX + TAIL)
    return b, memoryview(b)[_HEAD:_HEAD + COPY_MAX]


def _poller(s, event):
    p = select.poll()
    p.register(s, event)
    return p


def _now(p):
    # whether poller p's socket is ready this moment (ipoll: no list made)
    for _ in p.ipoll(0):
        return True
    return False


def _more(counts, key):
    counts[key] = counts.get(key, 0) + 1


def _less(counts, key):
    n = counts[key] - 1
    if n:
        counts[key] = n
    else:
        del counts[key]


class Flow(Session):
    """The commands of one connection and the buffers they hold."""

    def __init__(self, tgt, sock, port_no, peer):
        Session.__init__(self, tgt, sock, port_no, peer)
        self.held = 0                # transfer buffers this connection holds
        self.ready = None            # set when a buffer is lent to the large read that waits
        self.lent = None
        self.rtask = Task(0, 0, b"", 0, 0, None, 0)   # that read's place in the pool's queue
        self.rtask.conn = self
        self.rtask.reads = True
        self.grants = []             # writes given a buffer while this connection was mid-send:
                                     # their R2T goes out when it is not
        self.poll_w = None           # whether the socket has room for such an R2T
        self.poll_r = None           # whether the next PDU is here (busy())
        self.late = []               # answers of deferred writes not yet sent (Pool.complete)
        self.filling = None          # the task whose data-out is being read
        self.pending = {}            # itt -> Task
        self.cmd = Task(0, 0, b"", 0, 0, None, 0)   # the command that is not pending (reused)
        self.sbuf = bytearray(254)   # sense data of a response
        self.cdbv = self.hmv[32:48]  # the CDB, in the header just read
        self.small = None            # data-in of reads up to COPY_MAX (copy_buffer), made on first use;
        self.small_in = None         # a medium read is read straight into its view, others copied there
        self.spare = None            # the other such buffer, from the pool: the one a DMA send may be
        self.spare_in = None         # using, and its view
        self.stage = None            # data-out of one small write (COPY_MAX), allocated on first use
        self.staged = False          # a write holds it (its data coming, it running, or its
                                     # answer waiting for the I/O processor's thread)
        self.stage_n = -1            # the last view write_now made of it, and its length: a host
        self.stage_mv = None         # writes one size again and again, and it is made once
        self.w_mv = None             # write_now: the view its data is being read into, while
        self.w_got = 0               # it comes (how much is in, since when)
        self.w_since = 0

    def stage_for(self, need):
        """The connection's own buffer for a small write's data-out, when it is free: small
        writes then take nothing from the board-wide pool."""
        if need > COPY_MAX or self.staged:
            return None
        self.staged = True
        return self.own()

    def own(self):
        # the connection's own buffer for small writes, made when first needed
        if self.stage is None:
            self.stage = bytearray(COPY_MAX + 4)   # (+4: write_now reads the pad there too)
        return self.stage

    def small_view(self):
        # the view of the connection's send buffer for data-in up to COPY_MAX, made when first needed
        if self.small is None:
            self.small, self.small_in = copy_buffer()
        return self.small_in

    def release(self, b):
        """Give back the buffer of a task: its connection's own, a parking place or a transfer
        buffer."""
        if b is None:
            return
        if b is self.stage:
            self.staged = False
        elif len(b) == PARK:
            self.tgt.unpark(self, b)
        elif len(b) == TRANSFER:
            self.tgt.give(self, b)

    def forget(self, t):
        """Task t leaves (done, aborted or dropped): out of the queue, its buffer back."""
        if t.waiting:
            self.tgt.unwait(t)
            t.waiting = False
        self.release(t.buf)
        t.buf = None

    def drop_tasks(self):
        for t in self.pending.values():
            self.forget(t)
        self.pending = {}
        self.grants = []

    def expire(self, t):
        # its data-out did not all come within the task timeout (a trickle is no better than
        # nothing): the buffer goes back to the pool at once; the command never runs, and the rest
        # of its data, if it still comes, is answered with INITIATOR RESPONSE TIMEOUT
        self.forget(t)
        t.expired = True
        self.tgt.log("warn", "iSCSI port %d: data-out from %s for ITT 0x%x not in within %d s, "
                     "task aborted" % (self.port, self.iname, t.itt, self.tgt.timeout_ms // 1000))

    def command(self, itt, lun, cdb, flags, edtl, want_out):
        """The connection's Task for a command that runs at once (no data-out to wait for)."""
        t = self.cmd
        t.buf = None
        t.itt = itt
        t.lun = lun
        t.cdb = cdb
        t.flags = flags
        t.edtl = edtl
        t.want_out = want_out
        return t

    def command_now(self, dlen):
        """The reader's entry for a SCSI Command PDU: the usual one — no data with it, no write, no
        extended CDB — runs as plain calls, its CDB read in place in the header (nothing is
        allocated for it); the awaitable of what is left, or None. Others: scsi_cmd()."""
        h = self.hdr
        b1 = h[1]
        if b1 & 0x20 and not h[4] and not self.discovery:
            return self.write_now(dlen)
        if dlen or b1 & 0x20 or h[4] or self.discovery:
            return self.scsi_cmd(dlen)
        itt = get32(h, 16)
        if not self.cmdsn_ok(get32(h, 24), h[0] & 0x40):
            return None
        if itt in self.pending:
            return self.later(self.reject, P.REJ_TASK_IN_PROGRESS)
        cdb = self.cdbv
        try:
            want_out = self.ctl.expected_out(cdb)
        except Exception:
            want_out = 0
        edtl = get32(h, 20)
        if want_out:
            return self.later(self.not_flagged, itt, P.lun_number(h), bytes(cdb), b1, edtl, want_out)
        return self.run_cmd(self.command(itt, P.lun_number(h), cdb, b1, edtl, 0), None)

    def write_now(self, dlen):
        # a write whose data all came with it (immediate data, F bit, at most a first burst), read
        # into the connection's own buffer or a parking place and run as plain calls; anything
        # else: scsi_cmd()
        h = self.hdr
        edtl = get32(h, 20)
        itt = get32(h, 16)
        if not dlen or dlen != edtl or not h[1] & 0x80 or dlen > COPY_MAX or self.dd \
                or not self.p.immediate_data or dlen > self.p.first_burst or itt in self.pending \
                or len(self.pending) >= WINDOW:
            return self.scsi_cmd(dlen)
        cdb = self.cdbv
        try:
            want_out = self.ctl.expected_out(cdb)
        except Exception:
            want_out = 0
        if want_out != dlen:
            return self.scsi_cmd(dlen)
        # the buffer before the CmdSN: scsi_cmd checks the CmdSN again, and would drop a command
        # whose CmdSN this had taken
        # (stage_for written out, as the run and release below: a call costs the usual write
        # about 2,400 instructions, counted with callgrind)
        n = dlen + (-dlen & 3)
        if not self.staged:
            b = self.stage
            if b is None:
                b = self.own()               # (the first: the buffer is made)
            self.staged = True
            if self.stage_n != n:
                self.stage_mv = memoryview(b)[:n]
                self.stage_n = n
            mv = self.stage_mv
        else:
            # the connection's buffer holds a write not finished (the I/O processor's thread
            # runs it): at queue depth the next ones take parking places
            b = self.tgt.park(self)
            if b is None:
                return self.scsi_cmd(dlen)   # (BUSY there, once its data is read)
            mv = self.tgt.park_view(b, n)
        if not self.cmdsn_ok(get32(h, 24), h[0] & 0x40):
            self.release(b)
            return self.scsi_cmd(dlen)       # (a CmdSN out of the window is dropped there)
        t = self.command(itt, P.lun_number(h), cdb, h[1], edtl, want_out)
        t.buf = b
        got = self.rx_now(self.s, mv)
        if got < n:
            # the rest is still coming: the reader waits for the socket and calls write_more (a
            # coroutine of its own would cost a few hundred bytes a write)
            self.w_mv = mv
            self.w_got = got
            self.w_since = self.tgt.clock()
            return MORE
        aw = self.run_cmd(t, mv if n == dlen else mv[:dlen])
        if aw is None:
            self.unstage(t)
            return None
        return self.then_unstage(t, aw)

    def write_more(self):
        # more of write_now's data: MORE until it is all in, then the command runs
        mv = self.w_mv
        got = self.w_got + self.rx_now(self.s, mv[self.w_got:])
        self.w_got = got
        if got < len(mv):
            return MORE
        self.w_mv = None
        return self.write_in(self.cmd, mv)

    def write_in(self, t, mv):
        # write_now's command, its data all in
        aw = self.run_cmd(t, mv if len(mv) == t.edtl else mv[:t.edtl])
        if aw is None:
            self.unstage(t)
            return None
        return self.then_unstage(t, aw)

    def write_lost(self):
        # the connection ended while the reader's own command was read or run: write_now's
        # buffer, if it held one, goes back
        self.w_mv = None
        self.unstage(self.cmd)

    def unstage(self, t):
        # write_now's buffer is free again, unless a deferred answer holds it (answer())
        b = t.buf
        if b is not None:
            if b is self.stage:
                self.staged = False          # (release(), written out for the usual case)
            else:
                self.release(b)
            t.buf = None

    async def then_unstage(self, t, aw):
        try:
            await aw
        finally:
            self.unstage(t)

    async def not_flagged(self, itt, lun, cdb, b1, edtl, want_out):
        # a CDB that sends data, the W bit not set
        if edtl:   # refused unexecuted
            await self.scsi_rsp(itt, 2, _sense(0x05, 0x24, 0), 0x04, want_out, 0)
            return
        # EDTL 0: a write of nothing, the whole length is residual overflow
        aw = self.run_cmd(self.command(itt, lun, cdb, b1 | 0x20, 0, want_out), b"")
        if aw is not None:
            await aw

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
            if want_out:
                await self.not_flagged(itt, lun, cdb, b1, edtl, want_out)
                return
            aw = self.run_cmd(self.command(itt, lun, cdb, b1, edtl, 0), None)
            if aw is not None:
                await aw
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
        t = Task(itt, lun, cdb, edtl, need, None, cmdsn, b1, want_out)
        t.conn = self
        t.since = self.tgt.clock()
        # what it sends unasked, known before a buffer may be granted to it (granted() asks for
        # the rest only once that is in)
        if b1 & 0x80 or self.p.initial_r2t:
            t.unsol_end = dlen       # F bit: no unsolicited Data-Out follows
        else:
            t.unsol_end = min(edtl, self.p.first_burst)
        self.buffer_for(t)
        self.pending[itt] = t   # from here the reaper watches it (and the close frees its buffer)
        if dlen:
            if not await self.recv_into(t, dlen):
                await self.reject(P.REJ_DIGEST)
                raise Closed()
        await self.progress(t)

    def buffer_for(self, t):
        # where a write's data goes (Pool): a small write's in its connection's own buffer or a
        # parking place, a large one's in a transfer buffer, else queued with what comes unasked
        # parked; none of these (every parking place taken): no buffer, BUSY
        need = t.need
        if not need:
            t.buf = _EMPTY
        elif need <= PARK:
            t.buf = self.stage_for(need) or self.tgt.park(self)
        elif need <= XFER:
            t.buf = self.tgt.take(self)
            if t.buf is None:
                t.buf = self.tgt.park(self)
                if t.buf is not None:
                    t.waiting = True
                    self.tgt.wait(t)
        if t.buf is None and need <= XFER:
            self.tgt.busy += 1

    def granted(self, t, b):
        """The pool gives queued task t transfer buffer b: what it parked moves there, and its data
        is asked for (at once, or once this connection is not in the middle of a send)."""
        if t.reads:
            self.lent = b
            self.ready.set()
            return
        p = t.buf
        if t.got:
            memoryview(b)[:t.got] = memoryview(p)[:t.got]
        self.tgt.unpark(self, p)
        t.buf = b
        t.waiting = False
        t.since = self.tgt.clock()
        if t.got >= t.unsol_end and not t.bad and not t.expired:
            self.grants.append(t)
            self.solicit_held()

    def busy(self):
        # whether a write is worth handing to the I/O processor's thread: only while other work
        # waits (writes it runs, or the next PDU already here); alone, waking the thread and
        # being woken by it costs more than it saves
        tgt = self.tgt
        if tgt.deferred or (tgt.chains is not None and tgt.chains.hot):
            return True
        if self.poll_r is None:
            self.poll_r = _poller(self.s, select.POLLIN)
        return _now(self.poll_r)

    def room(self):
        # whether a PDU header goes out whole now: nothing half sent and the socket writable (a
        # TCP socket polls writable only with a third of its buffer free)
        if self.stuck is not None or self.s is None:
            return False
        j = self.dj
        if j >= 0 and (not self.dma.wait(j, 0) or self.dma.st[j] == FAILED):
            return False             # (a DMA send in flight: its end is told, go_on)
        if self.poll_w is None:
            self.poll_w = _poller(self.s, select.POLLOUT)
        return _now(self.poll_w)

    def go_on(self):
        # what this connection holds back goes on where it can: the answer its reader holds for a
        # DMA send that has ended (tx_idle), R2Ts and answers of deferred writes held for the socket
        j = self.dj
        if j >= 0 and self.dma_ev is not None and self.dma.st[j] != BUSY:
            self.dma_ev.set()
        if self.grants:
            self.solicit_held()
        if self.late:
            self.send_late()

    def answer_late(self, itt, status, sense, rflags, resid, expdatasn):
        """The answer of a deferred write, sent now when it goes out whole and none waits before
        it, else queued for send_late."""
        if not self.late and self.room():
            self.rsp_whole(itt, status, sense, rflags, resid, expdatasn)
        else:
            self.late.append((itt, status, sense, rflags, resid, expdatasn))   # (the peer is behind)
            self.send_late()

    def send_late(self):
        """Answers of deferred writes, sent while each goes out whole (room()), else left for
        later: after the next PDU the reader handles, or the next reap."""
        while self.late and self.room():
            if not self.rsp_whole(*self.late.pop(0)):
                return

    def rsp_whole(self, itt, status, sense, rflags, resid, expdatasn):
        # rsp_now of an answer the socket has room for: False when it did not go out whole, and
        # the connection is closed (this connection only: its peer is gone)
        try:
            if self.rsp_now(itt, status, sense, rflags, resid, expdatasn) is None:
                return True
        except (Closed, OSError):
            pass
        self.kill("response not sent whole")
        return False

    async def answers_out(self):
        # every deferred write answered and this connection's answers sent: what a task
        # management or logout response must follow
        self.tgt.answer_all()
        while self.late and self.s is not None:
            self.send_late()
            if self.late:
                self.waits.writable()
                yield                   # to the scheduler until then (endpoints/ioready.py)

    def solicit_held(self):
        """The R2Ts of writes given a buffer, sent now if no PDU is half sent on this connection and
        the socket has room (so it takes a header whole), else left for later: after the next PDU
        the reader handles, or the next reap."""
        while self.grants and self.room():
            t = self.grants.pop(0)
            if self.pending.get(t.itt) is not t or t.burst_end > t.got:
                continue             # gone, or its R2T went out with the reader (progress)
            self.r2t(self.begin(P.OP_R2T, 0x80), t)
            n = self.head(0)
            try:
                whole = self.tx_at(self.s, self.tx, 0, n) == n
            except (Closed, OSError):
                whole = False            # (its peer is gone: this connection only)
            if not whole:
                self.kill("R2T not sent whole")
                return

    def r2t(self, r, t):
        # the R2T for task t's next burst, into header r (op and flags set)
        t.ttt = self.next_ttt()
        t.datasn = 0
        n = min(self.p.max_burst, t.edtl - t.got)
        t.burst_end = t.got + n
        P.put_lun(r, t.lun)
        put32(r, 16, t.itt)
        put32(r, 20, t.ttt)
        self.seqs(r)
        put32(r, 36, t.r2tsn)
        put32(r, 40, t.got)
        put32(r, 44, n)
        t.r2tsn += 1

    async def recv_into(self, t, n):
        """Data segment of n bytes for task t at offset t.got (in order)."""
        off = t.got
        if t.buf is not None and off < t.need:
            k = min(n, t.need - off)
            self.filling = t
            ok = await self.read_data(memoryview(t.buf)[off:off + k], k, n - k)
            self.filling = None
            if t.waiting and self.tgt.free:
                self.tgt.grant()         # a buffer came while its parked data was being read
        else:
            ok = await self.read_data(None, 0, n)
        t.got += n
        return ok

    async def progress(self, t):
        if t.got >= t.edtl:
            del self.pending[t.itt]
            if t.waiting:   # (cannot be: unsolicited data is at most a parking place)
                self.forget(t)
            if t.bad:   # ABORTED COMMAND, DATA PHASE ERROR
                await self.scsi_rsp(t.itt, 2, _sense(0x0B, 0x4B, 0), 0, 0, t.r2tsn)
            elif t.expired:   # ABORTED COMMAND, INITIATOR RESPONSE TIMEOUT
                await self.scsi_rsp(t.itt, 2, _sense(0x0B, 0x4B, 0x06), 0, 0, t.r2tsn)
            elif t.buf is None:
                await self.unbuffered(t)
            else:
                try:
                    aw = self.run_cmd(t, memoryview(t.buf)[:t.need])
                    if aw is not None:
                        await aw
                finally:   # also when the connection is closed while the answer waits
                    self.forget(t)
            return
        if t.got < t.unsol_end or t.got < t.burst_end or t.waiting:
            return   # more of the current burst is on its way, or its buffer (then its R2T) is
        if t.buf is None and not t.bad and not t.expired:
            # no buffer to put its data in: answered now, the rest of its data never solicited
            # (the initiator sends nothing more for a command it has the status of)
            del self.pending[t.itt]
            await self.unbuffered(t)
            return
        if t in self.grants:          # given a buffer while its data was read: asked for here
            self.grants.remove(t)
        self.r2t(self.begin(P.OP_R2T, 0x80), t)
        await self.emit(None, 0)

    async def unbuffered(self, t):
        # a write that got no buffer: too long for one, or every parking place taken
        if t.need > XFER:   # ILLEGAL REQUEST, INVALID FIELD IN CDB (transfer length)
            await self.scsi_rsp(t.itt, 2, _sense(0x05, 0x24, 0), 0, 0, t.r2tsn)
        else:               # BUSY, the initiator retries
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
            self.forget(t)
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
        # the awaitable of what is left to do for the command, or None: the usual command is done
        # without a coroutine of its own
        if t.flags & 0x40 and t.edtl > COPY_MAX:
            return self.run_big(t, data_out)
        return self.finish_now(t, data_out)

    async def run_big(self, t, data_out):
        big = await self.tgt.lease(self)   # data-in straight into a buffer of ours, sent from there
        if big is None:
            await self.scsi_rsp(t.itt, 8, None, 0, 0, 0)
            return
        try:
            await self.finish_cmd(t, data_out, big)
        finally:
            self.release(big)

    def finish_now(self, t, data_out):
        """finish_cmd for data-in of up to COPY_MAX (in the connection's send buffer), as a plain
        call: the awaitable of what is left (a forwarded command, a send the peer is behind on), or
        None."""
        nexus = self.nexus_for(t.lun)
        where = self.routed(nexus, t)
        if where:
            return self.finish_cmd(t, data_out, None)
        if where is None:
            return self.answer(t, 2, _sense(0x04, 0x44, 0), b"", None)
        # a read: its data straight into the buffer it is sent from
        status, sense, data_in = self.run_here(nexus, t, data_out,
                                               self.small_view() if t.flags & 0x40 else None)
        return self.answer(t, status, sense, data_in, None)

    async def finish_cmd(self, t, data_out, big):
        """Runs task t with its data-out and sends its Data-In and status; `big` is a transfer buffer
        for the data-in of a large read (None: the connection's send buffer, copied there)."""
        nexus = self.nexus_for(t.lun)
        where = self.routed(nexus, t)
        if where:
            # of a pair: the drive's owner runs it (ALUA active/non-optimized here)
            try:
                status, sense, data_in = await self.ctl.pair.forward(nexus, t.cdb, data_out)
            except Exception as e:
                status, sense, data_in = self.failed(t, e)
        elif where is None:
            status, sense, data_in = 2, _sense(0x04, 0x44, 0), b""
        else:
            status, sense, data_in = self.run_here(nexus, t, data_out,
                                                   None if big is None else self.tgt.views[id(big)])
        aw = self.answer(t, status, sense, data_in, big)
        if aw is not None:
            await aw

    def routed(self, nexus, t):
        # of a pair: whether the partner runs it; None when that cannot be told (the command fails)
        pair = self.ctl.pair
        if pair is None:
            return False
        try:
            return pair.routed(nexus, t.cdb)
        except Exception as e:
            self.failed(t, e)
            return None

    def run_here(self, nexus, t, data_out, din):
        # din: the view data-in is read into (the core's own buffer when None or too short)
        try:
            return self.ctl.execute_here(nexus, t.cdb, data_out, din,
                                         t.flags & 0x20 and t.edtl >= CHAIN_MIN and self.busy())
        except Exception as e:
            return self.failed(t, e)

    def failed(self, t, e):
        sys.print_exception(e, sys.stderr)
        self.tgt.log("error", "iSCSI port %d: command 0x%02x failed inside the controller: %r"
                     % (self.port, t.cdb[0], e))
        return 2, _sense(0x04, 0x44, 0), b""

    def answer(self, t, status, sense, data_in, big):
        """Sends the command's Data-In and status while the socket takes them: None once all is
        out, else the awaitable that sends the rest as the peer takes it."""
        itt = t.itt
        flags = t.flags
        edtl = t.edtl
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
            ticket = self.ctl.chained()
            if ticket:
                # the I/O processor's thread writes it: answered when it is done, its data-out
                # kept where it is until then (Pool.complete)
                self.tgt.defer(self, itt, rflags, resid, t.r2tsn, t.buf, ticket)
                t.buf = None
                return None
            return self.rsp_now(itt, status, sense, rflags, resid, t.r2tsn)
        n = len(data_in)
        xfer = n if (flags & 0x40) else 0
        if xfer > edtl:
            xfer = edtl
        if n > edtl or (n and not flags & 0x40):
            rflags, resid = 0x04, n - xfer
        elif n < edtl:
            rflags, resid = 0x02, edtl - n
        if not xfer:
            return self.rsp_now(itt, status, sense, rflags, resid, 0)
        if big is None:
            # data-in not read into the connection's buffer (the one no DMA send is using) is
            # copied there: the core's own buffer is reused by the next execute (any connection)
            self.small_view()
            buf = self.small
            if uctypes.addressof(data_in) != uctypes.addressof(buf) + _HEAD:
                buf[_HEAD:_HEAD + xfer] = data_in if len(data_in) == xfer else data_in[:xfer]
        else:
            buf = big
            if uctypes.addressof(data_in) != uctypes.addressof(big) + _HEAD:
                # not read into our buffer (a short answer of the core): copy it there
                if xfer > XFER:
                    buf = bytearray(_HEAD + xfer + TAIL)
                buf[_HEAD:_HEAD + xfer] = data_in[:xfer]
        if sense:
            sense = bytes(sense)
        # the Data-In sequence: its state on the connection (one answer at a time), so a peer
        # that falls behind costs a coroutine (din_rest) and the usual answer none
        # (one name a statement: an assignment of four or more names builds a tuple)
        self.d_buf = buf
        self.d_xfer = xfer
        self.d_itt = itt
        self.d_status = status
        self.d_sense = sense
        self.d_rflags = rflags
        self.d_resid = resid
        self.d_off = self.d_datasn = 0
        if not self.tx_free():
            return self.later(self.din_start)
        return self.din_start()

    def din_start(self):
        # the Data-In of the answer: a single PDU from the connection's own buffer goes to the
        # DMA engine while other work waits (the main loop goes on to it meanwhile; alone, the
        # hand-over and the thread's wake-up only add to the answer's time), others as din_now
        buf = self.d_buf
        xfer = self.d_xfer
        if buf is self.small and not self.d_sense and DMA_MIN <= xfer <= self.p.max_burst \
                and xfer <= self.p.mrdsl_out and (self.rp != self.re or self.busy()) \
                and self.dma_channel() and (self.spare is not None or self.tgt.spare(self)):
            hl = P.BHS + 4 if self.hd else P.BHS
            e = self.expcmdsn
            struct.pack_into(_DIN, buf, _HEAD - hl, P.OP_DATA_IN, 0x81 | self.d_rflags, 0,
                             self.d_status, xfer, self.d_itt, P.ALL_ONES, self.statsn, e,
                             (e + WINDOW - 1) & 0xFFFFFFFF, 0, 0, self.d_resid)
            tl = self.frame(buf, _HEAD - hl, _HEAD, xfer)
            self.dma_send(buf, _HEAD - hl, hl + xfer + tl)
            self.next_statsn()
            # the next answer goes into the other buffer (both are alike: the one that goes
            # back to the pool at the close is whichever is the spare then)
            self.small, self.spare = self.spare, buf
            self.small_in, self.spare_in = self.spare_in, self.small_in
            return None
        if self.din_now():
            return self.din_rest()
        return self.rsp_after()

    def din_now(self):
        # Data-In PDUs of the answer while the socket takes each whole; True when it stopped in
        # the middle of one (d_at, d_k, d_tl, d_w: where, its data length, trailer, bytes sent)
        buf = self.d_buf
        xfer = self.d_xfer
        off = self.d_off
        datasn = self.d_datasn
        collapse = not self.d_sense
        seg = self.p.mrdsl_out
        if seg > P.TARGET_MRDSL * 4:
            seg = P.TARGET_MRDSL * 4
        burst = self.p.max_burst
        hl = P.BHS + 4 if self.hd else P.BHS
        e = self.expcmdsn   # no command arrives while this one answers
        emax = (e + WINDOW - 1) & 0xFFFFFFFF
        # per PDU, names are locals and sizes compared inline: each global or builtin looked up
        # costs a dictionary probe
        pack = struct.pack_into
        din = P.OP_DATA_IN
        ones = P.ALL_ONES
        itt = self.d_itt
        s = self.s
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
                fl = 0x81 | self.d_rflags
                st = self.d_status
                sn = self.next_statsn()
                rs = self.d_resid
            at = _HEAD + off
            # the header goes right before its data (over data of the PDU already sent)
            pack(_DIN, buf, at - hl, din, fl, 0, st, k, itt, ones, sn, e, emax, datasn, off, rs)
            tl = self.frame(buf, at - hl, at, k)
            n = hl + k + tl
            w = self.tx_at(s, buf, at - hl, n)
            if w < n:
                if self.stuck is None:   # the rest of the Data-In has the task timeout to go out
                    self.stuck = self.tgt.clock()
                self.d_off, self.d_datasn = off, datasn
                self.d_at = at - hl
                self.d_hl = hl
                self.d_k = k
                self.d_tl = tl
                self.d_w = w
                return True
            if tl:   # put back the next PDU's data under this one's pad/digest
                buf[at + k:at + k + tl] = memoryview(self.save)[:tl]
            datasn += 1
            off += k
        self.d_off, self.d_datasn = off, datasn
        self.stuck = None
        return False

    async def din_rest(self):
        # the Data-In the peer fell behind on: the PDU cut short, then the next ones
        while True:
            at, k, tl = self.d_at, self.d_k, self.d_tl
            end = at + self.d_hl + k             # of its data
            await self.send(memoryview(self.d_buf)[at + self.d_w:end + tl])
            if tl:
                self.d_buf[end:end + tl] = memoryview(self.save)[:tl]
            self.d_datasn += 1
            self.d_off += k
            if not self.din_now():
                break
        aw = self.rsp_after()
        if aw is not None:
            await aw

    def rsp_after(self):
        # the status, when it could not ride on the last Data-In (sense data goes with it)
        if self.d_sense:
            return self.rsp_now(self.d_itt, self.d_status, self.d_sense, self.d_rflags, self.d_resid, self.d_datasn)
        return None

    async def scsi_rsp(self, itt, status, sense, rflags, resid, expdatasn):
        aw = self.rsp_now(itt, status, sense, rflags, resid, expdatasn)
        if aw is not None:
            await aw

    def rsp_now(self, itt, status, sense, rflags, resid, expdatasn):
        """A SCSI Response, sent now: None, or the awaitable that sends what the socket did not take
        (or all of it, once a DMA send in flight on this connection has ended)."""
        if self.dj >= 0 and not self.tx_free():
            return self.later(self.rsp_now, itt, status, sense, rflags, resid, expdatasn)
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
            return self.emit_now(d, 2 + n)
        return self.emit_now(None, 0)
