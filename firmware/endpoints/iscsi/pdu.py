# iSCSI PDU helpers (RFC 7143): CRC32C digests, big-endian field access, login/text key=value data
# and the operational parameter negotiation table. No I/O here, so it is testable on its own.
import array
import micropython
from micropython import const

BHS = const(48)

# opcodes, initiator to target
OP_NOP_OUT = const(0x00)
OP_SCSI_CMD = const(0x01)
OP_TMF = const(0x02)
OP_LOGIN = const(0x03)
OP_TEXT = const(0x04)
OP_DATA_OUT = const(0x05)
OP_LOGOUT = const(0x06)
OP_SNACK = const(0x10)
# target to initiator
OP_NOP_IN = const(0x20)
OP_SCSI_RSP = const(0x21)
OP_TMF_RSP = const(0x22)
OP_LOGIN_RSP = const(0x23)
OP_TEXT_RSP = const(0x24)
OP_DATA_IN = const(0x25)
OP_LOGOUT_RSP = const(0x26)
OP_R2T = const(0x31)
OP_REJECT = const(0x3F)

# Reject reasons (RFC 7143 11.17.1)
REJ_DIGEST = const(0x02)
REJ_SNACK = const(0x03)
REJ_PROTOCOL = const(0x04)
REJ_NOT_SUPPORTED = const(0x05)
REJ_IMMEDIATE = const(0x06)
REJ_TASK_IN_PROGRESS = const(0x07)
REJ_INVALID_FIELD = const(0x09)
REJ_LONG_OP = const(0x0A)
REJ_WAITING_LOGOUT = const(0x0C)

ALL_ONES = const(0xFFFFFFFF)


# --- CRC32C (Castagnoli, reflected 0x82F63B78), slicing-by-8 tables in one array ---
def _tables():
    t = array.array("I", bytes(4 * 256 * 8))
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t[i] = c
    for k in range(1, 8):
        for i in range(256):
            c = t[(k - 1) * 256 + i]
            t[k * 256 + i] = (c >> 8) ^ t[c & 0xFF]
    return t


_T = _tables()


@micropython.viper
def _crc(crc: uint, buf, n: int, t: ptr32) -> uint:
    p = ptr8(buf)
    i = 0
    n8 = n & ~7
    while i < n8:   # eight bytes per step: one table lookup per byte, no loop-carried byte chain
        a = crc ^ (uint(p[i]) | (uint(p[i + 1]) << 8) | (uint(p[i + 2]) << 16) | (uint(p[i + 3]) << 24))
        crc = (uint(t[1792 + (a & 0xFF)]) ^ uint(t[1536 + ((a >> 8) & 0xFF)])
               ^ uint(t[1280 + ((a >> 16) & 0xFF)]) ^ uint(t[1024 + (a >> 24)])
               ^ uint(t[768 + uint(p[i + 4])]) ^ uint(t[512 + uint(p[i + 5])])
               ^ uint(t[256 + uint(p[i + 6])]) ^ uint(t[uint(p[i + 7])]))
        i += 8
    while i < n:
        crc = uint(t[(crc ^ uint(p[i])) & 0xFF]) ^ (crc >> 8)
        i += 1
    return crc


def crc32c(buf, crc=0):
    """CRC32C of buf; pass a previous result as crc to continue over a following piece."""
    return _crc(crc ^ 0xFFFFFFFF, buf, len(buf), _T) ^ 0xFFFFFFFF


# --- big-endian fields (iSCSI digests are sent little-endian, see put_le32) ---
def get32(b, o):
    return (b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]


def put32(b, o, v):
    b[o] = (v >> 24) & 0xFF
    b[o + 1] = (v >> 16) & 0xFF
    b[o + 2] = (v >> 8) & 0xFF
    b[o + 3] = v & 0xFF


def get24(b, o):
    return (b[o] << 16) | (b[o + 1] << 8) | b[o + 2]


def put24(b, o, v):
    b[o] = (v >> 16) & 0xFF
    b[o + 1] = (v >> 8) & 0xFF
    b[o + 2] = v & 0xFF


def put_le32(b, o, v):
    b[o] = v & 0xFF
    b[o + 1] = (v >> 8) & 0xFF
    b[o + 2] = (v >> 16) & 0xFF
    b[o + 3] = (v >> 24) & 0xFF


def get_le32(b, o):
    return b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)


def sn_lt(a, b):
    """Serial number arithmetic (RFC 1982, 32 bits): a < b."""
    return a != b and ((b - a) & 0xFFFFFFFF) < 0x80000000


def lun_number(b, o=8):
    """LUN from the 8-byte LUN field: peripheral (00b) and flat (01b) single-level addressing."""
    method = b[o] >> 6
    if method == 0:
        return b[o + 1] if b[o] == 0 else -1
    if method == 1:
        return ((b[o] & 0x3F) << 8) | b[o + 1]
    return -1


def put_lun(b, lun, o=8):
    for i in range(8):
        b[o + i] = 0
    if lun < 256:
        b[o + 1] = lun
    else:
        b[o] = 0x40 | (lun >> 8)
        b[o + 1] = lun & 0xFF


# --- text data: key=value pairs, each ended by NUL ---
class TextError(Exception):
    pass


MAX_KEY = const(63)
MAX_VALUE = const(8192)


def parse_text(data):
    """bytes -> list of (key, value) str pairs in order. TextError on anything malformed."""
    out = []
    if not data:
        return out
    data = bytes(data)
    if data[-1] != 0:
        raise TextError("text data not NUL terminated")
    seen = set()
    for item in data[:-1].split(b"\x00"):
        if not item:
            continue   # tolerate padding NULs
        eq = item.find(b"=")
        if eq <= 0:
            raise TextError("not key=value")
        if eq > MAX_KEY or len(item) - eq - 1 > MAX_VALUE:
            raise TextError("key or value too long")
        try:
            k = item[:eq].decode()
            v = item[eq + 1:].decode()
        except Exception:
            raise TextError("not UTF-8")
        for ch in k:
            if not (ch.isalpha() or ch.isdigit() or ch in ".-+@_:#"):
                raise TextError("bad key character")
        if k in seen:
            raise TextError("duplicate key " + k)
        seen.add(k)
        out.append((k, v))
    return out


def format_text(pairs):
    return b"".join(("%s=%s\x00" % kv).encode() for kv in pairs)


# --- operational negotiation ---
# What this target offers. Large data segments and bursts keep the per-PDU cost (Python work per
# PDU) low; ERL 0 and one connection per session keep recovery simple (a broken connection ends
# the session, and the initiator logs in again).
TARGET_MRDSL = const(262144)
TARGET_MAX_BURST = const(1048576)
TARGET_FIRST_BURST = const(65536)    # what a write may send unasked: a parking place (flow.py)

_BOOL = ("Yes", "No")


def _num(v, lo, hi):
    try:
        n = int(v)
    except ValueError:
        return None
    if n < lo or n > hi or not v.isdigit():
        return None
    return n


class Params:
    """Session/connection parameters, starting from the RFC 7143 defaults."""

    def __init__(self):
        self.header_digest = False
        self.data_digest = False
        self.mrdsl_out = 8192          # initiator's MaxRecvDataSegmentLength: most we may send
        self.max_burst = 262144
        self.first_burst = 65536
        self.immediate_data = True
        self.initial_r2t = True
        self.max_r2t = 1
        self.time2wait = 2
        self.time2retain = 20
        self.erl = 0
        self.initiator_name = None
        self.initiator_alias = None
        self.target_name = None
        self.session_type = None
        self.auth_methods = None


# key -> (kind, ...) ; kinds: list, bool-or, bool-and, min, max, decl
NEGOTIATED = {
    "HeaderDigest": ("list",),
    "DataDigest": ("list",),
    "MaxConnections": ("min", 1, 65535, 1),
    "InitialR2T": ("or", "No"),
    "ImmediateData": ("and", "Yes"),
    "MaxRecvDataSegmentLength": ("decl", 512, 16777215),
    "MaxBurstLength": ("min", 512, 16777215, TARGET_MAX_BURST),
    "FirstBurstLength": ("min", 512, 16777215, TARGET_FIRST_BURST),
    "DefaultTime2Wait": ("max", 0, 3600, 0),
    "DefaultTime2Retain": ("min", 0, 3600, 0),
    "MaxOutstandingR2T": ("min", 1, 65535, 1),
    "DataPDUInOrder": ("or", "Yes"),
    "DataSequenceInOrder": ("or", "Yes"),
    "ErrorRecoveryLevel": ("min", 0, 2, 0),
    "IFMarker": ("and", "No"),
    "OFMarker": ("and", "No"),
    "iSCSIProtocolLevel": ("min", 0, 31, 1),
}
# keys whose meaning is gone with markers (RFC 7143 removed them): answered Irrelevant
_IRRELEVANT = ("IFMarkInt", "OFMarkInt")
_DECLARED = ("InitiatorName", "InitiatorAlias", "TargetName", "SessionType", "TargetAlias",
             "TargetAddress", "TargetPortalGroupTag")


def negotiate(params, key, value):
    """Apply one initiator key. Returns the value to answer with, or None when no answer is due
    (declarative keys). Raises TextError for values that make the login fail."""
    if key in _DECLARED:
        if key == "InitiatorName":
            if not value or len(value) > 223:
                raise TextError("bad InitiatorName")
            params.initiator_name = value
        elif key == "InitiatorAlias":
            params.initiator_alias = value
        elif key == "TargetName":
            params.target_name = value
        elif key == "SessionType":
            if value not in ("Normal", "Discovery"):
                raise TextError("bad SessionType")
            params.session_type = value
        else:   # target-only keys sent by an initiator
            return "Reject"
        return None
    if key in _IRRELEVANT:
        return "Irrelevant"
    spec = NEGOTIATED.get(key)
    if spec is None:
        return "NotUnderstood"
    kind = spec[0]
    if kind == "list":
        chosen = None
        for v in value.split(","):
            if v in ("CRC32C", "None"):
                chosen = v
                break
        if chosen is None:
            return "Reject"
        if key == "HeaderDigest":
            params.header_digest = chosen == "CRC32C"
        else:
            params.data_digest = chosen == "CRC32C"
        return chosen
    if kind in ("or", "and"):
        if value not in _BOOL:
            return "Reject"
        ours = spec[1]
        if kind == "or":
            res = "Yes" if "Yes" in (value, ours) else "No"
        else:
            res = "Yes" if value == ours == "Yes" else "No"
        if key == "InitialR2T":
            params.initial_r2t = res == "Yes"
        elif key == "ImmediateData":
            params.immediate_data = res == "Yes"
        elif key in ("DataPDUInOrder", "DataSequenceInOrder") and res != "Yes":
            raise TextError(key + "=No not supported")
        return res
    n = _num(value, spec[1], spec[2])
    if n is None:
        return "Reject"
    if kind == "decl":
        params.mrdsl_out = n
        return None
    res = min(n, spec[3]) if kind == "min" else max(n, spec[3])
    if key == "MaxBurstLength":
        params.max_burst = res
        params.first_burst = min(params.first_burst, res)
    elif key == "FirstBurstLength":
        params.first_burst = min(res, params.max_burst)
    elif key == "DefaultTime2Wait":
        params.time2wait = res
    elif key == "DefaultTime2Retain":
        params.time2retain = res
    elif key == "MaxOutstandingR2T":
        params.max_r2t = res
    elif key == "ErrorRecoveryLevel":
        params.erl = res
    return str(res)
