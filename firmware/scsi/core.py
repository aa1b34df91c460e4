# SCSI core: one entry point for every transport. execute() resolves the nexus to a logical unit,
# reports a pending unit attention or a reservation conflict, dispatches the CDB by opcode to the
# primary (spc), block (sbc) or direct (vendor) command set and turns any ScsiError into CHECK
# CONDITION with fixed-format sense data. The command set and its answers: scsi/README.md.
import sys
from micropython import const
from scsi import sense
from scsi.sense import ScsiError, GOOD, CHECK_CONDITION, BUSY, RESERVATION_CONFLICT
from scsi import spc
from scsi import sbc
from scsi import pr
from scsi import vendor
from scsi.pr import F_NOLU, F_READ, F_PR_OK, F_SPC2_OK, it_of
from scsi.sbc import MAX_XFER_BLOCKS                # noqa: F401 (transports read it from here)

MAX_NEXUSES = const(256)               # I_T_L nexuses remembered for unit attentions
MAX_UA = const(4)                      # pending unit attentions per nexus
LENGTHS = const(8)                     # data-in views kept per buffer (view()): a host's few sizes
BUFFERS = const(160)                   # buffers they are kept for: the live connections' (iSCSI:
                                       # one or two each, 64 connections), a transport's pool, the
                                       # core's own

# unit attentions (ASC << 8 | ASCQ)
UA_POWER_ON = const(0x2901)
UA_TARGET_RESET = const(0x2902)
UA_LUN_RESET = const(0x2903)
UA_ALUA_CHANGED = const(0x2A06)        # ASYMMETRIC ACCESS STATE CHANGED


# opcode -> handler(core, lu, cdb, data_out, buf) -> data_in
HANDLERS = {}
HANDLERS.update(spc.HANDLERS)
HANDLERS.update(sbc.HANDLERS)
HANDLERS[0x20] = vendor.direct

# per-opcode flags: where the command may run (no LU, under reservations)
FLAGS = bytearray(256)
for _op in (0x12, 0xA0, 0x03):                         # INQUIRY, REPORT LUNS, REQUEST SENSE
    FLAGS[_op] = F_NOLU | F_PR_OK | F_SPC2_OK
for _op in (0x00, 0x25, 0x9E, 0xA3, 0x5E, 0x5F):      # TUR, capacity, opcodes, PR IN/OUT
    FLAGS[_op] = F_PR_OK | F_READ
for _op in (0x08, 0x28, 0xA8, 0x88, 0x2F, 0xAF, 0x8F, 0x1A, 0x5A, 0x34, 0x90, 0x37, 0xB7):
    FLAGS[_op] = F_READ                                # reads: allowed under write-exclusive
FLAGS[0x17] = FLAGS[0x57] = F_SPC2_OK                  # RELEASE from a non-holder is a no-op
FLAGS[0xA3] |= F_SPC2_OK
del _op
# the medium reads (READ 6/10/12/16): the only commands a transport's buffer shorter than a whole
# transfer is lent to (their data goes to the core's own buffer when it does not fit)
SHORT_OK = bytearray(256)
SHORT_OK[0x08] = SHORT_OK[0x28] = SHORT_OK[0xA8] = SHORT_OK[0x88] = 1
_WHOLE = MAX_XFER_BLOCKS * 512
_CDB_LEN = (6, 10, 10, 0, 16, 12, 0, 0)
_GOOD = (GOOD, None, b"")                # the answer of a command without data-in


class Core:
    # what the controller lends the core, as bound methods (the scsi layer does not import control):
    # logical_unit(nexus) -> the LU (scsi/lu.py) the nexus sees or None; luns(port, initiator) and
    # lu_keys(initiator), what an initiator sees (REPORT LUNS, target reset); long_operation(cdb,
    # buf, nexus), the direct commands of Tables 5-10. `events`: the event log; `model`: INQUIRY's.
    def __init__(self, logical_unit, luns, lu_keys, long_operation, events, model):
        self.logical_unit, self.luns, self.lu_keys = logical_unit, luns, lu_keys
        self.long_operation, self.events, self.model = long_operation, events, model
        # data-in of callers that bring no buffer (and of a read too long for the one brought)
        self.own = memoryview(bytearray(MAX_XFER_BLOCKS * 512))
        self.nexus = None                              # of the command being executed
        self.pr = pr.Reservations(self)
        # of a pair: alua(lu, controller) -> asymmetric access state of lu through that
        # controller's target port group (scsi/README.md "ALUA"); None on a simplex board
        self.alua = None
        self._seen = {}                                # I_T_L nexus -> None (for unit attentions)
        # views of the data-in buffers reads fill, and the GOOD answers made with them: hosts
        # read a few sizes again and again into a few buffers (this one, a transport's transfer
        # buffers, each connection's send buffers), and each is made once, not per command (view())
        self._views = {}                               # id(buffer) -> {0: it, bytes: view}
        self._answers = {}                             # id(view) -> (GOOD, None, view)
        self._ua = {}                                  # I_T_L nexus -> [pending UA codes]

    def execute(self, nexus, cdb, data_out=None, buf=None):
        """-> (status, sense, data_in). `buf`: the transport's own data-in buffer, a memoryview of
        MAX_XFER_BLOCKS*512 bytes, or shorter for a medium read (SHORT_OK) whose data it then
        takes when it fits; otherwise the core's buffer is used, valid until the next call."""
        self.nexus = nexus
        try:
            if len(cdb) < 6:
                raise sense.invalid_field(0)
            op = cdb[0]
            fn = HANDLERS.get(op)
            if fn is None or len(cdb) < _CDB_LEN[op >> 5]:
                raise sense.invalid_opcode()
            flags = FLAGS[op]
            lu = self.logical_unit(nexus)
            if lu is None:
                if not flags & F_NOLU:
                    raise sense.lun_not_supported()
            else:
                if nexus not in self._seen:
                    self._see(nexus)
                if not flags & F_NOLU:
                    if self._ua and nexus in self._ua:
                        code = self.take_ua(nexus)
                        return CHECK_CONDITION, sense.fixed(sense.UNIT_ATTENTION, code >> 8, code & 0xFF), b""
                    if self.pr.held and self.pr.blocks(lu, it_of(nexus), flags):
                        return RESERVATION_CONFLICT, None, b""
                    if lu.busy():
                        return BUSY, None, b""
            if buf is None or (len(buf) < _WHOLE and not SHORT_OK[op]):
                buf = self.own
            elif type(buf) is not memoryview:
                buf = memoryview(buf)
            data = fn(self, lu, cdb, data_out, buf)
            if data is None:
                return _GOOD
            g = self._answers.get(id(data))
            return g if g is not None and g[2] is data else (GOOD, None, data)
        except ScsiError as e:
            if e.key < 0:
                return RESERVATION_CONFLICT, None, b""
            return CHECK_CONDITION, sense.fixed(e.key, e.asc, e.ascq, e.info, e.field), b""
        except Exception as e:
            # a firmware fault must not take the board down: report it as a hardware error
            sys.print_exception(e, sys.stderr)
            self.events.log("error", "FIRMWARE FAULT %s: %r" % (bytes(cdb[:1]).hex(), e))
            return CHECK_CONDITION, sense.fixed(sense.HARDWARE_ERROR, 0x44, 0x00), b""

    def view(self, buf, nb):
        """buf[:nb], made once per buffer and length with its GOOD answer: LENGTHS per buffer
        (past that, that buffer's are dropped and made again; past BUFFERS buffers, all are). A
        buffer is held while its views are here, so its id is not reused."""
        of = self._views.get(id(buf))
        if of is None or of[0] is not buf:
            if len(self._views) >= BUFFERS:
                self._views.clear()
                self._answers.clear()
            of = self._views[id(buf)] = {0: buf}
        mv = of.get(nb)
        if mv is None:
            if len(of) > LENGTHS:
                self._drop(of)
                of[0] = buf
            mv = of[nb] = buf[:nb]
            self._answers[id(mv)] = (GOOD, None, mv)
        return mv

    def forget(self, buf):
        """Drops the views made of a buffer its transport no longer uses (a closed connection's):
        they would keep it from the collector."""
        of = self._views.get(id(buf))
        if of is not None and of[0] is buf:
            del self._views[id(buf)]
            self._drop(of)

    def _drop(self, of):
        # the views of one buffer and their answers
        for nb in of:
            if nb:
                del self._answers[id(of[nb])]
        of.clear()

    def rewrite(self, lu, lba, mv):
        """A write the I/O processor's thread could not finish (a disk failed under it), written
        again here, degraded: (status, sense) for its answer."""
        try:
            lu.write(lba, mv, False)
            return GOOD, None
        except ScsiError as e:
            return CHECK_CONDITION, sense.fixed(e.key, e.asc, e.ascq, e.info, e.field)
        except Exception as e:
            sys.print_exception(e, sys.stderr)
            self.events.log("error", "FIRMWARE FAULT rewrite: %r" % (e,))
            return CHECK_CONDITION, sense.fixed(sense.HARDWARE_ERROR, 0x44, 0x00)

    def expected_out(self, cdb):
        # bytes of data-out a CDB carries, so a transport can collect them without parsing CDBs
        try:
            return sbc.data_out_len(cdb)
        except Exception:
            return 0

    # ---- unit attentions ----------------------------------------------------------------------
    def see(self, nexus):
        # a nexus whose commands another controller of a pair executes: it hears this one's
        # unit attentions once this one serves it (after a failover)
        if nexus not in self._seen:
            self._see(nexus)

    def _see(self, nexus):
        if len(self._seen) < MAX_NEXUSES:
            self._seen[nexus] = None

    def take_ua(self, nexus):
        # the oldest pending unit attention of a nexus, cleared (None if there is none)
        q = self._ua.get(nexus)
        if not q:
            return None
        code = q.pop(0)
        if not q:
            del self._ua[nexus]
        return code

    def _post(self, nexus, code):
        q = self._ua.get(nexus)
        if q is None or (code >> 8) == 0x29:
            self._ua[nexus] = [code]            # a reset supersedes what was pending
        elif code not in q and len(q) < MAX_UA:
            q.append(code)

    def access_changed(self):
        # ALUA states moved (failover, failback, ownership): every nexus hears 2A/06 once
        for n in self._seen:
            if self.logical_unit(n) is not None:
                self._post(n, UA_ALUA_CHANGED)

    def unit_attention(self, key, its, code):
        # establish `code` for the nexuses of I_T nexuses `its` (None: all) to the LU `key`
        for n in self._seen:
            if its is not None and it_of(n) not in its:
                continue
            lu = self.logical_unit(n)
            if lu is not None and pr.lukey(lu) == key:
                self._post(n, code)

    # ---- task management and nexus loss (called by the controller for the transports) --------
    def task_mgmt(self, nexus, kind):
        if kind == "lun_reset":
            lu = self.logical_unit(nexus)
            if lu is not None:
                k = pr.lukey(lu)
                self.pr.reset(k)
                self.unit_attention(k, None, UA_LUN_RESET)
        elif kind in ("target_warm_reset", "target_cold_reset"):
            # it reaches the LUs the initiator sees, not those masked from it (scsi/README.md)
            code = UA_TARGET_RESET if kind == "target_warm_reset" else UA_POWER_ON
            for k in self.lu_keys(nexus[0]):
                self.pr.reset(k)
                self.unit_attention(k, None, code)
        # abort_task_set, clear_task_set: the core runs each command to completion, so no task of
        # the nexus is queued here; nothing to clear

    def nexus_lost(self, initiator, port, isid=None):
        # the I_T nexus ended (the initiator's last session on the port; with `isid`, that
        # session): RESERVE(6/10) reservations it held end, and its nexuses are forgotten (a new
        # session starts without stale unit attentions)
        self.pr.nexus_lost(initiator, port, isid)
        for n in [n for n in self._seen
                  if n[0] == initiator and n[1] == port and (isid is None or n[3:] == (isid,))]:
            del self._seen[n]
            self._ua.pop(n, None)
