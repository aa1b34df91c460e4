# Host ports as iSCSI targets (RFC 7143): one portal per host port, one target name per board.
# The transport maps PDU fields to ctl.execute(nexus, cdb, data_out) and never interprets CDBs.
# One connection per session, ErrorRecoveryLevel 0: any protocol breach closes the connection
# (the initiator logs in again); commands run only once all their data-out has arrived, so a
# vanished client can never leave a write half-applied. See endpoints/iscsi/README.md.
# This module: the portals, the life of a connection, and the PDUs of its full feature phase
# that are not SCSI commands (task management, text, NOP, logout).
import asyncio
import sys
import time
from micropython import const

from endpoints import listen
from endpoints.iscsi import pdu as P
from endpoints.iscsi.pdu import get24, get32, put32
from endpoints.iscsi.connio import Closed
from endpoints.iscsi.chap import ChapGuard
from hw.dma import DMA
from endpoints.iscsi.login import Login
from endpoints.iscsi.flow import Flow, Pool, MORE, TASK_TIMEOUT, POOL_BUFS, PARK_SLOTS

LOGIN_TIMEOUT = const(30)    # seconds a connection may take to reach full feature phase
FIRST_PDU_MS = const(5000)   # ms a connection may take to send the header of its first PDU
MAX_CONNS = const(64)        # connections served at once, over both portals
MAX_PER_HOST = const(16)     # of them from one source address


class Target(Pool):
    """Per-board state shared by its portals: the portal list (for SendTargets), sessions, the
    transfer-buffer pool and the clock that times tasks and CHAP failures (tests bring their own)."""

    def __init__(self, ctl, clock=time.ticks_ms, bufs=POOL_BUFS, parks=PARK_SLOTS):
        Pool.__init__(self, bufs, parks)
        self.ctl = ctl
        self.portals = []       # (host, tcp_port, port_no)
        self.sessions = {}      # (initiator, isid, port_no) -> Conn
        self.tsih = 0
        self.listeners = []
        self.clock = clock
        self.timeout_ms = (ctl.board.get("iscsi_task_timeout_s") or TASK_TIMEOUT) * 1000
        self.chap = ChapGuard(clock, self.log)
        self.reaper = None
        self.completer = None   # answers writes as the I/O processor's thread ends them
        self.dma_waker = None   # sends what waited for a DMA send its peer was behind on
        self.refused = 0        # connections closed at once by admit()
        self.shed = 0           # connections closed before login to make room, or silent

    def admit(self, peer):
        """Whether a new connection from peer is served: each connection costs memory, so one
        host opening many cannot take what the others need (nor the descriptors). A full table
        makes room by evicting a connection that has not logged in (evict())."""
        mine = 0
        for c in self.conns:
            mine += c.peer == peer
        if mine < MAX_PER_HOST and (len(self.conns) < MAX_CONNS or self.evict()):
            return True
        self.refused += 1
        n = self.refused
        if not n & (n - 1):   # the 1st, 2nd, 4th, 8th... refusal: the log cannot be flooded
            self.log("warn", "iSCSI: connection from %s closed at once (%d from it, %d in all; "
                     "%d closed so far)" % (listen.show(peer), mine, len(self.conns), n))
        return False

    def evict(self):
        """Closes a connection that has not reached full feature phase, so connections that never
        log in cannot keep a host that does out: one that has sent nothing first, the one open
        longest first. False when every one is a session (those are never closed for a newcomer)."""
        old = None
        for c in self.conns:
            if not c.full and not c.closing and (old is None or self.before(c, old)):
                old = c
        if old is None:
            return False
        self.drop(old, "evicted before login: connection table full")
        return True

    def before(self, c, old):
        # whether pre-login connection c goes before old: silent ones first, then the older
        if c.heard != old.heard:
            return old.heard
        return time.ticks_diff(c.opened, old.opened) < 0

    def reap(self):
        """Pool.reap, and the first-PDU timeout: a connection that has not sent the header of a
        login request within FIRST_PDU_MS of its accept is closed."""
        Pool.reap(self)
        now = self.clock()
        ring = self.ring
        for i in range(self.copy_conns()):
            c = ring[i]
            ring[i] = None
            if not c.heard and time.ticks_diff(now, c.opened) >= FIRST_PDU_MS:
                self.drop(c, "no login request within %d s" % (FIRST_PDU_MS // 1000))

    def drop(self, c, why):
        # the 1st, 2nd, 4th, 8th... such close makes an event: the log cannot be flooded
        self.shed += 1
        n = self.shed
        if not n & (n - 1):
            self.log("warn", "iSCSI port %d: connection from %s closed, %s (%d so far)"
                     % (c.port, listen.show(c.peer), why, n))
        c.kill(why)

    def connect(self, port_no, s, addr):
        peer = listen.peer(addr)
        if not self.admit(peer):
            s.close()
            return
        try:
            s.setsockopt(6, 1, 1)   # IPPROTO_TCP, TCP_NODELAY: header and data go out at once
        except OSError:
            pass
        c = Conn(self, s, port_no, peer)
        self.conns.add(c)
        c.task = asyncio.create_task(c.run())

    def next_tsih(self):
        self.tsih = (self.tsih % 0xFFFF) + 1
        return self.tsih

    def log(self, level, text):
        try:
            self.ctl.events.log(level, text)
        except Exception as e:   # logging must never take a connection down
            print("iscsi: event log failed: %r" % e, file=sys.stderr)


_targets = {}


async def start(ctl, port_no, host="127.0.0.1", tcp_port=3260):
    """Open the portal of host port `port_no`; returns the TCP port actually bound."""
    tgt = _targets.get(id(ctl))
    if tgt is None:
        tgt = _targets[id(ctl)] = Target(ctl)
    s, actual = listen.bind(host, tcp_port, 16)
    if tgt.reaper is None:
        tgt.reaper = asyncio.create_task(tgt.reap_forever())
    if tgt.completer is None:
        tgt.chains = ctl.io_thread()
        tgt.completer = asyncio.create_task(tgt.complete_forever(tgt.chains))
    if tgt.dma is None:
        tgt.dma = DMA()
        tgt.dma_waker = asyncio.create_task(tgt.dma_forever())
    tgt.portals.append((host, actual, port_no))
    take = lambda sock, addr: tgt.connect(port_no, sock, addr)
    tgt.listeners.append((s, asyncio.create_task(listen.accept(s, take)), port_no))
    tgt.log("info", "iSCSI portal %s:%d up (host port %d)" % (host, actual, port_no))
    return actual


async def stop(ctl):
    """Close the portals and every connection of this board (used by tests and shutdown)."""
    tgt = _targets.pop(id(ctl), None)
    if tgt is None:
        return
    for s, task, _ in tgt.listeners:
        task.cancel()
        s.close()
    if tgt.reaper is not None:
        tgt.reaper.cancel()
    if tgt.completer is not None:
        tgt.completer.cancel()
    if tgt.chain_waits is not None:
        tgt.chain_waits.drop()  # (the doorbell outlives the target: the controller's thread)
    tgt.answer_all()            # (the buffers of writes in flight come back)
    for c in list(tgt.conns):
        c.kill()
    if tgt.dma is not None:
        tgt.dma_waker.cancel()
        if tgt.dma_waits is not None:
            tgt.dma_waits.drop()
        tgt.dma.stop()
    await asyncio.sleep_ms(0)


async def close_ports(ctl, port_nos):
    """Close the portals of host ports `port_nos` and their connections (a pair's failback hands
    them to the partner, which listens on the same addresses)."""
    tgt = _targets.get(id(ctl))
    if tgt is None:
        return
    for entry in [e for e in tgt.listeners if e[2] in port_nos]:
        entry[1].cancel()
        entry[0].close()
        tgt.listeners.remove(entry)
    tgt.portals = [p for p in tgt.portals if p[2] not in port_nos]
    for c in [c for c in tgt.conns if c.port in port_nos]:
        c.kill("portal handed to the partner controller")
    await asyncio.sleep_ms(0)


class Conn(Flow, Login):
    """One TCP connection to a portal, from login to its end."""

    def __init__(self, tgt, sock, port_no, peer=None):
        Flow.__init__(self, tgt, sock, port_no, peer)
        self.task = None
        self.text_more = None        # the rest of a long text answer
        self.text_ttt = P.ALL_ONES
        self.closing = False
        self.why = "reinstated"      # what ended the connection when it is cancelled from outside

    def kill(self, why="reinstated"):
        self.closing = True
        self.why = why
        if self.task is not None and self.task is not asyncio.current_task():
            self.task.cancel()
        self.cleanup()

    def cleanup(self):
        if self.s is not None:
            self.waits.drop()
            if self.dma_close():
                if self.spare is not None:   # (no send uses it any more)
                    self.tgt.spare_back(self)
                try:
                    self.s.close()
                except OSError:
                    pass
            elif self.spare is not None:     # (still the thread's: lost, but no longer its host's)
                self.ctl.buffer_gone(self.spare_in)
                self.tgt.spare_lost(self)
            if self.small is not None:       # (dropped with the connection)
                self.ctl.buffer_gone(self.small_in)
                self.small = self.small_in = None
            self.s = None
        self.drop_tasks()
        self.tgt.leave(self)
        self.tgt.conns.discard(self)
        if self.key is not None and self.tgt.sessions.get(self.key) is self:
            del self.tgt.sessions[self.key]
            self.nexus_gone()

    def nexus_gone(self):
        # a session is an I_T nexus of its own (initiator name + ISID, RFC 7143): when it ends
        # the core drops its state for it (reservations, unit attentions)
        try:
            self.ctl.nexus_lost(self.iname, self.port, self.isid)
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
        self.cleanup()

    # ---------- full feature phase ----------
    async def serve(self):
        mrdsl = P.TARGET_MRDSL
        h = self.hdr
        hmv = self.hmv
        # bound once: the methods of the lower layers are not looked up again for every PDU
        rx_now = self.rx_now
        command_now = self.command_now
        data_out = self.data_out
        while True:
            if self.closing:
                raise Closed()           # (closed from inside this loop: an answer not sent whole)
            got = rx_now(self.s, hmv)
            if not got:                  # the usual wait for the next command: no coroutine
                self.waits.readable()
                yield                   # to the scheduler until then (endpoints/ioready.py)
                got = rx_now(self.s, hmv)
            if got < P.BHS:
                await self.recv_rest(hmv, got)
            dlen = await self.header_ext() if h[4] or self.hd else get24(h, 5)
            op = h[0] & 0x3F
            if self.dj >= 0 and (op != P.OP_SCSI_CMD or dlen or h[1] & 0x20 or h[4]) \
                    and not self.tx_free():
                await self.tx_idle()     # (a read's answer waits at its own send: Flow.answer)
            if dlen > mrdsl:
                await self.reject(P.REJ_PROTOCOL)
                raise Closed()
            if op == P.OP_SCSI_CMD:
                try:
                    aw = command_now(dlen)
                    while aw is MORE:        # a write's data still coming (Flow.write_now)
                        self.waits.readable()
                        yield               # to the scheduler until then (endpoints/ioready.py)
                        aw = self.write_more()
                except BaseException:
                    self.write_lost()
                    raise
                if aw is not None:
                    await aw
            elif op == P.OP_DATA_OUT:
                await data_out(dlen)
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
            if self.grants:              # R2Ts of writes given a buffer while it was sending
                self.solicit_held()
            if self.tgt.deferred:        # writes the I/O processor's thread has ended
                self.tgt.complete()
            if self.late:                # answers of writes that ended while it was sending
                self.send_late()

    async def request_data(self, dlen):
        # the data segment of a NOP-Out or Text request whose CmdSN is in the window, as bytes;
        # None when the request is dropped (a data digest error is answered with a reject)
        h = self.hdr
        data = await self.read_small(dlen, P.TARGET_MRDSL)
        if data is None and dlen:
            await self.reject(P.REJ_DIGEST)
            return None
        if not self.cmdsn_ok(get32(h, 24), h[0] & 0x40):
            return None
        return data or b""

    async def nop_out(self, dlen):
        h = self.hdr
        itt = get32(h, 16)
        data = await self.request_data(dlen)
        if data is None:
            return
        if itt == P.ALL_ONES:
            return   # an answer to a NOP-In of ours, or a bare CmdSN update
        t = self.begin(P.OP_NOP_IN, 0x80)
        P.put_lun(t, P.lun_number(h) if P.lun_number(h) >= 0 else 0)
        put32(t, 16, itt)
        put32(t, 20, P.ALL_ONES)
        self.status(t)
        await self.emit(data, len(data))

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
        await self.answers_out()   # writes the I/O processor ran are answered before this
        resp = 0
        close_after = False
        if self.discovery:
            resp = 255
        elif fn == 1:   # ABORT TASK
            t = self.pending.get(rtt)
            if t is not None:
                del self.pending[rtt]
                self.forget(t)
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
                        self.forget(self.pending.pop(k))
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
        self.status(t)
        await self.emit(None, 0)
        if close_after:
            raise Closed()

    def visible(self):
        try:
            return self.ctl.luns(self.port, self.iname)
        except Exception:
            return []

    def reset_hook(self, fn, lun):
        # the SCSI core clears reservations / sets unit attentions
        try:
            self.ctl.task_mgmt(self.nexus_for(lun), {2: "abort_task_set", 4: "clear_task_set", 5: "lun_reset",
                                                       6: "target_warm_reset",
                                                       7: "target_cold_reset"}[fn])
            return 0
        except Exception as e:
            self.tgt.log("error", "iSCSI: task management hook failed: %r" % e)
            return 255

    async def text(self, dlen):
        h = self.hdr
        itt = get32(h, 16)
        ttt = get32(h, 20)
        data = await self.request_data(dlen)
        if data is None:
            return
        if ttt != P.ALL_ONES and self.text_more is not None and ttt == self.text_ttt:
            out = self.text_more   # continuation of a long answer
        else:
            try:
                pairs = P.parse_text(data)
            except P.TextError:
                await self.reject(P.REJ_PROTOCOL)
                return
            reply = []
            for k, v in pairs:
                if k == "SendTargets":
                    reply.extend(self.send_targets(v))
                else:
                    reply.append((k, "NotUnderstood" if k not in P.NEGOTIATED else "Reject"))
            out = P.format_text(reply)
        n = min(len(out), self.p.mrdsl_out)
        more = n < len(out)
        if more:
            n = out.rfind(b"\x00", 0, n) + 1 or n   # split at a pair boundary when possible
        self.text_more = out[n:] if more else None
        ttt = self.next_ttt()
        self.text_ttt = ttt if more else P.ALL_ONES
        t = self.begin(P.OP_TEXT_RSP, 0x40 if more else 0x80)
        put32(t, 16, itt)
        put32(t, 20, self.text_ttt)
        self.status(t)
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
        await self.answers_out()
        t = self.begin(P.OP_LOGOUT_RSP, 0x80)
        t[2] = resp
        put32(t, 16, itt)
        self.status(t)
        self.tgt.log("info", "iSCSI port %d: logout of %s" % (self.port, self.iname))
        self.closing = True
        await self.emit(None, 0)
        self.full = False


def _flatten(cls):
    # MicroPython looks a method up through each base class in turn on every call (the cost of a
    # command grew by a tenth with these layers as bases): the methods of the layers are put on
    # the class itself, first found in method resolution order winning, as Python would pick
    stack = list(cls.__bases__)
    while stack:
        b = stack.pop(0)
        for k, v in b.__dict__.items():
            if not k.startswith("__") and k not in cls.__dict__:
                setattr(cls, k, v)
        stack[0:0] = b.__bases__


_flatten(Conn)
