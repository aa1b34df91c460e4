# Reservations (SPC-4 5.13 persistent reservations, SPC-2 RESERVE/RELEASE) of the logical units.
# A logical unit is its system drive and kind (the same drive mapped on both host ports is one LU);
# an I_T nexus is (initiator name, host port). State lives in RAM: the board does not persist
# reservations across a restart (PTPL_C=0), as a power cycle of the original board cleared them.
# Of a pair, each change reaches the partner's memory before it is answered (`dirty`, `state`,
# `load`: control/pair.md "Reservations across the pair"), so a failover keeps them.
# The I_T nexus is scsi.it_of(nexus): (initiator, port), plus the session id when the transport
# gives one.
from micropython import const
import struct
import binascii
from scsi import sense
from scsi.sense import ScsiError

# reservation types
WR_EX = const(1)
EX_AC = const(3)
WR_EX_RO = const(5)
EX_AC_RO = const(6)
WR_EX_AR = const(7)
EX_AC_AR = const(8)
_TYPES = (WR_EX, EX_AC, WR_EX_RO, EX_AC_RO, WR_EX_AR, EX_AC_AR)

# opcode flags (scsi.FLAGS) this module reads
F_NOLU = const(1)      # INQUIRY, REPORT LUNS, REQUEST SENSE
F_READ = const(2)      # allowed to non-holders of a write-exclusive reservation
F_PR_OK = const(4)     # allowed to anyone whatever the persistent reservation
F_SPC2_OK = const(8)   # allowed to anyone whatever the RESERVE(6/10) reservation

# unit attentions (ASC << 8 | ASCQ)
UA_RES_PREEMPTED = const(0x2A03)
UA_RES_RELEASED = const(0x2A04)
UA_REG_PREEMPTED = const(0x2A05)

MAX_REGS = const(32)   # registrations per logical unit


def it_of(nexus):
    # the I_T nexus (initiator port, target port) of an I_T_L nexus tuple (initiator, port, lun
    # [, session id]): with a 4th element (the iSCSI ISID) two sessions of one initiator name
    # are two I_T nexuses, as SAM has them
    if len(nexus) > 3:
        return (nexus[0], nexus[1], nexus[3])
    return (nexus[0], nexus[1])


def lukey(lu):
    return lu.sd * 2 + lu.kind


def conflict():
    return ScsiError(-1, 0, 0)      # scsi.Core answers RESERVATION CONFLICT status (no sense)


class Res:
    __slots__ = ("spc2", "holder", "type", "key")

    def __init__(self, spc2, holder, type_, key):
        self.spc2, self.holder, self.type, self.key = spc2, holder, type_, key


class Reservations:
    def __init__(self, core):
        self.core = core
        self.held = {}      # lukey -> Res (only while reserved: the hot path tests this dict)
        self.regs = {}      # lukey -> {it: key}
        self.gen = {}       # lukey -> PRgeneration
        self.dirty = set()  # lukeys changed since the partner of a pair was told (empty: simplex)
        # of a pair while its partner is lost and not yet taken over: a change could not reach
        # it, so none is made (02/04/0A, retried by hosts as any ALUA transition)
        self.hold = False
        self.undo = None    # of a pair: lukey -> state() before the command being run (_held_back)
        self.later = []     # of a pair: the unit attentions that command posts once it is told

    # ---- access check (called by scsi.Core only while some LU is reserved) ----------------------
    def blocks(self, lu, it, flags):
        r = self.held.get(lukey(lu))
        if r is None or r.holder == it:
            return False
        if r.spc2:
            return not flags & F_SPC2_OK
        if flags & F_PR_OK:
            return False
        if r.type >= WR_EX_RO:              # registrants-only / all-registrants: registrants pass
            regs = self.regs.get(lukey(lu))
            if regs is not None and it in regs:
                return False
        if r.type in (WR_EX, WR_EX_RO, WR_EX_AR):
            return not flags & F_READ
        return True

    # ---- events -----------------------------------------------------------------------------
    def reset(self, key):
        # a reset of the LU `key` (a LUN reset, or a target reset for each LU it reaches):
        # its RESERVE(6/10) reservation ends, a persistent one stays
        r = self.held.get(key)
        if r is not None and r.spc2:
            del self.held[key]
            self.dirty.add(key)

    def nexus_lost(self, initiator, port, isid=None):
        # the I_T nexus ended: the RESERVE(6/10) reservations it held end (persistent ones stay)
        for k in [k for k in self.held if self.held[k].spc2]:
            h = self.held[k].holder
            if h[0] == initiator and h[1] == port and (isid is None or h[2:] == (isid,)):
                del self.held[k]
                self.dirty.add(k)

    def ports_lost(self, ports):
        # a failover: every session through host ports `ports` ended with the controller that served
        # them (the persistent reservations and registrations of their nexuses stay)
        for k in [k for k in self.held if self.held[k].spc2 and self.held[k].holder[1] in ports]:
            del self.held[k]
            self.dirty.add(k)

    # ---- RESERVE / RELEASE (6 and 10) --------------------------------------------------------
    def reserve(self, lu, it, cdb):
        if cdb[0] == 0x16 and cdb[1] & 0x1F or cdb[0] == 0x56 and cdb[1] & 0x13:
            raise sense.invalid_field(1)    # extents, third-party and long ids are not supported
        k = lukey(lu)
        self._held_back(k)
        if self.regs.get(k):
            raise conflict()                # persistent registrations exclude RESERVE
        r = self.held.get(k)
        if r is not None and r.holder != it:
            raise conflict()
        if r is None:
            self.held[k] = Res(True, it, 0, 0)
            self.dirty.add(k)

    def release(self, lu, it, cdb):
        if cdb[0] == 0x17 and cdb[1] & 0x1F or cdb[0] == 0x57 and cdb[1] & 0x13:
            raise sense.invalid_field(1)
        k = lukey(lu)
        self._held_back(k)
        r = self.held.get(k)
        if r is not None and not r.spc2:
            raise conflict()
        if r is not None and r.holder == it:
            del self.held[k]                # from another nexus: GOOD, nothing released
            self.dirty.add(k)

    # ---- PERSISTENT RESERVE IN -----------------------------------------------------------------
    def pr_in(self, lu, it, cdb, buf):
        sa = cdb[1] & 0x1F
        alloc = (cdb[7] << 8) | cdb[8]
        k = lukey(lu)
        regs = self.regs.get(k) or {}
        gen = self.gen.get(k, 0)
        r = self.held.get(k)
        if r is not None and r.spc2:
            r = None
        if sa == 0:                         # READ KEYS
            d = bytearray(8 + 8 * len(regs))
            struct.pack_into(">II", d, 0, gen, 8 * len(regs))
            for i, key in enumerate(regs.values()):
                struct.pack_into(">Q", d, 8 + 8 * i, key)
        elif sa == 1:                       # READ RESERVATION
            d = bytearray(24 if r is not None else 8)
            struct.pack_into(">II", d, 0, gen, len(d) - 8)
            if r is not None:
                struct.pack_into(">Q", d, 8, 0 if r.type >= WR_EX_AR else r.key)
                d[21] = r.type              # scope 0: the logical unit
        elif sa == 2:                       # REPORT CAPABILITIES
            d = bytearray(8)
            d[1] = 8
            d[3] = 0x80 | 0x10              # TMV; ALLOW COMMANDS 1: TUR allowed under WR_EX/EX_AC
            d[4] = 0x80 | 0x40 | 0x20 | 0x08 | 0x02
            d[5] = 0x01
        elif sa == 3:                       # READ FULL STATUS
            descs = []
            for n, key in regs.items():
                name = n[0].encode()
                if len(n) > 2:                  # iSCSI initiator port name: name,i,0x<ISID>
                    isid = n[2]
                    name += b",i,0x" + (binascii.hexlify(isid) if isinstance(isid, bytes) else str(isid).encode())
                tid_len = (len(name) + 1 + 3) & ~3
                e = bytearray(24 + 4 + tid_len)
                struct.pack_into(">Q", e, 0, key)
                if r is not None and (r.holder == n or r.type >= WR_EX_AR):
                    e[12] = 0x01            # R_HOLDER
                    e[13] = r.type
                struct.pack_into(">HI", e, 18, n[1] + 1, 4 + tid_len)
                e[24] = 0x05                # iSCSI transport id, format 0 (name)
                struct.pack_into(">H", e, 26, tid_len)
                e[28:28 + len(name)] = name
                descs.append(e)
            body = b"".join(descs)
            d = bytearray(8)
            struct.pack_into(">II", d, 0, gen, len(body))
            d += body
        else:
            raise sense.invalid_field(1)
        n = min(len(d), alloc)
        buf[:n] = d[:n]
        return buf[:n]

    # ---- PERSISTENT RESERVE OUT ----------------------------------------------------------------
    def pr_out(self, lu, it, cdb, data_out):
        sa = cdb[1] & 0x1F
        scope, type_ = cdb[2] >> 4, cdb[2] & 0x0F
        plen = (cdb[5] << 24) | (cdb[6] << 16) | (cdb[7] << 8) | cdb[8]
        if sa > 6:
            raise sense.invalid_field(1)    # REGISTER AND MOVE, REPLACE LOST: not supported
        if plen != 24 or data_out is None or len(data_out) < 24:
            raise sense.param_length()
        p = bytes(data_out[:24])
        rkey, sakey = struct.unpack_from(">QQ", p, 0)
        if p[20] & 0x0D:
            raise sense.invalid_param(20)   # SPEC_I_PT, ALL_TG_PT, APTPL: not supported
        k = lukey(lu)
        self._held_back(k)
        regs = self.regs.get(k)
        if regs is None:
            regs = self.regs[k] = {}
        mine = regs.get(it)
        if sa == 0 or sa == 6:              # REGISTER, REGISTER AND IGNORE EXISTING KEY
            if sa == 0 and rkey != (mine or 0):
                raise conflict()
            if sakey == 0:
                if mine is not None:
                    self._unregister(k, regs, it)
            else:
                if mine is None and len(regs) >= MAX_REGS:
                    raise ScsiError(sense.ILLEGAL_REQUEST, 0x55, 0x04)   # registration resources
                regs[it] = sakey
                r = self.held.get(k)
                if r is not None and r.holder == it:
                    r.key = sakey
            self._bump(k)
            return None
        if mine is None or rkey != mine:
            raise conflict()
        r = self.held.get(k)
        if sa == 1:                         # RESERVE
            if scope:
                raise sense.invalid_field(2)
            if type_ not in _TYPES:
                raise sense.invalid_field(2)
            if r is None:
                self.held[k] = Res(False, None if type_ >= WR_EX_AR else it, type_, mine)
                self.dirty.add(k)
            elif r.spc2 or r.type != type_ or not self._holds(r, regs, it):
                raise conflict()
            return None
        if sa == 2:                         # RELEASE
            if r is None or r.spc2 or not self._holds(r, regs, it):
                return None
            if scope or r.type != type_:
                raise ScsiError(sense.ILLEGAL_REQUEST, 0x26, 0x04)   # invalid release
            del self.held[k]
            self.dirty.add(k)
            if r.type in (WR_EX_RO, EX_AC_RO, WR_EX_AR, EX_AC_AR):
                self._ua(k, [n for n in regs if n != it], UA_RES_RELEASED)
            return None
        if sa == 3:                         # CLEAR
            others = [n for n in regs if n != it]
            regs.clear()
            if r is not None and not r.spc2:
                del self.held[k]
            self._ua(k, others, UA_RES_PREEMPTED)
            self._bump(k)
            return None
        # PREEMPT (4), PREEMPT AND ABORT (5): the core runs one command at a time, nothing to abort
        if r is not None and r.spc2:
            raise conflict()
        if r is not None and r.type >= WR_EX_AR and sakey == 0:
            # all-registrants reservation: every other registrant goes, the reservation is ours
            gone = [n for n in regs if n != it]
            self._preempt(k, regs, gone, it, type_, scope, r)
            return None
        if sakey == 0:
            raise sense.invalid_param(8)
        gone = [n for n, v in regs.items() if v == sakey and (n != it or r is None)]
        if r is None or r.type >= WR_EX_AR or r.key != sakey:
            # no reservation (or not the holder's key): only registrations are removed
            if not gone:
                raise conflict()
            for n in gone:
                self._drop(k, regs, n)
            self._ua(k, gone, UA_REG_PREEMPTED)
            self._bump(k)
            return None
        self._preempt(k, regs, gone, it, type_, scope, r)
        return None

    # ---- helpers ----------------------------------------------------------------------------
    def _held_back(self, k):
        # before a command that may change LU k's reservations: refused while they are held, and
        # of a pair, what they were is kept until the partner has the change (undo)
        if self.hold:
            raise ScsiError(sense.NOT_READY, 0x04, 0x0A)
        if self.undo is not None and k not in self.undo:
            self.undo[k] = self.state(k)

    def roll_back(self):
        # the partner did not get the changes: they are not made (their commands fail, retryable),
        # nor heard of by the nexuses they would have reached
        for k, st in self.undo.items():
            if st is None:
                self.take(k)
            else:
                self.load(k, st)
        self.undo.clear()
        self.later.clear()

    def commit(self):
        # the partner has the changes: the command's unit attentions go out
        self.undo.clear()
        for k, its, code in self.later:
            self.core.unit_attention(k, its, code)
        self.later.clear()

    def _holds(self, r, regs, it):
        return r.holder == it or (r.type >= WR_EX_AR and it in regs)

    def _preempt(self, k, regs, gone, it, type_, scope, r):
        if scope:
            raise sense.invalid_field(2)
        if type_ not in _TYPES:
            raise sense.invalid_field(2)
        for n in gone:
            if n != it:
                del regs[n]
        self.held[k] = Res(False, None if type_ >= WR_EX_AR else it, type_, regs[it])
        self._ua(k, [n for n in gone if n != it], UA_REG_PREEMPTED)
        self._bump(k)

    def _drop(self, k, regs, n):
        del regs[n]
        r = self.held.get(k)
        if r is None or r.spc2:
            return False
        if r.type >= WR_EX_AR:
            if not regs:
                del self.held[k]            # the last registrant of an all-registrants type
            return False
        if r.holder == n:
            del self.held[k]
            return r.type in (WR_EX_RO, EX_AC_RO)
        return False

    def _unregister(self, k, regs, it):
        if self._drop(k, regs, it):
            self._ua(k, list(regs), UA_RES_RELEASED)

    def _bump(self, k):
        # every change of the registrations (and so every PREEMPT and CLEAR) passes here
        self.gen[k] = (self.gen.get(k, 0) + 1) & 0xFFFFFFFF
        self.dirty.add(k)

    def _ua(self, k, its, code):
        if its:
            if self.undo is not None:
                self.later.append((k, its, code))     # (of a pair: commit)
            else:
                self.core.unit_attention(k, its, code)

    # ---- a pair's copy (control/pair.md "Reservations across the pair") -------------------------
    def keys(self):
        # the logical units with any reservation state here
        return set(self.held) | set(self.regs) | set(self.gen)

    def state(self, k):
        """LU k's reservations as JSON values (None: nothing): {gen, regs: [[it, key]], res:
        [spc2, holder it or None, type, key] or None}; an I_T nexus as [name, port(, ISID hex)]."""
        regs = self.regs.get(k) or {}
        r = self.held.get(k)
        if not regs and r is None and not self.gen.get(k):
            return None
        return {"gen": self.gen.get(k, 0), "regs": [[_it_out(n), v] for n, v in regs.items()],
                "res": None if r is None else [1 if r.spc2 else 0, None if r.holder is None else _it_out(r.holder),
                                               r.type, r.key]}

    def check(self, st):
        # ValueError unless st is a state() (of a partner)
        _parse(st)

    def load(self, k, st):
        """LU k's reservations become `st` (as state() gives them, from the partner): ValueError,
        and nothing changed, when it is not such a state."""
        regs, r, gen = _parse(st)
        self.take(k)
        if regs:
            self.regs[k] = regs
        if r is not None:
            self.held[k] = r
        if gen:
            self.gen[k] = gen

    def take(self, k):
        # LU k's reservations, removed from here (the partner serves it now): its state()
        st = self.state(k)
        self.held.pop(k, None)
        self.regs.pop(k, None)
        self.gen.pop(k, None)
        self.dirty.discard(k)
        return st


def _it_out(n):
    return [n[0], n[1]] if len(n) < 3 else [n[0], n[1], binascii.hexlify(n[2]).decode()]


def _it_in(v):
    if type(v) is not list or len(v) not in (2, 3) or type(v[0]) is not str or type(v[1]) is not int \
            or not 0 <= v[1] < 0x10000:
        raise ValueError("not an I_T nexus: %r" % (v,))
    if len(v) == 2:
        return (v[0], v[1])
    if type(v[2]) is not str or len(v[2]) & 1 or len(v[2]) > 32:
        raise ValueError("not an ISID: %r" % (v[2],))
    return (v[0], v[1], binascii.unhexlify(v[2]))


def _key_in(v):
    if type(v) is not int or not 0 <= v < 1 << 64:
        raise ValueError("not a reservation key: %r" % (v,))
    return v


def _parse(st):
    # a state() from the partner, checked whole -> (regs, Res or None, gen)
    if type(st) is not dict or type(st.get("regs")) is not list or len(st["regs"]) > MAX_REGS:
        raise ValueError("not a reservation state")
    gen = st.get("gen")
    if type(gen) is not int or not 0 <= gen < 1 << 32:
        raise ValueError("not a PRgeneration: %r" % (gen,))
    regs = {}
    for e in st["regs"]:
        if type(e) is not list or len(e) != 2:
            raise ValueError("not a registration: %r" % (e,))
        regs[_it_in(e[0])] = _key_in(e[1])
    res = st.get("res")
    if res is None:
        return regs, None, gen
    if type(res) is not list or len(res) != 4 or type(res[0]) is not int or res[0] not in (0, 1) \
            or type(res[2]) is not int:
        raise ValueError("not a reservation: %r" % (res,))
    spc2 = res[0] == 1
    holder = None if res[1] is None else _it_in(res[1])
    if spc2 and (holder is None or res[2] != 0 or res[3] != 0) or \
            not spc2 and (res[2] not in _TYPES or (holder is None) != (res[2] >= WR_EX_AR)):
        raise ValueError("not a reservation: %r" % (res,))
    return regs, Res(spc2, holder, res[2], _key_in(res[3])), gen
