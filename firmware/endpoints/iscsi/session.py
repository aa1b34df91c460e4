# The session a connection carries (one connection per session, ERL 0): who it is, the command
# window (CmdSN, ExpCmdSN, MaxCmdSN) and the StatSN of the target's responses.
import struct
from micropython import const

from endpoints.iscsi import pdu as P
from endpoints.iscsi.connio import Link

WINDOW = const(32)           # commands the initiator may queue (MaxCmdSN - ExpCmdSN + 1): the
                             # queue depth each session is given (flow.py Pool)


class Session(Link):
    def __init__(self, tgt, sock, port_no, peer):
        Link.__init__(self, tgt, sock, port_no, peer)
        self.ctl = tgt.ctl
        self.p = P.Params()
        self.statsn = 0
        self.expcmdsn = 0
        self.isid = b""
        self.tsih = 0
        self.cid = 0
        self.itt = 0
        self.key = None              # (initiator, ISID, port) while the session is registered
        self.discovery = False
        self.full = False            # in full feature phase
        self.nexus = {}
        self.ttt = 0                 # the last target transfer tag given

    def seqs(self, t):
        # StatSN / ExpCmdSN / MaxCmdSN in bytes 24..35 of every target PDU that has them
        e = self.expcmdsn
        struct.pack_into(">III", t, 24, self.statsn, e, (e + WINDOW - 1) & 0xFFFFFFFF)

    def next_statsn(self):
        """The StatSN of a response that carries a status: the one place StatSN advances."""
        sn = self.statsn
        self.statsn = (sn + 1) & 0xFFFFFFFF
        return sn

    def status(self, t):
        """seqs() for a PDU that carries a status."""
        e = self.expcmdsn
        struct.pack_into(">III", t, 24, self.next_statsn(), e, (e + WINDOW - 1) & 0xFFFFFFFF)

    def cmdsn_ok(self, cmdsn, immediate):
        """Ordering check for a command PDU; advances ExpCmdSN. False: silently ignore it."""
        if immediate:
            return True
        if cmdsn == self.expcmdsn:
            self.expcmdsn = (self.expcmdsn + 1) & 0xFFFFFFFF
            return True
        return False   # below the window (duplicate) or beyond MaxCmdSN: RFC 7143 4.2.2.1

    def next_ttt(self):
        self.ttt = (self.ttt + 1) & 0x7FFFFFFF
        return self.ttt

    def nexus_for(self, lun):
        n = self.nexus.get(lun)
        if n is None:
            n = self.nexus[lun] = (self.iname, self.port, lun, self.isid)
        return n

    async def reject(self, reason):
        bad = bytes(self.hdr)
        t = self.begin(P.OP_REJECT, 0x80)
        t[2] = reason
        P.put32(t, 16, P.ALL_ONES)
        self.status(t)
        self.tgt.log("warn", "iSCSI port %d: reject reason 0x%02x opcode 0x%02x from %s"
                     % (self.port, reason, bad[0] & 0x3F, self.iname))
        await self.emit(bad, P.BHS)
