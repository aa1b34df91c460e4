# SCSI core: one entry point for every transport. execute() resolves the nexus to a logical unit,
# dispatches the CDB by opcode to the primary (spc), block (sbc) or direct (vendor) command set and
# turns any ScsiError into CHECK CONDITION with fixed-format sense data.
import sys
from micropython import const
import sense
from sense import ScsiError, GOOD, CHECK_CONDITION, BUSY
import spc
import sbc
import vendor

MAX_XFER_BLOCKS = const(2048)          # 1 MiB per command (advertised in VPD page B0)

# a logical unit as the host sees it
NORMAL = const(0)                      # a LUN of an ordinary (primary or any) system drive
BACKUP = const(1)                      # a LUN of the log system drive: the snapshot's backup LUN


class LogicalUnit:
    __slots__ = ("kind", "sd", "port", "lun")

    def __init__(self, kind, sd, port, lun):
        self.kind, self.sd, self.port, self.lun = kind, sd, port, lun


# opcode -> handler(core, lu, cdb, data_out, buf) -> data_in
HANDLERS = {}
HANDLERS.update(spc.HANDLERS)
HANDLERS.update(sbc.HANDLERS)
HANDLERS[0x20] = vendor.direct
# commands a host may send to any LUN, present or not, snapshot or not
ALWAYS = (0x12, 0xA0, 0x03)             # INQUIRY, REPORT LUNS, REQUEST SENSE
# commands that do not touch the medium; a backup LUN without a snapshot still answers them
_CDB_LEN = (6, 10, 10, 0, 16, 12, 0, 0)


class Core:
    def __init__(self, ctl):
        self.ctl = ctl
        self._buf = bytearray(MAX_XFER_BLOCKS * 512)   # data-in of callers that bring no buffer
        self.nexus = None                              # of the command being executed

    def execute(self, nexus, cdb, data_out=None, buf=None):
        """-> (status, sense, data_in). `buf`: the transport's own data-in buffer (a memoryview of
        at least MAX_XFER_BLOCKS*512 bytes); without one the core's buffer is used, valid until
        the next call."""
        self.nexus = nexus
        try:
            if len(cdb) < 6:
                raise sense.invalid_field(0)
            op = cdb[0]
            n = _CDB_LEN[op >> 5]
            if n == 0 or len(cdb) < n:
                raise sense.invalid_opcode()
            fn = HANDLERS.get(op)
            if fn is None:
                raise sense.invalid_opcode()
            lu = self.ctl.logical_unit(nexus)
            if lu is None and op not in ALWAYS:
                raise sense.lun_not_supported()
            if lu is not None and op not in ALWAYS:
                if self.ctl.busy(lu):
                    return BUSY, None, b""
            data = fn(self, lu, cdb, data_out, memoryview(buf if buf is not None else self._buf))
            return GOOD, None, data if data is not None else b""
        except ScsiError as e:
            return CHECK_CONDITION, sense.fixed(e.key, e.asc, e.ascq, e.info, e.field), b""
        except Exception as e:
            # a firmware fault must not take the board down: report it as a hardware error
            sys.print_exception(e)
            self.ctl.events.log("error", "FIRMWARE FAULT %s: %r" % (bytes(cdb[:1]).hex(), e))
            return CHECK_CONDITION, sense.fixed(sense.HARDWARE_ERROR, 0x44, 0x00), b""

    def expected_out(self, cdb):
        # bytes of data-out a CDB carries, so a transport can collect them without parsing CDBs
        try:
            return sbc.data_out_len(cdb)
        except Exception:
            return 0
