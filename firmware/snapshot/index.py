# The exception index of a snapshot: which primary chunks were copied to the log, and to which log
# slot. In RAM an open-addressing table (ExceptionIndex); on the log one 16-byte record per slot,
# 32 to a block, in slot order (see snapshot/README.md), packed and checked here.
import array
import binascii
import struct
import micropython
from micropython import const
from hw.xor import zero

LOAD_PCT = const(90)       # table fill at a full log
MAX_SLOTS = const(0xFFFFFE)  # the most slots a log indexes (slot + 1 in at most 24 bits of a cell)
RUN_SHIFT = const(25)      # find_run's answer: run end << RUN_SHIFT | (first chunk's slot + 1) ...
RUN_SLOT = const(0x1FFFFFF)  # ... in the low bits (0: the run is not copied)
REC = "<IIII"              # snapshot id, chunk, slot, CRC32 of the first 12 bytes
REC_LEN = const(16)
RECS_PER_BLOCK = const(32)
WAYS = const(4)            # cells per bucket
MAX_KICKS = const(500)     # cells an insert may move before its last homeless entry goes to the stash
STASH = const(32)          # entries no bucket could take
M1 = const(0x1E3779B1)     # the two hashes: odd multipliers, each a bijection of the key space
M2 = const(0x2C1B3C6D)
# the parameter words (ExceptionIndex.p) the viper functions read: buckets, key mask, multipliers
# and their inverses, slot bits, stash fill, the victim rotor; the stash's (chunk, slot) from P_STASH
P_NB = const(0)
P_MASK = const(1)
P_M1 = const(2)
P_M2 = const(3)
P_I1 = const(4)
P_I2 = const(5)
P_S = const(6)
P_N = const(7)
P_ROTOR = const(8)
P_STASH = const(16)


@micropython.viper
def _find(cells: ptr32, p: ptr32, x: int) -> int:
    # the slot of chunk x, or -1: its cell in one of its two buckets, else the stash
    nb = int(p[P_NB])
    mask = int(p[P_MASK])
    sb = int(p[P_S])
    h = (x * int(p[P_M1])) & mask
    j = (h % nb) * WAYS
    tag = (h // nb) << 1
    for w in range(WAYS):
        v = int(cells[j + w])
        if v != 0 and (v >> sb) == tag:
            return (v & ((1 << sb) - 1)) - 1
    h = (x * int(p[P_M2])) & mask
    j = (h % nb) * WAYS
    tag = ((h // nb) << 1) | 1
    for w in range(WAYS):
        v = int(cells[j + w])
        if v != 0 and (v >> sb) == tag:
            return (v & ((1 << sb) - 1)) - 1
    for i in range(int(p[P_N])):
        if int(p[P_STASH + 2 * i]) == x:
            return int(p[P_STASH + 2 * i + 1])
    return -1


@micropython.viper
def find_run(cells: ptr32, p: ptr32, c: int, last: int) -> int:
    # the run of chunks from c (up to last) that lie in one place: all without an exception, or
    # all in consecutive log slots from c's slot on. -> end (exclusive) << RUN_SHIFT | c's slot + 1.
    # The write and backup read paths call it on the index's arrays directly: ExceptionIndex.run
    # answers a tuple, which a per-command path cannot afford to allocate.
    slot0 = -2
    x = c
    while x <= last:
        slot = int(_find(cells, p, x))
        if x == c:
            slot0 = slot
        elif (slot0 < 0 and slot >= 0) or (slot0 >= 0 and slot != slot0 + (x - c)):
            return (x << RUN_SHIFT) | (slot0 + 1)
        x += 1
    return (x << RUN_SHIFT) | (slot0 + 1)


@micropython.viper
def _insert(cells: ptr32, p: ptr32, x: int, slot: int) -> int:
    # chunk x (not in the index) -> slot: into a free cell of one of its buckets, else by moving
    # cells to their other bucket (at most MAX_KICKS), the last one moved into the stash. 0 when
    # the stash is full (checked first: then nothing was moved)
    nb = int(p[P_NB])
    mask = int(p[P_MASK])
    sb = int(p[P_S])
    which = 0
    while which < 2:
        h = (x * int(p[P_M1 + which])) & mask
        j = (h % nb) * WAYS
        for w in range(WAYS):
            if int(cells[j + w]) == 0:
                cells[j + w] = (slot + 1) | (((h // nb) << 1 | which) << sb)
                return 1
        which += 1
    n = int(p[P_N])
    if n >= STASH:
        return 0
    which = 0
    for _ in range(MAX_KICKS):
        h = (x * int(p[P_M1 + which])) & mask
        b = h % nb
        j = b * WAYS
        for w in range(WAYS):
            if int(cells[j + w]) == 0:
                cells[j + w] = (slot + 1) | (((h // nb) << 1 | which) << sb)
                return 1
        r = int(p[P_ROTOR])
        p[P_ROTOR] = (r + 1) & (WAYS - 1)
        v = int(cells[j + r])
        cells[j + r] = (slot + 1) | (((h // nb) << 1 | which) << sb)
        # the moved entry: its chunk from its bucket and quotient, then its other bucket
        slot = (v & ((1 << sb) - 1)) - 1
        t = v >> sb
        vw = t & 1
        x = (((t >> 1) * nb + b) * int(p[P_I1 + vw])) & mask
        which = 1 - vw
    p[P_STASH + 2 * n] = x
    p[P_STASH + 2 * n + 1] = slot
    p[P_N] = n + 1
    return 1


@micropython.viper
def _next_used(cells: ptr32, i: int, end: int) -> int:
    # the first cell from i on that holds an entry, or end
    while i < end and int(cells[i]) == 0:
        i += 1
    return i


def _inverse(m, mask):
    # m^-1 modulo mask + 1 (a power of two), by Newton's iteration
    inv = m
    for _ in range(6):
        inv = (inv * (2 - m * inv)) & mask
    return inv


def _crc_table():
    t = array.array("I", bytes(1024))
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
        t[n] = c
    return t


_CRC = _crc_table()


@micropython.viper
def _pack_records(r: ptr8, crc: ptr32, sid: int, c: int, slot: int, k: int):
    # the index records of slots slot..slot+k-1 (one record block) into r, each with the CRC32
    # of its first 12 bytes (binascii.crc32's, checked that way at boot)
    for x in range(k):
        off = ((slot + x) & 31) << 4
        for j in range(4):
            sh = j << 3
            r[off + j] = (sid >> sh) & 0xFF
            r[off + 4 + j] = ((c + x) >> sh) & 0xFF
            r[off + 8 + j] = ((slot + x) >> sh) & 0xFF
        v = 0xFFFFFFFF
        for j in range(12):
            v = int(crc[(v ^ int(r[off + j])) & 0xFF]) ^ (v >> 8)
        v ^= 0xFFFFFFFF
        for j in range(4):
            r[off + 12 + j] = (v >> (j << 3)) & 0xFF


def pack_records(block, sid, c, slot, k):
    # chunks c..c+k-1 copied to slots slot..slot+k-1 of snapshot `sid`, into their record block
    _pack_records(block, _CRC, sid, c, slot, k)


def record_chunk(buf, off, sid, slot):
    # the chunk of the record at buf[off:] if it is slot `slot`'s record of snapshot `sid`, else -1
    s, chunk, n, crc = struct.unpack_from(REC, buf, off)
    if s != sid or n != slot or crc != binascii.crc32(memoryview(buf)[off:off + 12]):
        return -1
    return chunk


class ExceptionIndex:
    # primary chunk -> log slot: a bucketed cuckoo hash table (two buckets of 4 cells per chunk,
    # filled to at most 90 %) of 32-bit cells, each holding slot + 1, which of the two hashes
    # placed it, and the quotient of that hash by the bucket count: with the bucket it sits in,
    # the quotient gives the chunk back, so no key is stored. 16 bytes a bucket / (4 x 0.9) =
    # 4.44 bytes per exception at a full log, whatever the order of the first writes, and a lookup
    # (hit or miss) reads two buckets and the stash: O(1) in the worst case (snapshot/README.md)
    def __init__(self, max_slots):
        if not 0 <= max_slots <= MAX_SLOTS:
            raise ValueError("index of %d slots: at most %d" % (max_slots, MAX_SLOTS))
        self.max_slots = max_slots
        nb = max(2, (max_slots * 100 + WAYS * LOAD_PCT - 1) // (WAYS * LOAD_PCT))
        sb = 0
        while max_slots >> sb:
            sb += 1
        # chunk numbers below 2^bits: a quotient (< 2^bits / nb) fits the cell's 31 - sb high bits
        bits = 1
        while bits < 32 and ((1 << (bits + 1)) - 1) // nb < 1 << (31 - sb - 1):
            bits += 1
        mask = (1 << bits) - 1
        self.max_chunks = 1 << bits
        self.cells = bytearray(4 * WAYS * nb)
        self.p = array.array("I", bytes(4 * (P_STASH + 2 * STASH)))
        for i, v in ((P_NB, nb), (P_MASK, mask), (P_M1, M1 & mask), (P_M2, M2 & mask),
                     (P_I1, _inverse(M1 & mask, mask)), (P_I2, _inverse(M2 & mask, mask)), (P_S, sb)):
            self.p[i] = v
        self.count = 0

    @staticmethod
    def slots_for(budget):
        # the most slots an index of `budget` bytes holds
        return max(0, min(MAX_SLOTS, (budget - 4 * (P_STASH + 2 * STASH)) * LOAD_PCT // (100 * 4)))

    def clear(self):
        zero(self.cells, len(self.cells))
        self.p[P_N] = 0
        self.count = 0

    def find(self, chunk):
        return _find(self.cells, self.p, chunk)

    def run(self, c, last):
        # (end of the run of chunks from c that lie in one place, c's slot or -1); see find_run
        r = find_run(self.cells, self.p, c, last)
        return r >> RUN_SHIFT, (r & RUN_SLOT) - 1

    def insert_run(self, c, slot, k):
        # a run just copied (its chunks had no exception: the write path looked them up). False
        # when the index is full (the stash too) or a chunk is past max_chunks: the caller ends
        # the snapshot, since a chunk left out would read new data on the backup LUN
        if c < 0 or c + k > self.max_chunks or slot + k > self.max_slots:
            return False
        cells, p = self.cells, self.p
        for x in range(k):
            if not _insert(cells, p, c + x, slot + x):
                return False
            self.count += 1
        return True

    def insert(self, chunk, slot):
        # one exception (at boot, from the log's records); one already there keeps its slot
        if 0 <= chunk < self.max_chunks and _find(self.cells, self.p, chunk) >= 0:
            return True
        return self.insert_run(chunk, slot, 1)

    def chunks(self):
        # every chunk in the index, in no particular order
        cells, p = self.cells, self.p
        nb, mask, sb = p[P_NB], p[P_MASK], p[P_S]
        end = WAYS * nb
        i = _next_used(cells, 0, end)
        while i < end:
            t = struct.unpack_from("<I", cells, 4 * i)[0] >> sb
            yield (((t >> 1) * nb + i // WAYS) * p[P_I1 + (t & 1)]) & mask
            i = _next_used(cells, i + 1, end)
        for i in range(p[P_N]):
            yield p[P_STASH + 2 * i]
