# Direct commands (operation code 0x20, DCMD op code in byte 2): snapshot initiate and terminate
# (Tables 1-4) and the long operations (Tables 5-10). The seed leaves some codes as 0xXX; the values
# chosen here are documented in scsi/vendor.md and fixed by tests.
from micropython import const
from scsi import sense
from scsi.sense import ScsiError

OPCODE = const(0x20)
DCMD_SNAPSHOT_INITIATE = const(0x60)   # seed: 0xXX
DCMD_SNAPSHOT_TERMINATE = const(0x61)  # seed: 0xXX
DCMD_LOP_STATUS = const(0x43)
DCMD_LOP_START = const(0x44)
ASC_SNAPSHOT = const(0x81)             # the seed's ASC for snapshot conditions (sense key 0x09)
ASC_LOG_OVERFLOW = const(0x82)         # seed: "0xXX, Log Overflow"

# ASCQ of Table 2 / Table 4 (sense key 0x09, ASC 0x81)
REBUILD_IN_PROGRESS = const(0x06)
INIT_IN_PROGRESS = const(0x0C)
NOT_IN_PROGRESS = const(0x0C)          # Table 4 reuses 0x0C: kept as printed
CHECK_IN_PROGRESS = const(0x0D)
ALREADY_IN_PROGRESS = const(0x10)
NO_LOG_DEFINED = const(0x19)
ISSUED_TO_BACKUP = const(0x20)


def refused(ascq):
    return ScsiError(sense.VENDOR_SPECIFIC, ASC_SNAPSHOT, ascq)


def illegal_cdb():
    # Table 2/4 row "Illegal CDB": 0x05/0x24/0x00 exactly, without a field pointer
    return ScsiError(sense.ILLEGAL_REQUEST, 0x24, 0x00)


def log_overflow():
    return ScsiError(sense.VENDOR_SPECIFIC, ASC_LOG_OVERFLOW, 0x00)


def _reserved_clear(cdb):
    # byte 1 bits 0-4 and bytes 3-8 reserved, control byte 9 zero; the LUN bits (7-5) are ignored
    if cdb[1] & 0x1F or cdb[9]:
        return False
    for i in range(3, 9):
        if cdb[i]:
            return False
    return True


def _initiate(core, lu, cdb, buf):
    if not _reserved_clear(cdb):
        raise illegal_cdb()
    lu.initiate(core.nexus[0])


def _terminate(core, lu, cdb, buf):
    if not _reserved_clear(cdb):
        raise illegal_cdb()
    lu.terminate()


def _long_operation(core, lu, cdb, buf):
    # the caller's nexus decides which drives it may name and which copy it may hear of
    return core.long_operation(cdb, buf, core.nexus)


# the stored commands of FIG. 4 (142): DCMD op code -> (name, handler)
COMMANDS = {
    DCMD_SNAPSHOT_INITIATE: ("SNAPSHOT INITIATE", _initiate),            # 144
    DCMD_SNAPSHOT_TERMINATE: ("SNAPSHOT TERMINATE", _terminate),         # 145
    DCMD_LOP_START: ("START LONG OPERATION", _long_operation),           # 146
    DCMD_LOP_STATUS: ("GET LONG OPERATION STATUS", _long_operation),     # 147
}


def direct(core, lu, cdb, data_out, buf):
    cmd = COMMANDS.get(cdb[2])
    if cmd is None:
        raise sense.invalid_field(2)
    return cmd[1](core, lu, cdb, buf)


# ---- Start Long Operation (0x44) / Get Long Operation Status (0x43), Tables 5-10 ----------------
# The CDB is read here; lop/ (its manager, ctl.lop_mgr) starts the copy and keeps the words. The
# caller's nexus decides which drives it may name and which copy it may hear of (lop/README.md).
from lop import ops as lop
from lop.errors import Refused

COPY_OPCODE = const(0x01)          # Table 5/8 byte 3 "0xXX copy system drive": chosen 0x01


def long_operation(m, cdb, buf, nexus):
    # `m`: the long-operation manager (lop/manager.py) the controller hands over with the CDB
    # LUN bits (byte 1, 7-5) ignored; byte 1 bits 4-0 reserved; control byte zero
    if cdb[1] & 0x1F or cdb[9] or cdb[3] != COPY_OPCODE:
        raise illegal_cdb()
    if cdb[2] == DCMD_LOP_START:
        if cdb[6]:
            raise illegal_cdb()
        try:
            m.start_copy(cdb[4], cdb[5], nexus=nexus)
            word = lop.W_OK
        except Refused as e:
            word = e.word               # Table 7
    else:
        if cdb[4] or cdb[5] or cdb[6]:
            raise illegal_cdb()
        word = m.table10(nexus)
    alloc = (cdb[7] << 8) | cdb[8]
    out = buf[:2]
    out[0] = word >> 8
    out[1] = word & 0xFF
    return out[:alloc if alloc < 2 else 2]
