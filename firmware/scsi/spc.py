# Primary commands (SPC-4): INQUIRY with VPD pages, TEST UNIT READY, REQUEST SENSE, REPORT LUNS,
# MODE SENSE 6/10, START STOP UNIT, PREVENT ALLOW MEDIUM REMOVAL, REPORT SUPPORTED OPERATION CODES,
# and the reservation commands (state in pr.py). Handlers take (core, lu, cdb, data_out, buf) and
# return data-in.
import struct
import binascii
from scsi import sense
from scsi import pr
from scsi.sense import ScsiError
from scsi.sbc import MAX_XFER_BLOCKS, MAX_WRITE_SAME, MAX_CAW

VENDOR = b"MYLEX   "
REVISION = b"RB01"
VPD_PAGES = (0x00, 0x80, 0x83, 0xB0, 0xB1)
CACHING_PAGE = 0x08
CONTROL_PAGE = 0x0A


def _alloc(cdb, off, n):
    return int.from_bytes(cdb[off:off + n], "big")


def _out(buf, data, alloc):
    # copy `data` into the transport's buffer, truncated to the allocation length
    n = min(len(data), alloc)
    buf[:n] = data[:n]
    return buf[:n]


def inquiry(core, lu, cdb, data_out, buf):
    evpd = cdb[1] & 1
    page = cdb[2]
    alloc = _alloc(cdb, 3, 2)
    if cdb[1] & 0xFE:
        raise sense.invalid_field(1)
    if not evpd and page:
        raise sense.invalid_field(2)
    # peripheral qualifier 3 / type 0x1F: no logical unit at this LUN
    pq = 0x00 if lu is not None else 0x7F
    if not evpd:
        d = bytearray(96)
        d[0] = pq
        d[2] = 0x06                # SPC-4
        d[3] = 0x12                # HiSup, response data format 2
        d[4] = len(d) - 5
        if core.alua is not None:
            d[5] = 0x10            # TPGS 01: implicit ALUA (the pair moves states itself)
        d[7] = 0x02                # CmdQue
        d[8:16] = VENDOR
        product = core.model + (lu.model_suffix if lu is not None else "")
        d[16:32] = (product.encode() + b" " * 16)[:16]
        d[32:36] = REVISION
        d[36:44] = lu.serial()[:8] if lu is not None else b" " * 8
        # version descriptors: SAM-5, iSCSI, SPC-4, SBC-3
        d[58:66] = b"\x00\xA0\x09\x60\x04\x60\x04\xC0"
        return _out(buf, d, alloc)
    if lu is None:
        raise sense.lun_not_supported()
    if page == 0x00:
        d = bytes((pq, 0x00, 0, len(VPD_PAGES))) + bytes(VPD_PAGES)
    elif page == 0x80:
        sn = lu.serial()
        d = bytes((pq, 0x80, 0, len(sn))) + sn
    elif page == 0x83:
        naa = lu.naa()                            # NAA 6, 16 bytes, stable per logical unit
        gport = core.nexus[1]                     # the port asked: 2 * controller + host port
        rtp = struct.pack(">BBBBI", 0x01, 0x14, 0, 4, gport + 1)     # relative target port
        desc = bytes((0x01, 0x03, 0x00, 16)) + naa + rtp
        if core.alua is not None:                 # target port group: the controller's
            desc += struct.pack(">BBBBI", 0x01, 0x15, 0, 4, (gport >> 1) + 1)
        d = bytes((pq, 0x83)) + struct.pack(">H", len(desc)) + desc
    elif page == 0xB0:
        # Block Limits (SBC-3 length): WSNZ, COMPARE AND WRITE and transfer limits (granularity a
        # full stripe, optimal the most whole stripes a request may carry), no UNMAP
        d = bytearray(64)
        d[0], d[1], d[3] = pq, 0xB0, 60
        d[4] = 0x01                # WSNZ: WRITE SAME of zero blocks is refused
        d[5] = MAX_CAW
        struct.pack_into(">HII", d, 6, lu.granularity_blocks(), MAX_XFER_BLOCKS, lu.optimal_blocks(MAX_XFER_BLOCKS))
        struct.pack_into(">I", d, 16, MAX_XFER_BLOCKS)       # maximum prefetch length
        struct.pack_into(">Q", d, 36, MAX_WRITE_SAME)
        return _out(buf, d, alloc)
    elif page == 0xB1:
        d = bytearray(64)
        d[0], d[1], d[3] = pq, 0xB1, 60     # rotation rate and form factor: not reported
        return _out(buf, d, alloc)
    else:
        raise sense.invalid_field(2)
    return _out(buf, d, alloc)


def test_unit_ready(core, lu, cdb, data_out, buf):
    lu.ready()


def request_sense(core, lu, cdb, data_out, buf):
    if cdb[1] & 0x01:
        raise sense.invalid_field(1)     # descriptor format sense is not supported
    alloc = cdb[4]
    code = core.take_ua(core.nexus) if lu is not None else None
    if lu is None:
        d = sense.fixed(sense.ILLEGAL_REQUEST, 0x25, 0x00)
    elif code is not None:         # a pending unit attention is reported here, and cleared
        d = sense.fixed(sense.UNIT_ATTENTION, code >> 8, code & 0xFF)
    else:
        try:
            lu.ready()
            d = sense.fixed(0, 0, 0)
        except ScsiError as e:
            d = sense.fixed(e.key, e.asc, e.ascq)
    return _out(buf, d, alloc)


def report_luns(core, lu, cdb, data_out, buf):
    sel = cdb[2]
    alloc = _alloc(cdb, 6, 4)
    if sel not in (0, 1, 2):
        raise sense.invalid_field(2)
    if alloc < 16:
        raise sense.invalid_field(6)
    n = core.nexus
    luns = core.luns(n[1], n[0]) if sel != 1 else []
    d = bytearray(8 + 8 * len(luns))
    struct.pack_into(">I", d, 0, 8 * len(luns))
    for i, n in enumerate(luns):
        d[8 + 8 * i + 1] = n          # peripheral device addressing, LUN < 256
    return _out(buf, d, alloc)


def _pages(core, lu, page, pc):
    out = b""
    if page in (CACHING_PAGE, 0x3F):
        p = bytearray(20)
        p[0], p[1] = CACHING_PAGE, 18
        if pc != 1 and lu.write_back():
            p[2] = 0x04             # WCE: the drive's write policy (WB_MSK); nothing changeable
        out += p
    if page in (CONTROL_PAGE, 0x3F):
        p = bytearray(12)
        p[0], p[1] = CONTROL_PAGE, 10
        if pc != 1:
            p[2] = 0x02             # GLTSD
            p[8:10] = b"\xff\xff"   # busy timeout period: unlimited
        out += p
    if not out:
        raise sense.invalid_field(2)
    return out


def mode_sense6(core, lu, cdb, data_out, buf):
    return _mode_sense(core, lu, cdb, buf, ten=False)


def mode_sense10(core, lu, cdb, data_out, buf):
    return _mode_sense(core, lu, cdb, buf, ten=True)


def _mode_sense(core, lu, cdb, buf, ten):
    dbd = cdb[1] & 0x08
    pc = cdb[2] >> 6
    page = cdb[2] & 0x3F
    subpage = cdb[3]
    if pc == 3:
        raise ScsiError(sense.ILLEGAL_REQUEST, 0x39, 0x00)    # saving parameters not supported
    if subpage not in (0, 0xFF):
        raise sense.invalid_field(3)
    pages = _pages(core, lu, page, pc)
    # device-specific parameter: WP on the backup LUN; DPOFUA: DPO and FUA are accepted
    wp = (0x80 if lu.read_only else 0x00) | 0x10
    blocks = lu.capacity()
    bd = b""
    if not dbd:
        bd = struct.pack(">II", min(blocks, 0xFFFFFFFF), 512)
    if ten:
        alloc = _alloc(cdb, 7, 2)
        hdr = struct.pack(">HBBBBH", 6 + len(bd) + len(pages), 0, wp, 0, 0, len(bd))
    else:
        alloc = cdb[4]
        hdr = bytes((3 + len(bd) + len(pages), 0, wp, len(bd)))
    return _out(buf, hdr + bd + pages, alloc)


def start_stop_unit(core, lu, cdb, data_out, buf):
    # the medium cannot be stopped or ejected; a start is a no-op that succeeds
    if cdb[4] & 0x02 and not cdb[4] & 0x01:
        raise ScsiError(sense.ILLEGAL_REQUEST, 0x53, 0x02)    # medium removal prevented
    return None


def prevent_allow(core, lu, cdb, data_out, buf):
    # the medium is not removable (RMB=0): nothing to prevent
    return None


def _it(core):
    return pr.it_of(core.nexus)


def reserve(core, lu, cdb, data_out, buf):
    core.pr.reserve(lu, _it(core), cdb)


def release(core, lu, cdb, data_out, buf):
    core.pr.release(lu, _it(core), cdb)


def pr_in(core, lu, cdb, data_out, buf):
    return core.pr.pr_in(lu, _it(core), cdb, buf)


def pr_out(core, lu, cdb, data_out, buf):
    return core.pr.pr_out(lu, _it(core), cdb, data_out)


# REPORT SUPPORTED OPERATION CODES: (opcode, service action or -1, CDB usage data in hex; byte 0
# is the opcode, each following byte the bits of that CDB byte the device server looks at)
_USAGE = (
    (0x00, -1, "000000000000"),                              # TEST UNIT READY
    (0x03, -1, "03010000ff00"),                              # REQUEST SENSE
    (0x08, -1, "081fffffff00"),                              # READ(6)
    (0x0A, -1, "0a1fffffff00"),                              # WRITE(6)
    (0x12, -1, "1201ffffff00"),                              # INQUIRY
    (0x16, -1, "160000000000"),                              # RESERVE(6)
    (0x17, -1, "170000000000"),                              # RELEASE(6)
    (0x1A, -1, "1a08ffffff00"),                              # MODE SENSE(6)
    (0x1B, -1, "1b0000000300"),                              # START STOP UNIT
    (0x1E, -1, "1e0000000300"),                              # PREVENT ALLOW MEDIUM REMOVAL
    (0x20, -1, "2000ffffffffffffff00"),                      # direct commands (scsi/vendor.md)
    (0x25, -1, "25000000000000000000"),                      # READ CAPACITY(10)
    (0x28, -1, "2818ffffffff00ffff00"),                      # READ(10)
    (0x2A, -1, "2a18ffffffff00ffff00"),                      # WRITE(10)
    (0x2E, -1, "2e12ffffffff00ffff00"),                      # WRITE AND VERIFY(10)
    (0x2F, -1, "2f16ffffffff00ffff00"),                      # VERIFY(10)
    (0x34, -1, "3402ffffffff00ffff00"),                      # PRE-FETCH(10)
    (0x35, -1, "3500ffffffff00ffff00"),                      # SYNCHRONIZE CACHE(10)
    (0x37, -1, "37001f00000000ffff00"),                      # READ DEFECT DATA(10)
    (0x41, -1, "4108ffffffff00ffff00"),                      # WRITE SAME(10)
    (0x56, -1, "56000000000000000000"),                      # RESERVE(10)
    (0x57, -1, "57000000000000000000"),                      # RELEASE(10)
    (0x5A, -1, "5a08ffff000000ffff00"),                      # MODE SENSE(10)
    (0x5E, 0, "5e1f0000000000ffff00"),                       # PERSISTENT RESERVE IN
    (0x5E, 1, "5e1f0000000000ffff00"),
    (0x5E, 2, "5e1f0000000000ffff00"),
    (0x5E, 3, "5e1f0000000000ffff00"),
    (0x5F, 0, "5f1fff0000ffffffff00"),                       # PERSISTENT RESERVE OUT
    (0x5F, 1, "5f1fff0000ffffffff00"),
    (0x5F, 2, "5f1fff0000ffffffff00"),
    (0x5F, 3, "5f1fff0000ffffffff00"),
    (0x5F, 4, "5f1fff0000ffffffff00"),
    (0x5F, 5, "5f1fff0000ffffffff00"),
    (0x5F, 6, "5f1fff0000ffffffff00"),
    (0x88, -1, "8818ffffffffffffffffffffffff0000"),          # READ(16)
    (0x89, -1, "8918ffffffffffffffff000000ff0000"),          # COMPARE AND WRITE
    (0x8A, -1, "8a18ffffffffffffffffffffffff0000"),          # WRITE(16)
    (0x8B, -1, "8b18ffffffffffffffffffffffff0000"),          # ORWRITE(16)
    (0x8E, -1, "8e12ffffffffffffffffffffffff0000"),          # WRITE AND VERIFY(16)
    (0x8F, -1, "8f16ffffffffffffffffffffffff0000"),          # VERIFY(16)
    (0x90, -1, "9002ffffffffffffffffffffffff0000"),          # PRE-FETCH(16)
    (0x91, -1, "9100ffffffffffffffffffffffff0000"),          # SYNCHRONIZE CACHE(16)
    (0x93, -1, "9309ffffffffffffffffffffffff0000"),          # WRITE SAME(16)
    (0x9E, 0x10, "9e1f0000000000000000ffffffff0000"),        # READ CAPACITY(16)
    (0x9E, 0x12, "9e1fffffffffffffffffffffffff0000"),        # GET LBA STATUS
    (0xA0, -1, "a000ff000000ffffffff0000"),                  # REPORT LUNS
    (0xA3, 0x0C, "a31f87ffffffffffffff0000"),                # REPORT SUPPORTED OPERATION CODES
    (0xA8, -1, "a818ffffffffffffffff0000"),                  # READ(12)
    (0xAA, -1, "aa18ffffffffffffffff0000"),                  # WRITE(12)
    (0xAE, -1, "ae12ffffffffffffffff0000"),                  # WRITE AND VERIFY(12)
    (0xAF, -1, "af16ffffffffffffffff0000"),                  # VERIFY(12)
    (0xB7, -1, "b71f00000000ffffffff0000"),                  # READ DEFECT DATA(12)
)
_TIMEOUTS = b"\x00\x0a\x00\x00\x00\x00\x00\x00\x00\x00\x00\x1e"   # nominal: unspecified, 30 s recommended


def report_tpgs(core, lu, cdb, buf):
    # REPORT TARGET PORT GROUPS of a pair: one group per controller, its two host ports, and the
    # state of this logical unit through it (scsi/README.md "ALUA")
    if core.alua is None or lu is None:
        raise sense.invalid_field(1)
    ext = cdb[1] >> 5
    if ext > 1:
        raise sense.invalid_field(1)
    alloc = (cdb[6] << 24) | (cdb[7] << 16) | (cdb[8] << 8) | cdb[9]
    d = bytearray(8 if ext else 4)
    if ext:
        d[4] = 0x10            # format: extended header
        d[5] = 1               # implicit transition time: 1 s
    for home in (0, 1):
        g = bytearray(8 + 8)
        g[0] = core.alua(lu, home) | (0x80 if core.alua(lu, home) == 0 else 0)   # PREF on the owner
        g[1] = 0x87            # T_SUP, S_SUP, AN_SUP, AO_SUP
        struct.pack_into(">H", g, 2, home + 1)
        g[7] = 2               # two target ports
        struct.pack_into(">H", g, 10, 2 * home + 1)
        struct.pack_into(">H", g, 14, 2 * home + 2)
        d += g
    struct.pack_into(">I", d, 0, len(d) - 4)
    return _out(buf, d, alloc)


def maintenance_in(core, lu, cdb, data_out, buf):
    if cdb[1] & 0x1F == 0x0A:
        return report_tpgs(core, lu, cdb, buf)
    if cdb[1] & 0x1F != 0x0C:
        raise sense.invalid_field(1)
    rctd = cdb[2] & 0x80
    opt = cdb[2] & 0x07
    op, sa = cdb[3], (cdb[4] << 8) | cdb[5]
    alloc = (cdb[6] << 24) | (cdb[7] << 16) | (cdb[8] << 8) | cdb[9]
    if cdb[2] & 0x78 or opt > 3:
        raise sense.invalid_field(2)
    if opt == 0:                           # all commands
        d = bytearray(4)
        for o, s, usage in _USAGE:
            e = bytearray(8)
            e[0] = o
            struct.pack_into(">H", e, 2, max(s, 0))
            e[5] = (0x02 if rctd else 0) | (0x01 if s >= 0 else 0)
            struct.pack_into(">H", e, 6, len(usage) // 2)
            d += e
            if rctd:
                d += _TIMEOUTS
        struct.pack_into(">I", d, 0, len(d) - 4)
        return _out(buf, d, alloc)
    has_sa = any(o == op and s >= 0 for o, s, _ in _USAGE)
    if opt == 1 and has_sa or opt == 2 and not has_sa:
        raise sense.invalid_field(2)
    want = sa if has_sa else -1
    usage = None
    for o, s, u in _USAGE:
        if o == op and s == want:
            usage = binascii.unhexlify(u)
    d = bytearray(4)
    if usage is None:
        d[1] = 0x01                        # not supported
    else:
        d[1] = (0x80 if rctd else 0) | 0x03   # supported as the standard says
        struct.pack_into(">H", d, 2, len(usage))
        d += usage
        if rctd:
            d += _TIMEOUTS
    return _out(buf, d, alloc)


HANDLERS = {
    0x12: inquiry,
    0x00: test_unit_ready,
    0x03: request_sense,
    0xA0: report_luns,
    0x1A: mode_sense6,
    0x5A: mode_sense10,
    0x1B: start_stop_unit,
    0x1E: prevent_allow,
    0x16: reserve, 0x56: reserve,
    0x17: release, 0x57: release,
    0x5E: pr_in, 0x5F: pr_out,
    0xA3: maintenance_in,
}
