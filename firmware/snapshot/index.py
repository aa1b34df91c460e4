# The exception index of a snapshot: which primary chunks were copied to the log, and to which log
# slot. In RAM an open-addressing table (ExceptionIndex); on the log one 16-byte record per slot,
# 32 to a block, in slot order (see snapshot/README.md), packed and checked here.
import array
import binascii
import struct
import micropython
from micropython import const
from hw.xor import zero

LOAD_PCT = const(80)       # hash table fill at a full log
MAX_SLOTS = const(0xFFFFFE)  # a table cell holds slot + 1 in 24 bits
RUN_SHIFT = const(25)      # find_run's answer: run end << RUN_SHIFT | (first chunk's slot + 1) ...
RUN_SLOT = const(0x1FFFFFF)  # ... in the low bits (0: the run is not copied)
REC = "<IIII"              # snapshot id, chunk, slot, CRC32 of the first 12 bytes
REC_LEN = const(16)
RECS_PER_BLOCK = const(32)


@micropython.viper
def _probe(table: ptr8, keys: ptr32, cap: int, key: int) -> int:
    # linear probing over `table` (slot+1 per 3-byte cell, 0 = empty); keys[slot] is the chunk it
    # holds. Returns the slot holding `key`, or -1 - (empty cell where it would go).
    i = (((key * 0x9E3779B1) & 0xFFFFFFFF) * cap) >> 32
    while True:
        j = i * 3
        v = int(table[j]) | (int(table[j + 1]) << 8) | (int(table[j + 2]) << 16)
        if v == 0:
            return -1 - i
        if int(keys[v - 1]) == key:
            return v - 1
        i += 1
        if i == cap:
            i = 0


@micropython.viper
def find_run(table: ptr8, keys: ptr32, cap: int, c: int, last: int) -> int:
    # the run of chunks from c (up to last) that lie in one place: all without an exception, or
    # all in consecutive log slots from c's slot on. -> end (exclusive) << RUN_SHIFT | c's slot + 1.
    # The write and backup read paths call it on the index's arrays directly: ExceptionIndex.run
    # answers a tuple, which a per-command path cannot afford to allocate.
    slot0 = -2
    x = c
    while x <= last:
        i = (((x * 0x9E3779B1) & 0xFFFFFFFF) * cap) >> 32
        slot = -1
        while True:
            j = i * 3
            v = int(table[j]) | (int(table[j + 1]) << 8) | (int(table[j + 2]) << 16)
            if v == 0:
                break
            if int(keys[v - 1]) == x:
                slot = v - 1
                break
            i += 1
            if i == cap:
                i = 0
        if x == c:
            slot0 = slot
        elif (slot0 < 0 and slot >= 0) or (slot0 >= 0 and slot != slot0 + (x - c)):
            return (x << RUN_SHIFT) | (slot0 + 1)
        x += 1
    return (x << RUN_SHIFT) | (slot0 + 1)


@micropython.viper
def _put(table: ptr8, i: int, v: int):
    j = i * 3
    table[j] = v & 0xFF
    table[j + 1] = (v >> 8) & 0xFF
    table[j + 2] = (v >> 16) & 0xFF


@micropython.viper
def _insert_run(table: ptr8, keys: ptr32, cap: int, c: int, slot: int, k: int):
    # chunks c..c+k-1 (none of them in the index yet) -> slots slot..slot+k-1
    for x in range(k):
        key = c + x
        i = (((key * 0x9E3779B1) & 0xFFFFFFFF) * cap) >> 32
        while True:
            j = i * 3
            if (int(table[j]) | int(table[j + 1]) | int(table[j + 2])) == 0:
                break
            i += 1
            if i == cap:
                i = 0
        keys[slot + x] = key
        v = slot + x + 1
        table[j] = v & 0xFF
        table[j + 1] = (v >> 8) & 0xFF
        table[j + 2] = (v >> 16) & 0xFF


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
    # primary chunk -> log slot in 4 + 3/0.8 = 7.75 bytes of RAM per exception at a full log: a
    # dense slot->chunk array plus an open-addressing table of 3-byte slot numbers (O(1) average;
    # linear probing at most 80 % full keeps a miss, the common case on the write path, short)
    def __init__(self, max_slots):
        if max_slots > MAX_SLOTS:
            raise ValueError("index of %d slots: at most %d" % (max_slots, MAX_SLOTS))
        self.max_slots = max_slots
        self.cap = (max_slots * 100 // LOAD_PCT + 16) & ~15     # whole 16-byte groups for xor.zero
        self.keys = array.array("I", bytes(4 * max_slots))
        self.table = bytearray(3 * self.cap)
        self.count = 0

    def clear(self):
        zero(self.table, len(self.table))
        self.count = 0

    def find(self, chunk):
        r = _probe(self.table, self.keys, self.cap, chunk)
        return r if r >= 0 else -1

    def run(self, c, last):
        # (end of the run of chunks from c that lie in one place, c's slot or -1); see find_run
        r = find_run(self.table, self.keys, self.cap, c, last)
        return r >> RUN_SHIFT, (r & RUN_SLOT) - 1

    def insert_run(self, c, slot, k):
        # a run just copied: its chunks had no exception (the write path looked them up)
        _insert_run(self.table, self.keys, self.cap, c, slot, k)
        self.count += k

    def insert(self, chunk, slot):
        r = _probe(self.table, self.keys, self.cap, chunk)
        if r >= 0:
            return
        self.keys[slot] = chunk
        _put(self.table, -1 - r, slot + 1)
        self.count += 1
