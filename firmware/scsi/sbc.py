# Block commands (SBC-3) on 512-byte blocks, on a logical unit (scsi/lu.py) that reads and
# writes: a normal LU its system drive (every write through the snapshot engine's copy-on-write),
# the backup LU the snapshot image (it refuses writes). No protection information
# (RD/WR/VRPROTECT must be 0), DPO and FUA accepted (DPOFUA=1 in MODE SENSE; FUA makes a
# write-back drive destage), fully provisioned (LBPME=0: no UNMAP; WRITE SAME with the UNMAP or
# ANCHOR bit is refused).
# Handlers take (core, lu, cdb, data_out, buf) and return data-in (a slice of buf) or None.
import struct
import micropython
from micropython import const
from scsi import sense
from hw import xor
from scsi.sense import ScsiError

MAX_XFER_BLOCKS = const(2048)      # 1 MiB per command (VPD B0 MAXIMUM TRANSFER LENGTH)
MAX_WRITE_SAME = const(65536)      # blocks per WRITE SAME (VPD B0 MAXIMUM WRITE SAME LENGTH)
MAX_CAW = const(255)               # blocks per COMPARE AND WRITE (VPD B0; the CDB field is 1 byte)


def _lba10(cdb):
    return (cdb[2] << 24) | (cdb[3] << 16) | (cdb[4] << 8) | cdb[5]


def _lba16(cdb):
    return ((_lba10(cdb) << 32) | (cdb[6] << 24) | (cdb[7] << 16) | (cdb[8] << 8) | cdb[9])


def _len12(cdb):
    return (cdb[6] << 24) | (cdb[7] << 16) | (cdb[8] << 8) | cdb[9]


def _len16(cdb):
    return (cdb[10] << 24) | (cdb[11] << 16) | (cdb[12] << 8) | cdb[13]


def _range_of(cdb):
    # (lba, blocks) of a 10/12/16-byte READ/WRITE/VERIFY-style CDB
    op = cdb[0]
    return (_lba10(cdb) if op < 0x80 or op >= 0xA0 else _lba16(cdb)), _blocks_of(cdb)


def _blocks_of(cdb):
    # its transfer length alone (no tuple: the write path asks it for every command)
    op = cdb[0]
    if op < 0x80:
        return (cdb[7] << 8) | cdb[8]
    if op >= 0xA0:
        return _len12(cdb)
    return _len16(cdb)


def data_out_len(cdb):
    # bytes of data-out the CDB implies (the transport collects that much)
    f = _OUT.get(cdb[0])
    return f(cdb) if f is not None else 0


def _out_blocks(cdb):
    return _blocks_of(cdb) << 9


def _out_write6(cdb):
    return (cdb[4] or 256) << 9


def _out_verify(cdb):
    # VERIFY sends data only with BYTCHK 01 (compare) or 11 (one block, compared with each)
    b = cdb[1] & 0x06
    if b == 0x02:
        return _blocks_of(cdb) << 9
    return 512 if b == 0x06 else 0


def _out_write_same(cdb):
    return 0 if cdb[0] == 0x93 and cdb[1] & 0x01 else 512      # NDOB: no data-out


def _out_caw(cdb):
    return cdb[13] << 10                                        # verify + write halves


def _out_param16(cdb):
    return (cdb[5] << 24) | (cdb[6] << 16) | (cdb[7] << 8) | cdb[8]


def _out_param10(cdb):
    return (cdb[7] << 8) | cdb[8]


def _out_param6(cdb):
    return cdb[4]


_OUT = {0x0A: _out_write6, 0x2A: _out_blocks, 0xAA: _out_blocks, 0x8A: _out_blocks,
        0x2E: _out_blocks, 0xAE: _out_blocks, 0x8E: _out_blocks, 0x8B: _out_blocks,
        0x2F: _out_verify, 0xAF: _out_verify, 0x8F: _out_verify,
        0x41: _out_write_same, 0x93: _out_write_same, 0x89: _out_caw,
        0x5F: _out_param16,                           # PERSISTENT RESERVE OUT
        0x15: _out_param6, 0x55: _out_param10}        # MODE SELECT 6/10


def _check(lu, lba, n, field):
    # (the LU is ready) the range inside the LU and the length within one transfer
    if lba + n > lu.capacity():
        raise sense.lba_out_of_range()
    if n > MAX_XFER_BLOCKS:
        raise sense.invalid_field(field)


def _writable(lu):
    lu.ready()                      # a backup LU without a snapshot is not ready before read-only
    if lu.read_only:
        raise sense.write_protected()


def _data(data_out, n):
    # the data-out of an n-block command: a transport may bring less than the CDB's length
    # (iSCSI EDTL below it): the whole blocks present are used; a partial block is refused
    nb = n << 9
    have = 0 if data_out is None else len(data_out)
    if have < nb:
        if have & 511:
            raise ScsiError(sense.ILLEGAL_REQUEST, 0x0E, 0x03)   # invalid field in information unit
        nb = have
    if nb == 0:
        return None
    if type(data_out) is not memoryview or len(data_out) != nb:
        data_out = memoryview(data_out)[:nb]
    return data_out


# ---- READ 6/10/12/16 ---------------------------------------------------------------------------
def read6(core, lu, cdb, data_out, buf):
    lba = ((cdb[1] & 0x1F) << 16) | (cdb[2] << 8) | cdb[3]
    return _read(core, lu, lba, cdb[4] or 256, buf, 4)            # 0 means 256 blocks in READ(6)


def read10(core, lu, cdb, data_out, buf):
    if cdb[1] & 0xE0:
        raise sense.invalid_field(1)        # RDPROTECT: no protection information
    return _read(core, lu, _lba10(cdb), (cdb[7] << 8) | cdb[8], buf, 7)


def read12(core, lu, cdb, data_out, buf):
    if cdb[1] & 0xE0:
        raise sense.invalid_field(1)
    return _read(core, lu, _lba10(cdb), _len12(cdb), buf, 6)


def read16(core, lu, cdb, data_out, buf):
    if cdb[1] & 0xE0:
        raise sense.invalid_field(1)
    return _read(core, lu, _lba16(cdb), _len16(cdb), buf, 10)


def _read(core, lu, lba, n, buf, field):
    lu.ready()
    _check(lu, lba, n, field)
    if n == 0:
        return None
    nb = n << 9
    if nb > len(buf):   # a transport's short buffer (core.execute): the core's own takes it
        buf = core.own
    mv = core.view(buf, nb)
    lu.read(lba, mv)
    return mv


# ---- WRITE 6/10/12/16 --------------------------------------------------------------------------
def write6(core, lu, cdb, data_out, buf):
    lba = ((cdb[1] & 0x1F) << 16) | (cdb[2] << 8) | cdb[3]
    return _write(lu, lba, cdb[4] or 256, data_out, False, 4)


def write10(core, lu, cdb, data_out, buf):
    if cdb[1] & 0xE0:
        raise sense.invalid_field(1)        # WRPROTECT
    return _write(lu, _lba10(cdb), (cdb[7] << 8) | cdb[8], data_out, cdb[1] & 0x08, 7)


def write12(core, lu, cdb, data_out, buf):
    if cdb[1] & 0xE0:
        raise sense.invalid_field(1)
    return _write(lu, _lba10(cdb), _len12(cdb), data_out, cdb[1] & 0x08, 6)


def write16(core, lu, cdb, data_out, buf):
    if cdb[1] & 0xE0:
        raise sense.invalid_field(1)
    return _write(lu, _lba16(cdb), _len16(cdb), data_out, cdb[1] & 0x08, 10)


def _write(lu, lba, n, data_out, fua, field):
    _writable(lu)
    _check(lu, lba, n, field)
    if n:
        d = _data(data_out, n)
        if d is not None:
            lu.write(lba, d, fua, True)
    return None


# ---- VERIFY, WRITE AND VERIFY, ORWRITE, COMPARE AND WRITE --------------------------------------
def verify(core, lu, cdb, data_out, buf):
    # BYTCHK 0: read the medium (a medium error surfaces); 1: compare with the data-out;
    # 3: compare every block with the single block sent
    if cdb[1] & 0xE0:
        raise sense.invalid_field(1)        # VRPROTECT
    lba, n = _range_of(cdb)
    bytchk = (cdb[1] >> 1) & 3
    if bytchk == 2:
        raise sense.invalid_field(1)
    lu.ready()
    _check(lu, lba, n, 7 if cdb[0] < 0x80 else 10 if cdb[0] < 0xA0 else 6)
    if n == 0:
        return None
    mv = buf[:n << 9]
    lu.read(lba, mv)
    if bytchk == 1:
        d = _data(data_out, n)
        if d is not None:
            _compare(mv, d)
    elif bytchk == 3:
        d = _data(data_out, 1)
        if d is not None:
            for i in range(n):
                _compare(mv[i << 9:(i + 1) << 9], d, i << 9)
    return None


def _compare(got, want, base=0):
    if got != want:
        i = 0
        while got[i:i + 512] == want[i:i + 512]:     # block by block, then byte by byte
            i += 512
        while got[i] == want[i]:
            i += 1
        # MISCOMPARE DURING VERIFY OPERATION; INFORMATION = offset of the first differing byte
        raise ScsiError(sense.MISCOMPARE, 0x1D, 0x00, base + i)


def write_verify(core, lu, cdb, data_out, buf):
    if cdb[1] & 0xE0:
        raise sense.invalid_field(1)
    lba, n = _range_of(cdb)
    bytchk = (cdb[1] >> 1) & 3
    if bytchk > 1:
        raise sense.invalid_field(1)
    _writable(lu)
    _check(lu, lba, n, 7 if cdb[0] < 0x80 else 10 if cdb[0] < 0xA0 else 6)
    d = _data(data_out, n) if n else None
    if d is None:
        return None
    lu.write(lba, d, True)
    mv = buf[:len(d)]
    lu.read(lba, mv)                # the verify: read back what is on the drive now
    _compare(mv, d)
    return None


@micropython.viper
def _or_into(dst: ptr32, src: ptr32, nbytes: int):
    i = 0
    n = nbytes >> 2
    while i < n:
        dst[i] |= src[i]
        i += 1


def orwrite(core, lu, cdb, data_out, buf):
    # ORWRITE(16): new = old | data-out, as one read-modify-write
    if cdb[1] & 0xE0:
        raise sense.invalid_field(1)
    lba, n = _lba16(cdb), _len16(cdb)
    _writable(lu)
    _check(lu, lba, n, 10)
    d = _data(data_out, n) if n else None
    if d is None:
        return None
    mv = buf[:len(d)]
    lu.read(lba, mv)
    _or_into(mv, d, len(d))
    lu.write(lba, mv, cdb[1] & 0x08)
    return None


def compare_and_write(core, lu, cdb, data_out, buf):
    # the first n blocks of data-out must equal the medium; then the second n blocks are written
    if cdb[1] & 0xE0:
        raise sense.invalid_field(1)
    lba, n = _lba16(cdb), cdb[13]
    if n > MAX_CAW or n == 0:
        # zero blocks would compare nothing: refused (SBC allows it as a no-op, but an initiator
        # sending 256 blocks finds its count truncated to 0 in this 1-byte field)
        raise sense.invalid_field(13)
    _writable(lu)
    _check(lu, lba, n, 13)
    if n == 0:
        return None
    if data_out is None or len(data_out) != n << 10:
        raise ScsiError(sense.ILLEGAL_REQUEST, 0x0E, 0x03)   # both halves are required
    d = memoryview(data_out)
    mv = buf[:n << 9]
    lu.read(lba, mv)
    _compare(mv, d[:n << 9])
    lu.write(lba, d[n << 9:], cdb[1] & 0x08)
    return None


# ---- WRITE SAME 10/16 --------------------------------------------------------------------------
def write_same(core, lu, cdb, data_out, buf):
    if cdb[1] & 0xF8:
        raise sense.invalid_field(1)        # WRPROTECT; ANCHOR, UNMAP: LBPME=0, nothing to unmap
    if cdb[0] == 0x41:
        lba, n = _lba10(cdb), (cdb[7] << 8) | cdb[8]
        field, ndob = 7, False
    else:
        lba, n = _lba16(cdb), _len16(cdb)
        field, ndob = 10, cdb[1] & 0x01
    _writable(lu)
    if lba + n > lu.capacity():
        raise sense.lba_out_of_range()
    if n == 0 or n > MAX_WRITE_SAME:
        raise sense.invalid_field(field)    # WSNZ=1: zero blocks is not "to the end"
    k = min(n, MAX_XFER_BLOCKS)
    if ndob:
        xor.zero(buf, k << 9)
    else:
        if data_out is None or len(data_out) < 512:
            raise ScsiError(sense.ILLEGAL_REQUEST, 0x0E, 0x03)
        buf[:512] = memoryview(data_out)[:512]
        have = 512
        while have < k << 9:                # replicate the block by doubling
            m = min(have, (k << 9) - have)
            buf[have:have + m] = buf[:m]
            have += m
    while n:
        m = min(n, k)
        lu.write(lba, buf[:m << 9], False)
        lba += m
        n -= m
    return None


# ---- PRE-FETCH, SYNCHRONIZE CACHE --------------------------------------------------------------
def prefetch(core, lu, cdb, data_out, buf):
    # nothing to stage ahead: the range is checked and GOOD returned (the data is as near as it gets)
    if cdb[1] & 0xFD:
        raise sense.invalid_field(1)        # only IMMED
    if cdb[0] == 0x34:
        lba, n = _lba10(cdb), (cdb[7] << 8) | cdb[8]
    else:
        lba, n = _lba16(cdb), _len16(cdb)
    lu.ready()
    if lba + n > lu.capacity():
        raise sense.lba_out_of_range()
    return None


def synchronize_cache(core, lu, cdb, data_out, buf):
    lu.ready()
    if cdb[0] == 0x35:
        lba, n = _lba10(cdb), (cdb[7] << 8) | cdb[8]
    else:
        lba, n = _lba16(cdb), _len16(cdb)
    if lba + n > lu.capacity():
        raise sense.lba_out_of_range()
    lu.flush()
    return None


# ---- READ CAPACITY, GET LBA STATUS, READ DEFECT DATA -------------------------------------------
def read_capacity10(core, lu, cdb, data_out, buf):
    lu.ready()
    blocks = lu.capacity()
    struct.pack_into(">II", buf, 0, min(blocks - 1, 0xFFFFFFFF), 512)
    return buf[:8]


def service_action_in(core, lu, cdb, data_out, buf):
    sa = cdb[1] & 0x1F
    if sa == 0x10:
        return _read_capacity16(core, lu, cdb, buf)
    if sa == 0x12:
        return _get_lba_status(core, lu, cdb, buf)
    raise sense.invalid_field(1)


def _read_capacity16(core, lu, cdb, buf):
    lu.ready()
    alloc = _len16(cdb)
    blocks = lu.capacity()
    n = min(alloc, 32)
    d = buf[:32]
    for i in range(32):
        d[i] = 0
    # one logical block per physical block, no protection, LBPME=0 (fully provisioned)
    struct.pack_into(">QI", d, 0, blocks - 1, 512)
    return buf[:n]


def _get_lba_status(core, lu, cdb, buf):
    # fully provisioned: one descriptor, every block from the LBA to the end mapped
    lu.ready()
    lba, alloc = _lba16(cdb), _len16(cdb)
    blocks = lu.capacity()
    if lba >= blocks:
        raise sense.lba_out_of_range()
    d = buf[:24]
    struct.pack_into(">IIQIBBBB", d, 0, 20, 0, lba, min(blocks - lba, 0xFFFFFFFF), 0, 0, 0, 0)
    return buf[:min(alloc, 24)]


def read_defect_data(core, lu, cdb, data_out, buf):
    # no grown or primary defects are kept: an empty list in the format asked for
    lu.ready()
    if cdb[0] == 0x37:
        req, alloc = cdb[2], (cdb[7] << 8) | cdb[8]
        d = buf[:4]
        d[0], d[1], d[2], d[3] = 0, req & 0x1F, 0, 0
        return buf[:min(alloc, 4)]
    req, alloc = cdb[1], _len12(cdb)
    d = buf[:8]
    for i in range(8):
        d[i] = 0
    d[1] = req & 0x1F
    return buf[:min(alloc, 8)]


HANDLERS = {
    0x08: read6, 0x28: read10, 0xA8: read12, 0x88: read16,
    0x0A: write6, 0x2A: write10, 0xAA: write12, 0x8A: write16,
    0x2F: verify, 0xAF: verify, 0x8F: verify,
    0x2E: write_verify, 0xAE: write_verify, 0x8E: write_verify,
    0x8B: orwrite, 0x89: compare_and_write,
    0x41: write_same, 0x93: write_same,
    0x34: prefetch, 0x90: prefetch,
    0x35: synchronize_cache, 0x91: synchronize_cache,
    0x25: read_capacity10, 0x9E: service_action_in,
    0x37: read_defect_data, 0xB7: read_defect_data,
}
