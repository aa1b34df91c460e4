# Host ports as iSCSI targets (RFC 7143): one portal per host port, one target name per board.
# The transport maps PDU fields to ctl.execute(nexus, cdb, data_out) and never interprets CDBs.
# One connection per session, ErrorRecoveryLevel 0: any protocol breach closes the connection
# (the initiator logs in again); commands run only once all their data-out has arrived, so a
# vanished client can never leave a write half-applied. See endpoints/iscsi/README.md.
import asyncio
import errno
import gc
import os
import socket
import struct
import sys
import time
import uctypes
from micropython import const

from endpoints.iscsi import pdu as P
from endpoints.iscsi.pdu import get32, put32, put24, get24
from control.commands_diag import CONSOLE_INITIATOR   # the name iSCSI hosts may not log in under

_ioq = asyncio.core._io_queue

WINDOW = const(64)           # commands the initiator may queue (MaxCmdSN - ExpCmdSN + 1)
try:
    from scsi.core import MAX_XFER_BLOCKS as _MXB   # the core's limit (VPD B0), one transfer buffer
    XFER = _MXB * 512
except ImportError:
    XFER = 1048576
MAX_LOGIN_TEXT = const(65536)
LOGIN_TIMEOUT = const(30)    # seconds a connection may take to reach full feature phase
POOL_MAX = const(8)          # transfer buffers in use at once, over all connections
POOL_IDLE = const(4)         # idle transfer buffers kept for reuse
SHARE = const(2)             # transfer buffers one connection may hold at once
MAX_CONNS = const(64)        # connections served at once, over both portals
MAX_PER_HOST = const(16)     # of them from one source address
TASK_TIMEOUT = const(10)     # seconds a command's data may take to move (board: iscsi_task_timeout_s)
REAP_MS = const(250)         # how often stalled tasks, sends and pool waiters are looked for
# CHAP guessing: after n failed responses in a row from one source address, the next response from
# it is checked only once CHAP_FIRST_MS * 2^(n-1) (at most CHAP_MAX_MS) have passed since the last
CHAP_FIRST_MS = const(1000)
CHAP_MAX_MS = const(300000)
CHAP_FORGET_MS = const(3600000)   # an address quiet this long starts afresh
CHAP_WARN = const(5)         # failures in a row that make an event (then 8, 16, 32, ...)
CHAP_TABLE = const(64)       # source addresses remembered
COPY_MAX = const(65536)      # reads up to this EDTL use the core's buffer and a per-connection copy
_SINK = const(65536)
_SMALL = const(4096)         # data segments up to this size go out in one write with the header
# Data-In is sent as one write of header + data (one syscall per PDU, each costs as much as a
# 64 KiB copy on loopback): data buffers keep _HEAD bytes before the data for the header and its
# digest, and _TAIL after it for pad and data digest
_HEAD = const(52)
_TAIL = const(8)
_DIN = ">BBBBI8xIIIIIIII"    # Data-In BHS: op, flags, 0, status, DSL, LUN 0, ITT, TTT, StatSN,
                             # ExpCmdSN, MaxCmdSN, DataSN, buffer offset, residual
_ZERO = bytes(48)
# received bytes are taken from the socket up to _RB at a time: the headers of commands queued by
# the initiator then cost one read together instead of one each
_RB = const(8192)

_EAGAIN = (errno.EAGAIN, getattr(errno, "EWOULDBLOCK", errno.EAGAIN))


class Closed(Exception):
    pass


def _wait_r(s):
    yield _ioq.queue_read(s)


def _wait_w(s):
    yield _ioq.queue_write(s)


def _sense(key, asc, ascq):
    s = bytearray(18)
    s[0] = 0x70
    s[2] = key
    s[7] = 10
    s[12] = asc
    s[13] = ascq
    return s


def _host(addr):
    # the source address of a peer, without what its sender may vary (port, IPv6 flow label):
    # family + IPv4 address, or family + IPv6 address, from the unix port's sockaddr bytes
    if isinstance(addr, tuple):
        return addr[0]
    if addr[0] == 10:   # AF_INET6
        return bytes(addr[0:2]) + bytes(addr[8:24])
    return bytes(addr[0:2]) + bytes(addr[4:8])


class ChapGuard:
    """Failed CHAP responses per source address (see CHAP_FIRST_MS): a response that comes before
    the address's delay has passed is refused unchecked, so guesses cannot be made faster than the
    delay allows however many connections carry them. A success forgets the address."""

    def __init__(self, clock, log):
        self.clock = clock
        self.log = log
        self.seen = {}          # address -> [failures in a row, ticks of the last failure]

    def _entry(self, addr, now):
        e = self.seen.get(addr)
        if e is not None:
            age = time.ticks_diff(now, e[1])
            if 0 <= age < CHAP_FORGET_MS:
                return e, age
            del self.seen[addr]
        return None, 0

    def wait_ms(self, addr):
        """How long before a response from addr is checked (0: now)."""
        e, age = self._entry(addr, self.clock())
        if e is None:
            return 0
        return max(0, min(CHAP_FIRST_MS << min(e[0] - 1, 20), CHAP_MAX_MS) - age)

    def result(self, addr, ok, who):
        if ok:
            self.seen.pop(addr, None)
            return
        now = self.clock()
        e, _ = self._entry(addr, now)
        if e is None:
            if len(self.seen) >= CHAP_TABLE:   # forget the address whose last failure is oldest
                old = min(self.seen, key=lambda a: time.ticks_diff(self.seen[a][1], now))
                del self.seen[old]
            e = self.seen[addr] = [0, now]
        e[0] += 1
        e[1] = now
        n = e[0]
        if n == CHAP_WARN or (n > CHAP_WARN and not n & (n - 1)):
            self.log("warn", "iSCSI: %d failed CHAP logins in a row from %s (last as %s); next "
                     "check in %d s" % (n, _show(addr), who, self.wait_ms(addr) // 1000))


def _show(addr):
    if isinstance(addr, bytes) and len(addr) >= 6 and addr[0] == 2:   # AF_INET
        return "%d.%d.%d.%d" % tuple(addr[2:6])
    return repr(addr)


class Target:
    """Per-board state shared by its portals: the portal list (for SendTargets), sessions, the
    transfer-buffer pool and the clock that times tasks and CHAP failures (tests bring their own)."""

    def __init__(self, ctl, clock=time.ticks_ms):
        self.ctl = ctl
        self.portals = []       # (host, tcp_port, port_no)
        self.sessions = {}      # (initiator, isid, port_no) -> Conn
        self.tsih = 0
        self.listeners = []
        self.conns = set()
        self.free = []          # idle transfer buffers (XFER bytes, with _HEAD/_TAIL room)
        self.out = 0            # transfer buffers handed out
        self.queue = []         # connections waiting for a transfer buffer, first come first served
        self.clock = clock
        board = getattr(ctl, "board", None)
        s = board.get("iscsi_task_timeout_s") if isinstance(board, dict) else None
        self.timeout_ms = (s or TASK_TIMEOUT) * 1000
        self.chap = ChapGuard(clock, self.log)
        self.reaper = None
        self.refused = 0        # connections closed at once by admit()

    async def lease(self, c):
        """A transfer buffer for connection c, or None (-> BUSY) when c already holds its SHARE or
        none came free within twice the task timeout. While the pool is exhausted connections wait in
        turn; a buffer given back goes to the first of them."""
        if c.held >= SHARE:
            return None
        b = None if self.queue else self._take()
        if b is None:
            if c.ready is None:
                c.ready = asyncio.Event()
            c.ready.clear()
            c.waiting = self.clock()
            self.queue.append(c)
            await c.ready.wait()
            b, c.lent = c.lent, None
            if b is None:
                return None
        c.held += 1
        return b

    def _take(self):
        """A transfer buffer, or None when POOL_MAX are in use or memory is short."""
        if self.free:
            self.out += 1
            return self.free.pop()
        if self.out >= POOL_MAX:
            return None
        try:
            b = bytearray(XFER + _HEAD + _TAIL)
        except MemoryError:
            gc.collect()
            try:
                b = bytearray(XFER + _HEAD + _TAIL)
            except MemoryError:
                return None
        self.out += 1
        return b

    def give(self, b):
        if self.queue:   # straight to the connection that has waited longest
            c = self.queue.pop(0)
            c.lent = b
            c.ready.set()
            return
        self.out -= 1
        if len(self.free) < POOL_IDLE:
            self.free.append(b)

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
            c.lent = None
            c.ready.set()

    def admit(self, peer):
        """Whether a new connection from peer is served: each connection costs memory, so one
        host opening many cannot take what the others need (nor the descriptors)."""
        mine = 0
        for c in self.conns:
            mine += c.peer == peer
        if len(self.conns) < MAX_CONNS and mine < MAX_PER_HOST:
            return True
        self.refused += 1
        n = self.refused
        if not n & (n - 1):   # the 1st, 2nd, 4th, 8th... refusal: the log cannot be flooded
            self.log("warn", "iSCSI: connection from %s closed at once (%d from it, %d in all; "
                     "%d closed so far)" % (_show(peer), mine, len(self.conns), n))
        return False

    def next_tsih(self):
        self.tsih = (self.tsih % 0xFFFF) + 1
        return self.tsih

    def log(self, level, text):
        try:
            self.ctl.events.log(level, text)
        except Exception as e:   # logging must never take a connection down
            print("iscsi: event log failed: %r" % e, file=sys.stderr)


_targets = {}


def _bound_port(sock):
    # the unix port has no getsockname(): find our socket's inode in /proc/net/tcp
    ino = str(os.stat("/proc/self/fd/%d" % sock.fileno())[1])
    for fn in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(fn) as f:
                for line in f:
                    p = line.split()
                    if len(p) > 9 and p[9] == ino:
                        return int(p[1].rsplit(":", 1)[1], 16)
        except OSError:
            pass
    raise OSError("cannot find bound port")


async def start(ctl, port_no, host="127.0.0.1", tcp_port=3260):
    """Open the portal of host port `port_no`; returns the TCP port actually bound."""
    tgt = _targets.get(id(ctl))
    if tgt is None:
        tgt = _targets[id(ctl)] = Target(ctl)
    ai = socket.getaddrinfo(host, tcp_port)[0]
    s = socket.socket(ai[0], socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(ai[-1])
    s.listen(16)
    s.setblocking(False)
    actual = _bound_port(s) if tcp_port == 0 else tcp_port
    if tgt.reaper is None:
        tgt.reaper = asyncio.create_task(tgt.reap_forever())
    tgt.portals.append((host, actual, port_no))
    tgt.listeners.append((s, asyncio.create_task(_accept(tgt, s, port_no))))
    tgt.log("info", "iSCSI portal %s:%d up (host port %d)" % (host, actual, port_no))
    return actual


async def stop(ctl):
    """Close the portals and every connection of this board (used by tests and shutdown)."""
    tgt = _targets.pop(id(ctl), None)
    if tgt is None:
        return
    for s, task in tgt.listeners:
        task.cancel()
        s.close()
    if tgt.reaper is not None:
        tgt.reaper.cancel()
    for c in list(tgt.conns):
        c.kill()
    await asyncio.sleep_ms(0)


async def _accept(tgt, ls, port_no):
    while True:
        await _wait_r(ls)
        try:
            s, addr = ls.accept()
        except OSError as e:
            if e.errno not in _EAGAIN:   # out of descriptors or the like: do not spin on it
                await asyncio.sleep_ms(100)
            continue
        peer = _host(addr)
        if not tgt.admit(peer):
            s.close()
            continue
        s.setblocking(False)
        try:
            s.setsockopt(6, 1, 1)   # IPPROTO_TCP, TCP_NODELAY: header and data go out at once
        except OSError:
            pass
        c = Conn(tgt, s, port_no, peer)
        tgt.conns.add(c)
        c.task = asyncio.create_task(c.run())


class Task:
    """A write waiting for its data-out (the only kind of task that is ever pending)."""

    def __init__(self, itt, lun, cdb, edtl, need, buf, cmdsn):
        self.itt = itt
        self.lun = lun
        self.cdb = cdb
        self.edtl = edtl          # what the initiator will send
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


class Conn:
    def __init__(self, tgt, sock, port_no, peer=None):
        self.tgt = tgt
        self.ctl = tgt.ctl
        self.s = sock
        self.port = port_no
        self.peer = peer             # source address (CHAP failures are counted per address)
        self.held = 0                # pool buffers this connection holds (at most SHARE)
        self.ready = None            # set when a pool buffer is lent while waiting in tgt.queue
        self.lent = None
        self.waiting = 0             # ticks since when it waits in tgt.queue
        self.stuck = None            # ticks since when a send waits for the peer to take data
        self.filling = None          # the task whose data-out is being read
        self.task = None
        self.p = P.Params()
        self.hdr = bytearray(P.BHS)
        self.hmv = memoryview(self.hdr)
        self.ahs = bytearray(1020)
        self.tx = bytearray(P.BHS + 4 + _SMALL + 8)   # outgoing header, small data, digests
        self.txmv = memoryview(self.tx)
        self.dig = bytearray(4)
        self.sbuf = bytearray(254)
        self.text_more = None
        self.text_ttt = P.ALL_ONES
        self.cid = 0
        self.itt = 0
        self.chap_c = None
        self.chap_id = 0
        self.pad = bytearray(4)
        self.sink = None
        self.rx = None               # small data segments (text, NOP pings)
        self.small = None            # copy of small read data (COPY_MAX + room), allocated on first use
        self.stage = None            # data-out of one small write (COPY_MAX), allocated on first use
        self.staged = False          # a pending write is using it
        self.save = bytearray(_TAIL)
        self.rb = bytearray(_RB)
        self.rbv = memoryview(self.rb)
        self.rp = 0                  # unread bytes of rb: rp..re
        self.re = 0
        self.pending = {}            # itt -> Task
        self.ttt = 0
        self.statsn = 0
        self.expcmdsn = 0
        self.isid = b""
        self.tsih = 0
        self.key = None
        self.iname = "?"
        self.discovery = False
        self.full = False
        self.nexus = {}
        self.hd = False              # digests become active after login
        self.dd = False
        self.closing = False
        self.why = "reinstated"      # what ended the connection when it is cancelled from outside

    # ---------- socket I/O ----------
    # _rx/_tx are plain calls: when the socket is ready (the usual case under load) a PDU costs no
    # coroutine of its own; recv/send wait for readiness when it is not
    def _rx(self, s, mv):
        """Bytes of mv filled now from what was received (0: none waiting); Closed when the peer is
        gone."""
        n = len(mv)
        k = self.re - self.rp
        if not k:
            if n >= _RB:
                return self._read(s, mv)   # a large segment: straight into place
            k = self._read(s, self.rb)
            if not k:
                return 0
            self.rp = 0
            self.re = k
        if k > n:
            k = n
        p = self.rp
        mv[0:k] = self.rbv[p:p + k]
        self.rp = p + k
        return k

    def _read(self, s, mv):
        try:
            r = s.readinto(mv)
        except OSError as e:
            if e.errno in _EAGAIN:
                return 0
            raise Closed()
        if r is None:
            return 0
        if not r:
            raise Closed()
        return r

    def _tx(self, s, mv):
        """Bytes of mv the socket took now (0: its buffer is full)."""
        try:
            r = s.write(mv)
        except OSError as e:
            if e.errno in _EAGAIN:
                return 0
            raise Closed()
        return r or 0

    async def recv(self, mv):
        got = self._rx(self.s, mv)
        if got < len(mv):
            await self.recv_rest(mv, got)

    async def recv_rest(self, mv, got):
        s = self.s
        n = len(mv)
        while got < n:
            r = self._rx(s, mv[got:] if got else mv)
            if r:
                got += r
            else:
                await _wait_r(s)

    async def send(self, mv):
        s = self.s
        n = len(mv)
        off = self._tx(s, mv)
        if off < n:   # the peer is not reading: the reaper closes us if it stays so
            mine = self.stuck is None   # else a Data-In sequence is timed as a whole
            if mine:
                self.stuck = self.tgt.clock()
            while off < n:
                await _wait_w(s)
                off += self._tx(s, mv[off:])
            if mine:
                self.stuck = None

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
        elif len(b) == XFER + _HEAD + _TAIL:
            self.held -= 1
            self.tgt.give(b)

    def expire(self, t):
        # its data-out did not all come within the task timeout (a trickle is no better than
        # nothing): the buffer goes back to the pool at once; the command never runs, and the rest
        # of its data, if it still comes, is answered with INITIATOR RESPONSE TIMEOUT
        self.release(t.buf)
        t.buf = None
        t.expired = True
        self.tgt.log("warn", "iSCSI port %d: data-out from %s for ITT 0x%x not in within %d s, "
                     "task aborted" % (self.port, self.iname, t.itt, self.tgt.timeout_ms // 1000))

    def kill(self, why="reinstated"):
        self.closing = True
        self.why = why
        if self.task is not None and self.task is not asyncio.current_task():
            self.task.cancel()
        self._cleanup()

    def _cleanup(self):
        if self.s is not None:
            try:
                self.s.close()
            except OSError:
                pass
            self.s = None
        for t in self.pending.values():
            self.release(t.buf)
        self.pending = {}
        if self in self.tgt.queue:
            self.tgt.queue.remove(self)
        if self.lent is not None:   # lent while we were being closed
            self.held += 1
            self.release(self.lent)
            self.lent = None
        self.tgt.conns.discard(self)
        if self.key is not None and self.tgt.sessions.get(self.key) is self:
            del self.tgt.sessions[self.key]
            self.nexus_gone()

    def nexus_gone(self):
        # a session is an I_T nexus of its own (initiator name + ISID, RFC 7143): when it ends
        # the core drops its state for it (reservations, unit attentions)
        hook = getattr(self.ctl, "nexus_lost", None)
        if hook is None:
            return
        try:
            hook(self.iname, self.port, self.isid)
        except Exception as e:
            self.tgt.log("error", "iSCSI: nexus_lost hook failed: %r" % e)

    async def run(self):
        why = "closed"
        try:
            await asyncio.wait_for(self.login(), LOGIN_TIMEOUT)
            if self.full:
                await self.serve()
        except Closed:
            why = "connection lost" if not self.closing else "closed"
        except asyncio.TimeoutError:
            why = "login timed out"
        except asyncio.CancelledError:
            why = self.why
        except MemoryError:
            why = "out of memory"
        except Exception as e:   # a bug must cost one connection, never the firmware
            why = "internal error %r" % e
            sys.print_exception(e, sys.stderr)
        if self.full:
            self.tgt.log("warn" if why not in ("closed", "reinstated") else "info",
                         "iSCSI port %d: session %s %s" % (self.port, self.iname, why))
        self._cleanup()

    # ---------- reading PDUs ----------
    async def read_header(self):
        await self.recv(self.hmv)
        h = self.hdr
        if not self.full and h[0] & 0x3F != P.OP_LOGIN:
            raise Closed()   # anything but a login request before login completes: not iSCSI
        if h[4] or self.hd:
            return await self.header_ext()
        return get24(h, 5)

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
        t = self.tx
        t[0:48] = _ZERO
        t[0] = op
        t[1] = flags
        return t

    def seqs(self, t, statsn=True):
        # StatSN / ExpCmdSN / MaxCmdSN in bytes 24..35 of every target PDU that has them
        e = self.expcmdsn
        if statsn:
            struct.pack_into(">III", t, 24, self.statsn, e, (e + WINDOW - 1) & 0xFFFFFFFF)
        else:
            struct.pack_into(">II", t, 28, e, (e + WINDOW - 1) & 0xFFFFFFFF)

    async def emit(self, data=None, n=0):
        """Send the PDU whose header is in self.tx with n bytes of data (bytes-like)."""
        t = self.tx
        put24(t, 5, n)
        hl = P.BHS
        if self.hd:
            P.put_le32(t, hl, P.crc32c(self.txmv[:P.BHS]))
            hl += 4
        padn = -n & 3
        if n <= _SMALL:
            # small PDU: one write (header + data + pad + digest) from the preallocated buffer
            if n:
                t[hl:hl + n] = data[:n] if len(data) != n else data
            end = hl + n
            for i in range(padn):
                t[end + i] = 0
            end += padn
            if self.dd and n:
                P.put_le32(t, end, P.crc32c(self.txmv[hl:end]))
                end += 4
            await self.send(self.txmv[:end])
            return
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

    async def reject(self, reason):
        bad = bytes(self.hdr)
        t = self.begin(P.OP_REJECT, 0x80)
        t[2] = reason
        put32(t, 16, P.ALL_ONES)
        self.seqs(t)
        self.statsn = (self.statsn + 1) & 0xFFFFFFFF
        self.tgt.log("warn", "iSCSI port %d: reject reason 0x%02x opcode 0x%02x from %s"
                     % (self.port, reason, bad[0] & 0x3F, self.iname))
        await self.emit(bad, P.BHS)

    # ---------- login phase ----------
    async def login(self):
        p = self.p
        text = b""
        stage = -1
        started = False
        chap = None
        offered = None
        authed = False
        answered = set()
        first_sent = False
        mrdsl_sent = False
        while True:
            dlen = await self.read_header()
            h = self.hdr
            if h[0] & 0x3F != P.OP_LOGIN:
                raise Closed()   # anything but a login request before login completes
            b1 = h[1]
            tbit = b1 & 0x80
            cbit = b1 & 0x40
            csg = (b1 >> 2) & 3
            nsg = b1 & 3
            data = await self.read_small(dlen, 8192)
            if data is None or len(text) + len(data) > MAX_LOGIN_TEXT:
                await self.login_fail(0x0200, "login data too long or digest error")
                return
            if not started:
                started = True
                self.isid = bytes(h[8:14])
                self.tsih = (h[14] << 8) | h[15]
                self.itt = get32(h, 16)
                self.cid = (h[20] << 8) | h[21]
                self.expcmdsn = get32(h, 24)
                self.statsn = get32(h, 28)
                if h[3] > 0:   # Version-min: we speak version 0 only
                    await self.login_fail(0x0205, "unsupported version")
                    return
            if csg == 2 or (tbit and (nsg == 2 or nsg <= csg or cbit)) or csg < stage:
                await self.login_fail(0x0200, "bad stage transition")
                return
            stage = csg
            text += data
            if cbit:   # more text follows: acknowledge with an empty response
                await self.login_rsp(0, csg, 0, b"")
                continue
            try:
                pairs = P.parse_text(text)
            except P.TextError as e:
                await self.login_fail(0x0200, "login text: %s" % e)
                return
            text = b""
            reply = []
            if not first_sent:   # RFC 7143 13.9: in the first login response
                first_sent = True
                reply.append(("TargetPortalGroupTag", str(self.port + 1)))
            for k, v in pairs:
                if k == "AuthMethod":
                    if csg != 0:
                        reply.append((k, "Reject"))
                        continue
                    offered = v     # answered below: the credential depends on the InitiatorName
                    continue
                if k.startswith("CHAP_"):
                    if csg != 0 or (p.auth_methods != "CHAP" and offered is None):
                        await self.login_fail(0x0201, "CHAP keys out of place")
                        return
                    continue   # handled below, as a set
                if k in answered:
                    await self.login_fail(0x0200, "key %s negotiated twice" % k)
                    return
                try:
                    r = P.negotiate(p, k, v)
                except P.TextError as e:
                    await self.login_fail(0x0200, str(e))
                    return
                answered.add(k)
                if r is not None:
                    reply.append((k, r))
            # who is logging in (RFC 7143: named in the first request, so before any credential)
            if p.initiator_name is None:
                await self.login_fail(0x0207, "InitiatorName missing")
                return
            if p.initiator_name == CONSOLE_INITIATOR:
                await self.login_fail(0x0202, "%s is the console's own name" % CONSOLE_INITIATOR)
                return
            if offered is not None:
                chap = self.creds()
                want = "CHAP" if chap else "None"
                if want not in offered.split(","):
                    await self.login_fail(0x0201, "no acceptable AuthMethod in %r" % offered)
                    return
                p.auth_methods = want
                reply.append(("AuthMethod", want))
                answered.add("AuthMethod")
                authed = want == "None"
                offered = None
            if p.auth_methods == "CHAP" and not authed:
                ck = dict(pairs)
                if ("CHAP_N" in ck or "CHAP_R" in ck) and self.tgt.chap.wait_ms(self.peer):
                    # failed before, and its delay has not passed: not even checked
                    await self.login_fail(0x0301, "CHAP retry too soon after a failure")
                    return
                res = self.chap_step(chap, ck, reply)
                if res is False:
                    await self.login_fail(0x0201, "CHAP authentication failed")
                    return
                authed = res
            self.iname = p.initiator_name
            st = p.session_type or "Normal"
            self.discovery = st == "Discovery"
            if not self.discovery:
                if p.target_name is None:
                    await self.login_fail(0x0207, "TargetName missing")
                    return
                if p.target_name != self.ctl.iqn:
                    await self.login_fail(0x0203, "no target %s" % p.target_name)
                    return
            if "TargetAlias" not in answered and not self.discovery and csg == 1:
                answered.add("TargetAlias")
                reply.append(("TargetAlias", "raidboard-port%d" % self.port))
            transit = False
            if tbit:
                if p.auth_methods is None and not authed:
                    # no security stage (or no AuthMethod in it): only allowed without CHAP
                    if self.creds():
                        await self.login_fail(0x0201, "authentication required")
                        return
                    authed = True
                transit = authed or csg != 0
                if csg != 0 and not authed:
                    await self.login_fail(0x0201, "authentication not completed")
                    return
            if not mrdsl_sent and (csg == 1 or (transit and nsg == 3)):
                # ours is declarative: say it once, or the initiator assumes 8 KiB
                mrdsl_sent = True
                reply.append(("MaxRecvDataSegmentLength", str(P.TARGET_MRDSL)))
            if transit and nsg == 3:
                if not await self.open_session():
                    return
            await self.login_rsp(0x80 if transit else 0, csg, nsg if transit else 0,
                                 P.format_text(reply))
            if transit and nsg == 3:
                self.full = True
                self.hd = p.header_digest
                self.dd = p.data_digest
                self.tgt.log("info", "iSCSI port %d: %s session from %s (TSIH %d)" % (
                    self.port, "discovery" if self.discovery else "normal", self.iname, self.tsih))
                return

    def creds(self):
        # what this initiator must prove (README "Login"): a mask's own secret, under the masked
        # name, replaces the board-wide CHAP credential for that name, so knowing the board's
        # secret does not let a host log in as a masked initiator
        cfg = self.ctl.cfg
        own = cfg.mask_secrets.get(self.p.initiator_name)
        if own:
            return {"user": self.p.initiator_name, "secret": own}
        if cfg.chap_user and cfg.chap_secret:
            return {"user": cfg.chap_user, "secret": cfg.chap_secret}
        return None

    def chap_step(self, chap, ck, reply):
        """One CHAP exchange step: True = authenticated, None = continue, False = failed."""
        import hashlib
        if "CHAP_A" in ck:
            if "5" not in ck["CHAP_A"].split(","):
                reply.append(("CHAP_A", "Reject"))
                return False
            self.chap_id = os.urandom(1)[0]
            self.chap_c = os.urandom(16)
            reply.append(("CHAP_A", "5"))
            reply.append(("CHAP_I", str(self.chap_id)))
            reply.append(("CHAP_C", "0x" + self.chap_c.hex()))
            return None
        if "CHAP_N" in ck or "CHAP_R" in ck:
            if self.chap_c is None or "CHAP_I" in ck or "CHAP_C" in ck:
                return False   # no challenge issued yet, or mutual CHAP (no target secret here)
            r = ck.get("CHAP_R", "")
            try:
                if r[:2] in ("0x", "0X"):
                    resp = bytes.fromhex(r[2:])
                elif r[:2] in ("0b", "0B"):
                    import binascii
                    resp = binascii.a2b_base64(r[2:])
                else:
                    return False
            except Exception:
                return False
            want = hashlib.md5(bytes([self.chap_id]) + chap["secret"].encode() + self.chap_c).digest()
            self.chap_c = None
            ok = ck.get("CHAP_N") == chap["user"] and resp == want
            self.tgt.chap.result(self.peer, ok, self.p.initiator_name)
            return ok
        return None

    async def open_session(self):
        if self.discovery:
            self.tsih = self.tgt.next_tsih()
            return True
        key = (self.iname, self.isid, self.port)
        if self.tsih:
            # adding a connection to an existing session: we allow one per session (ERL 0)
            await self.login_fail(0x020A if key not in self.tgt.sessions else 0x0206,
                                  "session %d cannot take another connection" % self.tsih)
            return False
        old = self.tgt.sessions.get(key)
        if old is not None:   # session reinstatement: the old one goes, its tasks with it
            old.kill()
            self.tgt.log("info", "iSCSI port %d: session of %s reinstated" % (self.port, self.iname))
        self.tsih = self.tgt.next_tsih()
        self.key = key
        self.tgt.sessions[key] = self
        return True

    async def login_rsp(self, flags, csg, nsg, data):
        t = self.begin(P.OP_LOGIN_RSP, flags | (csg << 2) | nsg)
        t[8:14] = self.isid
        t[14] = self.tsih >> 8
        t[15] = self.tsih & 0xFF
        put32(t, 16, self.itt)
        self.seqs(t)
        self.statsn = (self.statsn + 1) & 0xFFFFFFFF
        await self.emit(data, len(data))

    async def login_fail(self, code, why):
        self.tgt.log("warn", "iSCSI port %d: login from %s refused (0x%04x %s)" % (
            self.port, self.iname if self.iname != "?" else self.p.initiator_name, code, why))
        t = self.begin(P.OP_LOGIN_RSP, 0)
        t[8:14] = self.isid
        put32(t, 16, self.itt)
        self.seqs(t)
        t[36] = code >> 8
        t[37] = code & 0xFF
        try:
            await self.emit(b"", 0)
        except Closed:
            pass
        self.full = False

    # ---------- full feature phase ----------
    def cmdsn_ok(self, cmdsn, immediate):
        """Ordering check for a command PDU; advances ExpCmdSN. False: silently ignore it."""
        if immediate:
            return True
        if cmdsn == self.expcmdsn:
            self.expcmdsn = (self.expcmdsn + 1) & 0xFFFFFFFF
            return True
        return False   # below the window (duplicate) or beyond MaxCmdSN: RFC 7143 4.2.2.1

    async def serve(self):
        mrdsl = P.TARGET_MRDSL
        h = self.hdr
        hmv = self.hmv
        while True:
            got = self._rx(self.s, hmv)
            if got < P.BHS:
                await self.recv_rest(hmv, got)
            dlen = await self.header_ext() if h[4] or self.hd else get24(h, 5)
            op = h[0] & 0x3F
            if dlen > mrdsl:
                await self.reject(P.REJ_PROTOCOL)
                raise Closed()
            if op == P.OP_SCSI_CMD:
                await self.scsi_cmd(dlen)
            elif op == P.OP_DATA_OUT:
                await self.data_out(dlen)
            elif op == P.OP_NOP_OUT:
                await self.nop_out(dlen)
            elif op == P.OP_TMF:
                await self.read_data(None, 0, dlen)
                await self.tmf()
            elif op == P.OP_TEXT:
                await self.text(dlen)
            elif op == P.OP_LOGOUT:
                await self.read_data(None, 0, dlen)
                await self.logout()
                return
            else:
                await self.read_data(None, 0, dlen)
                await self.reject(P.REJ_PROTOCOL if op in (P.OP_LOGIN, P.OP_SNACK)
                                  else P.REJ_NOT_SUPPORTED)

    def nexus_for(self, lun):
        n = self.nexus.get(lun)
        if n is None:
            n = self.nexus[lun] = (self.iname, self.port, lun, self.isid)
        return n

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
                await self.run_cmd(itt, lun, cdb, b1 | 0x20, 0, b"", want_out, 0)
                return
            await self.run_cmd(itt, lun, cdb, b1, edtl, None, 0, 0)
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
        t = Task(itt, lun, cdb, edtl, need, buf, cmdsn)
        t.want_out = want_out
        t.flags = b1
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
                if t.need > XFER:   # ILLEGAL REQUEST, INVALID FIELD IN CDB (transfer length)
                    await self.scsi_rsp(t.itt, 2, _sense(0x05, 0x24, 0), 0, 0, t.r2tsn)
                else:               # no transfer buffer free: BUSY, the initiator retries
                    await self.scsi_rsp(t.itt, 8, None, 0, 0, t.r2tsn)
            else:
                try:
                    await self.run_cmd(t.itt, t.lun, t.cdb, t.flags, t.edtl,
                                       memoryview(t.buf)[:t.need], t.want_out, t.r2tsn)
                finally:   # also when the connection is closed while the answer waits
                    self.release(t.buf)
            return
        if t.got < t.unsol_end or t.got < t.burst_end:
            return   # more of the current burst is on its way
        # solicit the next burst
        self.ttt = (self.ttt + 1) & 0x7FFFFFFF
        t.ttt = self.ttt
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

    def run_cmd(self, itt, lun, cdb, flags, edtl, data_out, want_out, r2ts):
        # returns the awaitable that runs the command: one coroutine less for the usual command
        if flags & 0x40 and edtl > COPY_MAX:
            return self.run_big(itt, lun, cdb, flags, edtl, data_out, want_out, r2ts)
        return self.finish_cmd(itt, lun, cdb, flags, edtl, data_out, want_out, r2ts, None)

    async def run_big(self, itt, lun, cdb, flags, edtl, data_out, want_out, r2ts):
        big = await self.tgt.lease(self)   # data-in straight into a buffer of ours, sent from there
        if big is None:
            await self.scsi_rsp(itt, 8, None, 0, 0, 0)
            return
        try:
            await self.finish_cmd(itt, lun, cdb, flags, edtl, data_out, want_out, r2ts, big)
        finally:
            self.release(big)

    async def finish_cmd(self, itt, lun, cdb, flags, edtl, data_out, want_out, r2ts, big):
        try:
            status, sense, data_in = self.ctl.execute(
                self.nexus_for(lun), cdb, data_out,
                None if big is None else memoryview(big)[_HEAD:_HEAD + XFER])
        except Exception as e:
            sys.print_exception(e, sys.stderr)
            self.tgt.log("error", "iSCSI port %d: command 0x%02x failed inside the controller: %r"
                         % (self.port, cdb[0], e))
            status, sense, data_in = 2, _sense(0x04, 0x44, 0), b""
        if data_in is None:
            data_in = b""
        # residuals (RFC 7143 11.4.5.1): relative to what the command wanted to move
        rflags = 0
        resid = 0
        if flags & 0x20:   # write: compare EDTL with the CDB's data-out length
            if want_out > edtl:
                rflags, resid = 0x04, want_out - edtl
            elif want_out < edtl:
                rflags, resid = 0x02, edtl - want_out
            await self.scsi_rsp(itt, status, sense, rflags, resid, r2ts)
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
                self.small = bytearray(_HEAD + COPY_MAX + _TAIL)
            buf = self.small
            buf[_HEAD:_HEAD + xfer] = data_in[:xfer]
        else:
            buf = big
            if uctypes.addressof(data_in) != uctypes.addressof(big) + _HEAD:
                # not read into our buffer (a short answer of the core): copy it there
                if xfer > XFER:
                    buf = bytearray(_HEAD + xfer + _TAIL)
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
        while off < xfer:
            k = min(seg, xfer - off, burst - off % burst)
            fl = 0x80 if (off + k == xfer or (off + k) % burst == 0) else 0
            st = sn = rs = 0
            if off + k == xfer and collapse:
                fl = 0x81 | rflags
                st = status
                sn = self.statsn
                rs = resid
                self.statsn = (sn + 1) & 0xFFFFFFFF
            at = _HEAD + off
            e = self.expcmdsn
            # the header goes right before its data (over data of the PDU already sent)
            struct.pack_into(_DIN, mv, at - hl, P.OP_DATA_IN, fl, 0, st, k, itt, P.ALL_ONES,
                             sn, e, (e + WINDOW - 1) & 0xFFFFFFFF, datasn, off, rs)
            tl = self.frame(mv, at - hl, at, k)
            out = mv[at - hl:at + k + tl]
            w = self._tx(self.s, out)
            if w < len(out):
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
        self.seqs(t)
        put32(t, 36, expdatasn)
        put32(t, 44, resid)
        self.statsn = (self.statsn + 1) & 0xFFFFFFFF
        if sense:
            n = min(len(sense), 252)
            d = self.sbuf
            d[0] = 0
            d[1] = n
            d[2:2 + n] = sense[:n] if len(sense) != n else sense
            await self.emit(d, 2 + n)
        else:
            await self.emit(None, 0)

    async def nop_out(self, dlen):
        h = self.hdr
        itt = get32(h, 16)
        data = await self.read_small(dlen, P.TARGET_MRDSL)
        if data is None and dlen:
            await self.reject(P.REJ_DIGEST)
            return
        if not self.cmdsn_ok(get32(h, 24), h[0] & 0x40):
            return
        if itt == P.ALL_ONES:
            return   # an answer to a NOP-In of ours, or a bare CmdSN update
        t = self.begin(P.OP_NOP_IN, 0x80)
        P.put_lun(t, P.lun_number(h) if P.lun_number(h) >= 0 else 0)
        put32(t, 16, itt)
        put32(t, 20, P.ALL_ONES)
        self.seqs(t)
        self.statsn = (self.statsn + 1) & 0xFFFFFFFF
        d = data or b""
        await self.emit(d, len(d))

    async def tmf(self):
        h = self.hdr
        fn = h[1] & 0x7F
        itt = get32(h, 16)
        rtt = get32(h, 20)
        cmdsn = get32(h, 24)
        refcmdsn = get32(h, 32)
        lun = P.lun_number(h)
        if not self.cmdsn_ok(cmdsn, h[0] & 0x40):
            return
        resp = 0
        close_after = False
        if self.discovery:
            resp = 255
        elif fn == 1:   # ABORT TASK
            t = self.pending.get(rtt)
            if t is not None:
                del self.pending[rtt]
                self.release(t.buf)
            elif not (P.sn_lt(refcmdsn, cmdsn) and not P.sn_lt(refcmdsn, self.expcmdsn)):
                # completed already (or never sent): "task does not exist". A RefCmdSN still
                # ahead of ExpCmdSN would be "function complete" (RFC 7143 11.5.1)
                resp = 1
        elif fn in (2, 4, 5, 6, 7):   # task sets, LUN reset, target resets
            if fn in (2, 4, 5) and lun not in self.visible():
                resp = 2
            else:
                for k in list(self.pending):
                    if fn >= 6 or self.pending[k].lun == lun:
                        self.release(self.pending.pop(k).buf)
                resp = self.reset_hook(fn, lun)
                close_after = fn == 7
        elif fn == 3:   # CLEAR ACA: no ACA is ever established here
            resp = 0
        elif fn == 8:   # TASK REASSIGN needs ERL 2
            resp = 4
        else:
            resp = 5
        self.tgt.log("info", "iSCSI port %d: task management %d LUN %d from %s -> %d"
                     % (self.port, fn, lun, self.iname, resp))
        t = self.begin(P.OP_TMF_RSP, 0x80)
        t[2] = resp
        put32(t, 16, itt)
        self.seqs(t)
        self.statsn = (self.statsn + 1) & 0xFFFFFFFF
        await self.emit(None, 0)
        if close_after:
            raise Closed()

    def visible(self):
        try:
            return self.ctl.luns(self.port, self.iname)
        except Exception:
            return []

    def reset_hook(self, fn, lun):
        # the SCSI core may clear reservations / set unit attentions; optional in the interface
        hook = getattr(self.ctl, "task_mgmt", None)
        if hook is None:
            return 0
        try:
            hook(self.nexus_for(lun), {2: "abort_task_set", 4: "clear_task_set", 5: "lun_reset",
                                       6: "target_warm_reset", 7: "target_cold_reset"}[fn])
            return 0
        except Exception as e:
            self.tgt.log("error", "iSCSI: task management hook failed: %r" % e)
            return 255

    async def text(self, dlen):
        h = self.hdr
        itt = get32(h, 16)
        ttt = get32(h, 20)
        data = await self.read_small(dlen, P.TARGET_MRDSL)
        if data is None and dlen:
            await self.reject(P.REJ_DIGEST)
            return
        if not self.cmdsn_ok(get32(h, 24), h[0] & 0x40):
            return
        if ttt != P.ALL_ONES and self.text_more is not None and ttt == self.text_ttt:
            out = self.text_more   # continuation of a long answer
        else:
            try:
                pairs = P.parse_text(data or b"")
            except P.TextError:
                await self.reject(P.REJ_PROTOCOL)
                return
            reply = []
            for k, v in pairs:
                if k == "SendTargets":
                    reply.extend(self.send_targets(v))
                else:
                    reply.append((k, "NotUnderstood" if k not in P._NEG else "Reject"))
            out = P.format_text(reply)
        n = min(len(out), self.p.mrdsl_out)
        more = n < len(out)
        if more:
            n = out.rfind(b"\x00", 0, n) + 1 or n   # split at a pair boundary when possible
        self.text_more = out[n:] if more else None
        self.ttt = (self.ttt + 1) & 0x7FFFFFFF
        self.text_ttt = self.ttt if more else P.ALL_ONES
        t = self.begin(P.OP_TEXT_RSP, 0x40 if more else 0x80)
        put32(t, 16, itt)
        put32(t, 20, self.text_ttt)
        self.seqs(t)
        self.statsn = (self.statsn + 1) & 0xFFFFFFFF
        await self.emit(out, n)

    def send_targets(self, v):
        iqn = self.ctl.iqn
        if v == "All" and not self.discovery:
            return [("SendTargets", "Reject")]
        if v not in ("All", "", iqn):
            return []
        out = [("TargetName", iqn)]
        for host, port, port_no in self.tgt.portals:
            if v == "" and port_no != self.port:
                continue
            out.append(("TargetAddress", "%s:%d,%d" % (host, port, port_no + 1)))
        return out

    async def logout(self):
        h = self.hdr
        reason = h[1] & 0x7F
        itt = get32(h, 16)
        cid = (h[20] << 8) | h[21]
        self.cmdsn_ok(get32(h, 24), h[0] & 0x40)
        resp = 0
        if reason == 2:
            resp = 2   # connection recovery needs ERL 2
        elif reason == 1 and cid != self.cid:
            resp = 1
        t = self.begin(P.OP_LOGOUT_RSP, 0x80)
        t[2] = resp
        put32(t, 16, itt)
        self.seqs(t)
        self.statsn = (self.statsn + 1) & 0xFFFFFFFF
        self.tgt.log("info", "iSCSI port %d: logout of %s" % (self.port, self.iname))
        self.closing = True
        await self.emit(None, 0)
        self.full = False
