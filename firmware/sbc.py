# Block commands (SBC) on 512-byte blocks: READ/WRITE 6/10/16, READ CAPACITY 10/16,
# SYNCHRONIZE CACHE 10/16, VERIFY 10/16. The logical unit decides where blocks come from: a normal
# LUN reads and writes its system drive (through the snapshot engine's write hook); the backup LUN
# reads the snapshot image and refuses writes.
import struct
import sense
from sense import ScsiError


def _rw6(cdb):
    lba = ((cdb[1] & 0x1F) << 16) | (cdb[2] << 8) | cdb[3]
    return lba, cdb[4] or 256          # a length of 0 means 256 blocks in the 6-byte CDBs


def _rw10(cdb):
    return int.from_bytes(cdb[2:6], "big"), int.from_bytes(cdb[7:9], "big")


def _rw16(cdb):
    return int.from_bytes(cdb[2:10], "big"), int.from_bytes(cdb[10:14], "big")


_RANGE = {0x08: _rw6, 0x0A: _rw6, 0x28: _rw10, 0x2A: _rw10, 0x2F: _rw10,
          0x88: _rw16, 0x8A: _rw16, 0x8F: _rw16}


def data_out_len(cdb):
    op = cdb[0]
    if op in (0x0A, 0x2A, 0x8A):
        return _RANGE[op](cdb)[1] * 512
    if op in (0x2F, 0x8F) and cdb[1] & 0x06 == 0x02:     # VERIFY with BYTCHK=1
        return _RANGE[op](cdb)[1] * 512
    return 0


def _check_range(core, lu, cdb, lba, n):
    from scsi import MAX_XFER_BLOCKS
    if lba + n > core.ctl.geometry(lu):
        raise ScsiError(sense.ILLEGAL_REQUEST, 0x21, 0x00)
    if n > MAX_XFER_BLOCKS:
        raise sense.invalid_field(7 if cdb[0] < 0x80 else 10)


def read(core, lu, cdb, data_out, buf):
    lba, n = _RANGE[cdb[0]](cdb)
    core.ctl.check_ready(lu)
    _check_range(core, lu, cdb, lba, n)
    if n == 0:
        return None
    mv = buf[:n << 9]
    core.ctl.read_blocks(lu, lba, mv)
    return mv


def write(core, lu, cdb, data_out, buf):
    lba, n = _RANGE[cdb[0]](cdb)
    core.ctl.check_ready(lu)
    if lu.kind == 1:
        raise ScsiError(sense.DATA_PROTECT, 0x27, 0x00)   # the backup LUN is read-only
    _check_range(core, lu, cdb, lba, n)
    if n == 0:
        return None
    if data_out is None or len(data_out) < n << 9:
        # the transport delivered less data than the CDB asks for
        raise ScsiError(sense.ILLEGAL_REQUEST, 0x26, 0x00)   # invalid field in parameter list
    fua = cdb[0] != 0x0A and cdb[1] & 0x08
    core.ctl.write_blocks(lu, lba, memoryview(data_out)[:n << 9], fua)
    return None


def verify(core, lu, cdb, data_out, buf):
    lba, n = _RANGE[cdb[0]](cdb)
    bytchk = (cdb[1] >> 1) & 3
    if bytchk not in (0, 1):
        raise sense.invalid_field(1)
    core.ctl.check_ready(lu)
    _check_range(core, lu, cdb, lba, n)
    if n == 0:
        return None
    mv = buf[:n << 9]
    core.ctl.read_blocks(lu, lba, mv)         # a medium error surfaces here
    if bytchk:
        if data_out is None or len(data_out) < n << 9:
            raise ScsiError(sense.ILLEGAL_REQUEST, 0x26, 0x00)
        if mv != memoryview(data_out)[:n << 9]:
            raise ScsiError(0x0E, 0x1D, 0x00)           # MISCOMPARE during verify
    return None


def read_capacity10(core, lu, cdb, data_out, buf):
    core.ctl.check_ready(lu)
    blocks = core.ctl.geometry(lu)
    d = struct.pack(">II", min(blocks - 1, 0xFFFFFFFF), 512)
    buf[:8] = d
    return buf[:8]


def service_action_in(core, lu, cdb, data_out, buf):
    if cdb[1] & 0x1F != 0x10:                  # READ CAPACITY 16 is the only service action
        raise sense.invalid_field(1)
    core.ctl.check_ready(lu)
    alloc = int.from_bytes(cdb[10:14], "big")
    blocks = core.ctl.geometry(lu)
    d = bytearray(32)
    struct.pack_into(">QI", d, 0, blocks - 1, 512)
    d[13] = 0                                   # one logical block per physical block
    n = min(alloc, 32)
    buf[:n] = d[:n]
    return buf[:n]


def synchronize_cache(core, lu, cdb, data_out, buf):
    core.ctl.check_ready(lu)
    if cdb[0] == 0x35:
        lba, n = int.from_bytes(cdb[2:6], "big"), int.from_bytes(cdb[7:9], "big")
    else:
        lba, n = int.from_bytes(cdb[2:10], "big"), int.from_bytes(cdb[10:14], "big")
    if lba + n > core.ctl.geometry(lu):
        raise ScsiError(sense.ILLEGAL_REQUEST, 0x21, 0x00)
    core.ctl.flush(lu)
    return None


HANDLERS = {
    0x08: read, 0x28: read, 0x88: read,
    0x0A: write, 0x2A: write, 0x8A: write,
    0x2F: verify, 0x8F: verify,
    0x25: read_capacity10,
    0x9E: service_action_in,
    0x35: synchronize_cache, 0x91: synchronize_cache,
}
