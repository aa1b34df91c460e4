# Primary commands (SPC): INQUIRY with VPD pages, TEST UNIT READY, REQUEST SENSE, REPORT LUNS,
# MODE SENSE 6/10. Handlers take (core, lu, cdb, data_out, buf) and return data-in.
import struct
import sense
from sense import ScsiError

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
        d[7] = 0x02                # CmdQue
        d[8:16] = VENDOR
        product = core.ctl.board["model"] + (" BACKUP" if lu is not None and lu.kind else "")
        d[16:32] = (product.encode() + b" " * 16)[:16]
        d[32:36] = REVISION
        d[36:44] = core.ctl.serial(lu)[:8] if lu is not None else b" " * 8
        d[58:60] = b"\x04\x60"     # version descriptors: SBC-3, SPC-4
        d[60:62] = b"\x00\xA0"
        return _out(buf, d, alloc)
    if lu is None:
        raise sense.lun_not_supported()
    if page == 0x00:
        d = bytes((pq, 0x00, 0, len(VPD_PAGES))) + bytes(VPD_PAGES)
    elif page == 0x80:
        sn = core.ctl.serial(lu)
        d = bytes((pq, 0x80, 0, len(sn))) + sn
    elif page == 0x83:
        naa = core.ctl.naa(lu)                    # NAA 6, 16 bytes, stable per logical unit
        tpg = struct.pack(">BBBBI", 0x01, 0x14, 0, 4, lu.port + 1)   # relative target port
        desc = bytes((0x01, 0x03, 0x00, 16)) + naa + tpg
        d = bytes((pq, 0x83)) + struct.pack(">H", len(desc)) + desc
    elif page == 0xB0:
        from scsi import MAX_XFER_BLOCKS
        opt = core.ctl.optimal_blocks(lu)
        d = bytearray(64)
        d[0], d[1], d[3] = pq, 0xB0, 60
        struct.pack_into(">HII", d, 6, opt, MAX_XFER_BLOCKS, opt)
        return _out(buf, d, alloc)
    elif page == 0xB1:
        d = bytearray(64)
        d[0], d[1], d[3] = pq, 0xB1, 60     # rotation rate and form factor: not reported
        return _out(buf, d, alloc)
    else:
        raise sense.invalid_field(2)
    return _out(buf, d, alloc)


def test_unit_ready(core, lu, cdb, data_out, buf):
    core.ctl.check_ready(lu)


def request_sense(core, lu, cdb, data_out, buf):
    if cdb[1] & 0x01:
        raise sense.invalid_field(1)     # descriptor format sense is not supported
    alloc = cdb[4]
    if lu is None:
        d = sense.fixed(sense.ILLEGAL_REQUEST, 0x25, 0x00)
    else:
        try:
            core.ctl.check_ready(lu)
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
    luns = core.ctl.luns_for(lu) if sel != 1 else []
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
        if pc != 1 and core.ctl.write_back(lu):
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
    wp = 0x80 if lu.kind == 1 else 0x00          # the backup LUN is write protected
    blocks = core.ctl.geometry(lu)
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
    return None


HANDLERS = {
    0x12: inquiry,
    0x00: test_unit_ready,
    0x03: request_sense,
    0xA0: report_luns,
    0x1A: mode_sense6,
    0x5A: mode_sense10,
    0x1B: start_stop_unit,
    0x1E: prevent_allow,
}
