# The login phase (RFC 7143 6): the stages a login request goes through, from its header to the
# session it opens. A refusal at any stage answers with a login reject status; the connection
# then ends.
from micropython import const

from endpoints.iscsi import pdu as P
from endpoints.iscsi.pdu import get24, get32
from endpoints.iscsi.connio import Closed
from endpoints.iscsi.session import Session
from endpoints.iscsi import chap as C
from control.commands_diag import CONSOLE_INITIATOR   # the name iSCSI hosts may not log in under

MAX_LOGIN_TEXT = const(65536)


class Refused(Exception):
    """A login refused with a status class/detail code, and why (for the event log)."""

    def __init__(self, code, why):
        self.code = code
        self.why = why


class Negotiation:
    """What one login has settled so far, over its requests."""

    def __init__(self):
        self.text = b""              # text of requests with the C bit, not parsed yet
        self.stage = -1
        self.started = False
        self.chap = None             # the CHAP exchange, when AuthMethod chose CHAP
        self.offered = None          # AuthMethod's value, answered once the InitiatorName is known
        self.authed = False
        self.answered = set()        # keys negotiated (each at most once)
        self.first_sent = False
        self.mrdsl_sent = False


class Login(Session):
    async def login(self):
        n = Negotiation()
        try:
            while not await self.login_step(n):
                pass
        except Refused as e:
            await self.login_fail(e.code, e.why)

    async def login_step(self, n):
        """One login request and its response; True once the full feature phase is reached."""
        dlen = await self.read_request()
        h = self.hdr
        b1 = h[1]
        tbit = b1 & 0x80
        cbit = b1 & 0x40
        csg = (b1 >> 2) & 3
        nsg = b1 & 3
        data = await self.read_small(dlen, 8192)
        if data is None or len(n.text) + len(data) > MAX_LOGIN_TEXT:
            raise Refused(0x0200, "login data too long or digest error")
        if not n.started:
            n.started = True
            self.first_request()
        if csg == 2 or (tbit and (nsg == 2 or nsg <= csg or cbit)) or csg < n.stage:
            raise Refused(0x0200, "bad stage transition")
        n.stage = csg
        n.text += data
        if cbit:   # more text follows: acknowledge with an empty response
            await self.login_rsp(0, csg, 0, b"")
            return False
        try:
            pairs = P.parse_text(n.text)
        except P.TextError as e:
            raise Refused(0x0200, "login text: %s" % e)
        n.text = b""
        reply = []
        if not n.first_sent:   # RFC 7143 13.9: in the first login response
            n.first_sent = True
            reply.append(("TargetPortalGroupTag", str(self.port + 1)))
        self.negotiate(n, pairs, csg, reply)
        if self.p.auth_methods == "CHAP" and not n.authed:
            self.authenticate(n, pairs, reply)
        self.identify(n, csg, reply)
        transit = tbit and self.may_transit(n, csg)
        if not n.mrdsl_sent and (csg == 1 or (transit and nsg == 3)):
            # ours is declarative: say it once, or the initiator assumes 8 KiB
            n.mrdsl_sent = True
            reply.append(("MaxRecvDataSegmentLength", str(P.TARGET_MRDSL)))
        full = transit and nsg == 3
        if full:
            self.open_session()
        await self.login_rsp(0x80 if transit else 0, csg, nsg if transit else 0,
                             P.format_text(reply))
        if full:
            self.enter_full_feature()
        return full

    async def read_request(self):
        """The header of a login request; returns its data segment length."""
        await self.recv(self.hmv)
        self.heard = True
        h = self.hdr
        if h[0] & 0x3F != P.OP_LOGIN:
            raise Closed()   # anything but a login request before login completes: not iSCSI
        if h[4] or self.hd:
            return await self.header_ext()
        return get24(h, 5)

    def first_request(self):
        # the session and sequence numbers the initiator starts with
        h = self.hdr
        self.isid = bytes(h[8:14])
        self.tsih = (h[14] << 8) | h[15]
        self.itt = get32(h, 16)
        self.cid = (h[20] << 8) | h[21]
        self.expcmdsn = get32(h, 24)
        self.statsn = get32(h, 28)
        if h[3] > 0:   # Version-min: we speak version 0 only
            raise Refused(0x0205, "unsupported version")

    def negotiate(self, n, pairs, csg, reply):
        """Operational keys and AuthMethod; the CHAP keys are left to authenticate()."""
        p = self.p
        for k, v in pairs:
            if k == "AuthMethod":
                if csg != 0:
                    reply.append((k, "Reject"))
                    continue
                n.offered = v     # answered below: the credential depends on the InitiatorName
                continue
            if k.startswith("CHAP_"):
                if csg != 0 or (p.auth_methods != "CHAP" and n.offered is None):
                    raise Refused(0x0201, "CHAP keys out of place")
                continue
            if k in n.answered:
                raise Refused(0x0200, "key %s negotiated twice" % k)
            try:
                r = P.negotiate(p, k, v)
            except P.TextError as e:
                raise Refused(0x0200, str(e))
            n.answered.add(k)
            if r is not None:
                reply.append((k, r))
        self.choose_auth(n, reply)

    def choose_auth(self, n, reply):
        # who is logging in comes first (RFC 7143: named in the first request), since the
        # credential it must prove depends on the name
        p = self.p
        if p.initiator_name is None:
            raise Refused(0x0207, "InitiatorName missing")
        if p.initiator_name == CONSOLE_INITIATOR:
            raise Refused(0x0202, "%s is the console's own name" % CONSOLE_INITIATOR)
        if n.offered is None:
            return
        secret = C.creds(self.ctl.cfg, p.initiator_name)
        want = "CHAP" if secret else "None"
        if want not in n.offered.split(","):
            raise Refused(0x0201, "no acceptable AuthMethod in %r" % n.offered)
        p.auth_methods = want
        if n.chap is None:   # a challenge given stays valid if AuthMethod comes again
            n.chap = C.Chap(self.tgt.chap, self.peer)
        n.chap.secret = secret
        reply.append(("AuthMethod", want))
        n.answered.add("AuthMethod")
        n.authed = want == "None"
        n.offered = None

    def authenticate(self, n, pairs, reply):
        ck = dict(pairs)
        if ("CHAP_N" in ck or "CHAP_R" in ck) and self.tgt.chap.wait_ms(self.peer):
            # failed before, and its delay has not passed: not even checked
            raise Refused(0x0301, "CHAP retry too soon after a failure")
        res = n.chap.step(ck, reply, self.p.initiator_name)
        if res is False:
            raise Refused(0x0201, "CHAP authentication failed")
        n.authed = res

    def identify(self, n, csg, reply):
        # who is logging in, and to what
        p = self.p
        self.iname = p.initiator_name
        self.discovery = (p.session_type or "Normal") == "Discovery"
        if not self.discovery:
            if p.target_name is None:
                raise Refused(0x0207, "TargetName missing")
            if p.target_name != self.ctl.iqn:
                raise Refused(0x0203, "no target %s" % p.target_name)
            if "TargetAlias" not in n.answered and csg == 1:
                n.answered.add("TargetAlias")
                reply.append(("TargetAlias", "raidboard-port%d" % self.port))

    def may_transit(self, n, csg):
        """Whether a request with the T bit moves on to its next stage."""
        if self.p.auth_methods is None and not n.authed:
            # no security stage (or no AuthMethod in it): only allowed without CHAP
            if C.creds(self.ctl.cfg, self.p.initiator_name):
                raise Refused(0x0201, "authentication required")
            n.authed = True
        if csg != 0 and not n.authed:
            raise Refused(0x0201, "authentication not completed")
        return n.authed or csg != 0

    def open_session(self):
        tgt = self.tgt
        if self.discovery:
            self.tsih = tgt.next_tsih()
            return
        key = (self.iname, self.isid, self.port)
        if self.tsih:
            # adding a connection to an existing session: we allow one per session (ERL 0)
            raise Refused(0x020A if key not in tgt.sessions else 0x0206,
                          "session %d cannot take another connection" % self.tsih)
        old = tgt.sessions.get(key)
        if old is not None:   # session reinstatement: the old one goes, its tasks with it
            old.kill()
            tgt.log("info", "iSCSI port %d: session of %s reinstated" % (self.port, self.iname))
        self.tsih = tgt.next_tsih()
        self.key = key
        tgt.sessions[key] = self

    def enter_full_feature(self):
        self.full = True
        self.hd = self.p.header_digest
        self.dd = self.p.data_digest
        self.tgt.log("info", "iSCSI port %d: %s session from %s (TSIH %d)" % (
            self.port, "discovery" if self.discovery else "normal", self.iname, self.tsih))

    async def login_rsp(self, flags, csg, nsg, data):
        t = self.begin(P.OP_LOGIN_RSP, flags | (csg << 2) | nsg)
        t[8:14] = self.isid
        t[14] = self.tsih >> 8
        t[15] = self.tsih & 0xFF
        P.put32(t, 16, self.itt)
        self.status(t)
        await self.emit(data, len(data))

    async def login_fail(self, code, why):
        self.tgt.log("warn", "iSCSI port %d: login from %s refused (0x%04x %s)" % (
            self.port, self.iname if self.iname != "?" else self.p.initiator_name, code, why))
        t = self.begin(P.OP_LOGIN_RSP, 0)
        t[8:14] = self.isid
        P.put32(t, 16, self.itt)
        self.seqs(t)
        t[36] = code >> 8
        t[37] = code & 0xFF
        try:
            await self.emit(b"", 0)
        except Closed:
            pass
        self.full = False
