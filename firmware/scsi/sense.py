# SCSI status bytes and fixed-format sense data (SPC: response code 0x70, 18 bytes).
from micropython import const

GOOD = const(0x00)
CHECK_CONDITION = const(0x02)
CONDITION_MET = const(0x04)
BUSY = const(0x08)
RESERVATION_CONFLICT = const(0x18)

NO_SENSE = const(0x0)
RECOVERED_ERROR = const(0x1)
NOT_READY = const(0x2)
MEDIUM_ERROR = const(0x3)
HARDWARE_ERROR = const(0x4)
ILLEGAL_REQUEST = const(0x5)
UNIT_ATTENTION = const(0x6)
DATA_PROTECT = const(0x7)
VENDOR_SPECIFIC = const(0x9)
ABORTED_COMMAND = const(0xB)
MISCOMPARE = const(0xE)


class ScsiError(Exception):
    # raised anywhere below the SCSI core; becomes CHECK CONDITION with this sense
    def __init__(self, key, asc, ascq=0, info=None, field=None):
        self.key, self.asc, self.ascq, self.info, self.field = key, asc, ascq, info, field


def fixed(key, asc, ascq, info=None, field=None):
    s = bytearray(18)
    s[0] = 0x70
    s[2] = key
    s[7] = 10              # additional sense length
    s[12] = asc
    s[13] = ascq
    if info is not None:   # e.g. the failing LBA of a medium error
        s[0] |= 0x80
        s[3:7] = (info & 0xFFFFFFFF).to_bytes(4, "big")
    if field is not None:  # sense-key specific: invalid field, byte `field` (+ bit, see below)
        s[15] = 0xC0       # SKSV | C/D (the error is in the CDB)
        if field < 0:      # in the parameter list (data-out): C/D = 0; field = ~byte
            s[15], field = 0x80, ~field
        s[16:18] = field.to_bytes(2, "big")
    return bytes(s)


# the errors the SCSI core raises most
def invalid_opcode():
    return ScsiError(ILLEGAL_REQUEST, 0x20, 0x00, None, 0)


def invalid_field(byte):
    return ScsiError(ILLEGAL_REQUEST, 0x24, 0x00, None, byte)


def invalid_param(byte):
    # INVALID FIELD IN PARAMETER LIST, pointing at byte `byte` of the data-out
    return ScsiError(ILLEGAL_REQUEST, 0x26, 0x00, None, ~byte)


def param_length():
    return ScsiError(ILLEGAL_REQUEST, 0x1A, 0x00)           # PARAMETER LIST LENGTH ERROR


def lba_out_of_range():
    return ScsiError(ILLEGAL_REQUEST, 0x21, 0x00)


def not_ready():
    return ScsiError(NOT_READY, 0x04, 0x03)                 # manual intervention required


def incomplete_copy():
    # a vendor ASCQ, so a host tells a half-made backup from a drive that is merely unready
    return ScsiError(NOT_READY, 0x04, 0x80)                 # not ready: incomplete copy


def write_protected():
    return ScsiError(DATA_PROTECT, 0x27, 0x00)


def lun_not_supported():
    return ScsiError(ILLEGAL_REQUEST, 0x25, 0x00)
