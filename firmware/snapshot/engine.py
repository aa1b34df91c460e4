# Snapshot engine (FIG. 5/6): one backup pair at a time (claim 14). During a snapshot the first write
# to each chunk of the primary copies the chunk's old data to the log system drive; the backup LUN
# reads a chunk from the log when it was copied, else from the primary.
#
# Log drive layout (blocks of 512 bytes; see snapshot/README.md):
#   block 0          header: magic, state, primary, chunk size, generation, snapshot id, CRC
#   blocks 8 ..      index records, 32 a block: (snapshot id, primary chunk, slot, CRC), slot order
#   data area ..     slot i: C blocks of old data at DATA + i*C (4 KiB aligned, contiguous)
# Ordering (the emulator's battery-backed-buffer promise, see snapshot/README.md): the old data of a run of
# chunks goes to the log, then their index records, then the primary is overwritten. A kill before
# the records land leaves the chunks unrecorded while the primary still holds them. Slots fill in
# order, so the index is rebuilt at boot by reading records until the first one that is not valid.
import struct
import binascii
import os
import array
import micropython
from micropython import const
from hw.xor import zero

IDLE = const(0)
ACTIVE = const(1)
OVERFLOWED = const(2)      # terminated by overflow; the backup LUN has not yet reported it
STATE_NAMES = ("IDLE", "ACTIVE", "OVERFLOWED")

HDR_MAGIC = b"RBSNAPv1"
HDR = "<8sIIIII"           # magic, state, primary sd, chunk blocks, generation, snapshot id
HDR_BLOCKS = const(8)      # the index records start at 4 KiB
REC = "<IIII"              # snapshot id, chunk, slot, CRC32 of the first 12 bytes
REC_LEN = const(16)
RECS_PER_BLOCK = const(32)
READ_RECS = const(64)      # record blocks read at a time when rebuilding the index
DEFAULT_CHUNK_KB = const(64)
MAX_RUN_KB = const(1024)   # neighbouring chunks copied with one read and one log write (buffer span)
MAX_CHUNK_KB = const(256)
CHUNK_KB_CHOICES = (4, 8, 16, 32, 64, 128, 256)
LOAD_PCT = const(80)       # hash table fill at a full log
MAX_SLOTS = const(0xFFFFFE)  # a table cell holds slot + 1 in 24 bits
RUN_SHIFT = const(25)      # _run's answer: run end << RUN_SHIFT | (first chunk's slot + 1) ...
RUN_SLOT = const(0x1FFFFFF)  # ... in the low bits (0: the run is not copied)
USAGE_EVENTS = (75, 90, 98)


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
def _run(table: ptr8, keys: ptr32, cap: int, c: int, last: int) -> int:
    # the run of chunks from c (up to last) that lie in one place: all without an exception, or
    # all in consecutive log slots from c's slot on. -> end (exclusive) << RUN_SHIFT | c's slot + 1
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
        # (end of the run of chunks from c that lie in one place, c's slot or -1); see _run
        r = _run(self.table, self.keys, self.cap, c, last)
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


class SnapshotError(Exception):
    pass


class Engine:
    """The backup pair of the board: log drive, primary, state and exception index."""

    def __init__(self, buffer, events, index_budget):
        self.buffer = buffer
        self.events = events
        self.index_budget = index_budget   # RAM bytes the exception index may take
        self.log = None            # log SystemDrive (or None when no drive has LOG)
        self.log_sd = -1
        self.primary = None
        self.primary_sd = -1
        self.state = IDLE
        self.generation = 0
        self.snap_id = 0
        self.chunk_blocks = DEFAULT_CHUNK_KB * 2
        self.max_slots = 0         # slots a snapshot may use (the log's, bounded by the heap)
        self.log_slots = 0         # slots the log drive's layout has
        self.next_slot = 0
        self.index = None
        self._warned = 0           # usage events already logged
        self._warn_at = 1 << 62    # next_slot at which the next one is due
        self._hdr = bytearray(512)
        self._rec = bytearray(512)  # the index record block being filled
        self._recv = memoryview(self._rec)
        self._kept = 0            # buffer slots of the span the write path holds on to
        self.copies = 0           # chunks copied to the log since boot (for tests and the map)
        self.tracker = None       # long operations: told of every write (incremental re-sync)

    # ---- configuration -------------------------------------------------------------------
    def attach_log(self, sd, drive, chunk_kb, drives):
        # called at boot and when LOG is set; `drives` maps sd -> SystemDrive (to find the primary)
        self.log, self.log_sd = drive, sd
        self.chunk_blocks = (chunk_kb or DEFAULT_CHUNK_KB) * 2
        cb = self.chunk_blocks
        self.run_max = max(1, MAX_RUN_KB * 2 // cb)                   # chunks copied in one go
        # slots m with HDR + records(m) rounded to 4 KiB + m chunks <= the drive
        m = max(0, (drive.blocks - HDR_BLOCKS - 8) * RECS_PER_BLOCK // (RECS_PER_BLOCK * cb + 1))
        while m and self._data_start(m) + m * cb > drive.blocks:
            m -= 1
        # the layout depends on the drive only, so a board given another heap finds its log intact
        self.data = self._data_start(m)
        self.log_slots = m
        ram_slots = min(MAX_SLOTS, self.index_budget * LOAD_PCT // (4 * LOAD_PCT + 300))
        if m > ram_slots:
            # the board's memory bounds the index, and so how much of the log a snapshot can use
            self.events.log("warn", "LOG SD%d: MEMORY LIMITS THE LOG TO %d OF %d CHUNKS" % (sd, ram_slots, m))
            m = ram_slots
        self.max_slots = m
        if self.index is None or self.index.max_slots != self.max_slots:
            self.index = None
            self.index = ExceptionIndex(self.max_slots)
        else:
            self.index.clear()
        self.state, self.primary, self.primary_sd, self.next_slot = IDLE, None, -1, 0
        self._read_header()
        if self.state == ACTIVE:
            p = drives.get(self.primary_sd)
            if p is None:
                self.events.log("error", "SNAPSHOT LOST: PRIMARY SD%d GONE" % self.primary_sd)
                self.state = IDLE
                self._write_header()
            else:
                self.primary = p
                try:
                    self._rebuild_index()
                except Exception as e:         # the log failed under the scan (DriveError)
                    self.overflow("LOG SD%d UNREADABLE: %s" % (sd, e))

    def detach_log(self):
        if self.state == ACTIVE:
            raise SnapshotError("SNAPSHOT_ACTIVE")
        self.log, self.log_sd, self.index, self.max_slots = None, -1, None, 0
        self.state = IDLE

    def _read_header(self):
        try:
            self.log.read(0, memoryview(self._hdr))
        except Exception as e:
            self.events.log("error", "LOG SD%d HEADER UNREADABLE: %s" % (self.log_sd, e))
            return
        h = self._hdr
        if bytes(h[:8]) != HDR_MAGIC:
            return            # a drive that never was a log drive
        if binascii.crc32(memoryview(h)[:32]) != struct.unpack_from("<I", h, 32)[0]:
            # damaged from outside (the header is one sector, written whole): whatever snapshot it
            # described cannot be trusted, so the backup LUN stays not ready
            self.events.log("error", "LOG SD%d HEADER DAMAGED: NO SNAPSHOT" % self.log_sd)
            return
        _, state, prim, cb, gen, sid = struct.unpack_from(HDR, h, 0)
        self.generation, self.snap_id = gen, sid
        if state in (ACTIVE, OVERFLOWED) and cb == self.chunk_blocks:
            self.state, self.primary_sd = state, prim
        elif state == ACTIVE:
            self.events.log("error", "SNAPSHOT DROPPED: LOG CHUNK SIZE CHANGED")

    def _write_header(self):
        h = self._hdr
        zero(h, len(h))
        struct.pack_into(HDR, h, 0, HDR_MAGIC, self.state, max(self.primary_sd, 0),
                         self.chunk_blocks, self.generation, self.snap_id)
        struct.pack_into("<I", h, 32, binascii.crc32(memoryview(h)[:32]))
        self.log.write(0, memoryview(h))

    @staticmethod
    def _data_start(m):
        return HDR_BLOCKS + ((m + RECS_PER_BLOCK - 1) // RECS_PER_BLOCK + 7) // 8 * 8

    def _rebuild_index(self):
        # read records in slot order until the first one not valid for this snapshot
        n = 0
        b = self.buffer.take()
        try:
            buf = self.buffer.view(b)[:READ_RECS * 512]
            blk = 0
            nblk = (self.max_slots + RECS_PER_BLOCK - 1) // RECS_PER_BLOCK
            while n < self.max_slots and blk < nblk:
                k = min(READ_RECS, nblk - blk)
                self.log.read(HDR_BLOCKS + blk, buf[:k * 512])
                for off in range(0, k * 512, REC_LEN):
                    sid, chunk, slot, crc = struct.unpack_from(REC, buf, off)
                    if n == self.max_slots or sid != self.snap_id or slot != n or crc != binascii.crc32(buf[off:off + 12]):
                        break
                    self.index.insert(chunk, n)
                    n += 1
                else:
                    blk += k
                    continue
                break
        finally:
            self.buffer.give(b)
        self.next_slot = n
        if n == self.max_slots < self.log_slots and self._record_valid(n):
            # more exceptions on the log than this board's memory can index: without all of them
            # the backup LUN would show new data, so the snapshot ends as by an overflow
            self.overflow("LOG INDEX DOES NOT FIT IN MEMORY")
            return
        # the record block being filled, as on the log, its unused records cleared
        zero(self._rec, len(self._rec))
        if n % RECS_PER_BLOCK:
            self.log.read(HDR_BLOCKS + n // RECS_PER_BLOCK, memoryview(self._rec))
            used = (n % RECS_PER_BLOCK) * REC_LEN
            zero(memoryview(self._rec)[used:], 512 - used)
        self._next_warning()

    def _record_valid(self, n):
        r = self._rec
        self.log.read(HDR_BLOCKS + n // RECS_PER_BLOCK, memoryview(r))
        off = (n % RECS_PER_BLOCK) * REC_LEN
        sid, _, slot, crc = struct.unpack_from(REC, r, off)
        return sid == self.snap_id and slot == n and crc == binascii.crc32(memoryview(r)[off:off + 12])

    # ---- direct commands -----------------------------------------------------------------
    def initiate(self, sd, drive):
        # O(1) in the primary's size: a header write and a clear of the RAM index
        self.primary, self.primary_sd = drive, sd
        self.generation += 1
        self.snap_id = struct.unpack("<I", os.urandom(4))[0] | 1
        self.state = ACTIVE
        self.next_slot = 0
        self._next_warning()
        zero(self._rec, len(self._rec))
        self.index.clear()
        try:
            self._write_header()
        except Exception:
            # the log drive failed under the header write: no snapshot began
            self.state, self.primary, self.primary_sd = IDLE, None, -1
            raise
        self.events.log("info", "SNAPSHOT STARTED SD%d -> LOG SD%d" % (sd, self.log_sd))

    def terminate(self, reason="command"):
        self.state = IDLE
        self._store_header()
        self.index.clear()
        self.primary, self.primary_sd = None, -1
        self.events.log("info", "SNAPSHOT ENDED (%s)" % reason)

    def active(self):
        return self.state == ACTIVE

    def take_overflow(self):
        # the backup LUN's first command after an overflow: report it once, then plain NOT READY
        if self.state != OVERFLOWED:
            return False
        self.state = IDLE
        self._store_header()
        return True

    # ---- write path (FIG. 6) -------------------------------------------------------------
    def write(self, drive, lba, mv):
        # every write to a system drive comes here; only the active primary is copied-on-write
        if self.tracker is not None:
            self.tracker.mark(drive, lba, len(mv) >> 9)
        if self.state != ACTIVE or drive is not self.primary:
            drive.write(lba, mv)
            return
        # every chunk the write touches that has no exception yet goes to the log first (old data,
        # then index records), a run of neighbouring chunks in one read and one log write; only
        # then is the primary overwritten, in one write
        cb = self.chunk_blocks
        first = lba // cb
        last = (lba + (len(mv) >> 9) - 1) // cb
        index = self.index
        keep = -1
        c = first
        while c <= last and self.state == ACTIVE:
            r = _run(index.table, index.keys, index.cap, c, last)     # (index.run without its tuple)
            e = r >> RUN_SHIFT
            if r & RUN_SLOT:
                c = e                        # already copied: the log keeps what it has
                continue
            e = min(e, c + self.run_max)
            slot = self.next_slot
            # a run that is the whole write keeps its old data for the write below
            keep = self._copy_run(drive, c, e - c, c == first and e == last + 1)
            # a run cut short by a full log: the next chunk finds the log full and overflows
            c += max(1, self.next_slot - slot)
        if keep < 0:
            drive.write(lba, mv)
            return
        # a write whose chunks were just copied in one run: its old data is in the buffer, and
        # RAID 3/5 reuse it for the read-modify-write instead of reading it again
        try:
            off = (lba - first * cb) << 9
            drive.write(lba, mv, self.buffer.span(keep, self._kept)[off:off + len(mv)])
        finally:
            self.buffer.give_span(keep, self._kept)

    def _copy_run(self, drive, c, k, keep):
        # copy chunks c..c+k-1 to the next k log slots (contiguous on the log): one read of their
        # old data, one log write, then their index records, through a span of adjacent buffer
        # slots (a shorter run when the buffer has no span long enough). -> the first buffer slot
        # holding the data if `keep` and all k chunks were copied (self._kept slots), else -1
        want = k
        slot = self.next_slot
        if slot + k > self.max_slots:
            k = self.max_slots - slot
            if k <= 0:
                self.overflow("LOG OVERFLOW")
                return -1
        cb = self.chunk_blocks
        sb = self.buffer.slot_bytes
        b, n = self.buffer.take_span((k * cb * 512 + sb - 1) // sb)
        if b < 0:
            raise SnapshotError("BUFFER_FULL")
        k = min(k, n * sb // (cb << 9))
        try:
            buf = self.buffer.span(b, n, k * cb << 9)
            start = c * cb
            nb = drive.blocks - start
            if nb >= k * cb:
                drive.read(start, buf)
            else:
                drive.read(start, buf[:nb << 9])      # the drive's last chunk is short
                zero(buf[nb << 9:], (k * cb - nb) << 9)
            try:
                self.log.write(self.data + slot * cb, buf)
                self._records(c, slot, k)
            except Exception as e:
                # the snapshot can no longer be kept; the primary carries on, the backup LUN
                # reports the vendor-unique error once, as for an overflow
                self.overflow("LOG DRIVE FAILED: %s" % e)
                self.buffer.give_span(b, n)
                return -1
            self.index.insert_run(c, slot, k)
            self.next_slot = slot + k
            self.copies += k
        except:
            self.buffer.give_span(b, n)
            raise
        if self.next_slot >= self._warn_at:
            self._next_warning()
            self.events.log("warn", "LOG DRIVE %d%% FULL" % USAGE_EVENTS[self._warned - 1])
        if keep and k == want:
            self._kept = n
            return b
        self.buffer.give_span(b, n)
        return -1

    def _records(self, c, slot, k):
        # append the index records of slots slot..slot+k-1, one write per record block touched
        r = self._rec
        while k:
            n = min(k, RECS_PER_BLOCK - slot % RECS_PER_BLOCK)
            _pack_records(r, _CRC, self.snap_id, c, slot, n)
            self.log.write(HDR_BLOCKS + slot // RECS_PER_BLOCK, self._recv)
            slot += n
            c += n
            k -= n
            if not slot % RECS_PER_BLOCK:
                zero(r, 512)

    def _next_warning(self):
        # the usage events (75/90/98 %) as slot counts, so the write path compares two integers
        self._warned = 0
        for t in USAGE_EVENTS:
            if self.max_slots and 100 * self.next_slot // self.max_slots >= t:
                self._warned += 1
        self._warn_at = (self.max_slots * USAGE_EVENTS[self._warned] + 99) // 100 \
            if self._warned < len(USAGE_EVENTS) else 1 << 62

    def overflow(self, why):
        # the snapshot ends without a terminate: the log filled, or its log or primary drive failed
        self.state = OVERFLOWED
        self.index.clear()
        self.primary, self.primary_sd = None, -1
        self.events.log("error", why + ": SNAPSHOT TERMINATED")
        self._store_header()

    def _store_header(self):
        # a snapshot that ends ends in RAM even when its log drive cannot record it; a restart
        # then finds that log OFFLINE (or its header unreadable): no snapshot either way
        try:
            self._write_header()
        except Exception as e:
            self.events.log("error", "LOG HEADER WRITE FAILED: %s" % e)

    # ---- backup LUN read path ------------------------------------------------------------
    def read_backup(self, lba, mv):
        # the primary as it was at initiate: log where the chunk was copied, else the primary.
        # Neighbouring chunks from the same place are read in one go (index.run): a run of
        # uncopied chunks from the primary, a run of chunks in consecutive log slots from the log.
        index = self.index
        if index.count == 0:
            self.primary.read(lba, mv)
            return
        cb = self.chunk_blocks
        end = lba + (len(mv) >> 9)
        last = (end - 1) // cb
        pos = lba
        table, keys, cap = index.table, index.keys, index.cap
        while pos < end:
            c = pos // cb
            r = _run(table, keys, cap, c, last)      # (index.run without its tuple)
            slot = (r & RUN_SLOT) - 1
            seg_end = (r >> RUN_SHIFT) * cb
            if seg_end >= end:
                seg_end = end
                seg = mv if pos == lba else mv[(pos - lba) << 9:]
            else:
                seg = mv[(pos - lba) << 9:(seg_end - lba) << 9]
            if slot < 0:
                self.primary.read(pos, seg)
            else:
                self.log.read(self.data + slot * cb + (pos - c * cb), seg)
            pos = seg_end

    # ---- status --------------------------------------------------------------------------
    def usage_pct(self):
        return 100 * self.next_slot // self.max_slots if self.max_slots else 0

    def status(self):
        return {"state": STATE_NAMES[self.state], "primary": self.primary_sd if self.primary else None,
                "log": self.log_sd if self.log else None, "chunk_kb": self.chunk_blocks // 2,
                "exceptions": self.next_slot if self.state == ACTIVE else 0,
                "capacity": self.max_slots, "usage_pct": self.usage_pct() if self.state == ACTIVE else 0,
                "generation": self.generation}

    def copied_map(self, cells):
        # percent of each of `cells` regions of the primary already copied to the log
        if self.state != ACTIVE or cells <= 0:
            return [0] * max(cells, 0)
        nchunks = (self.primary.blocks + self.chunk_blocks - 1) // self.chunk_blocks
        counts = [0] * cells
        keys = self.index.keys
        for s in range(self.next_slot):
            counts[keys[s] * cells // nchunks] += 1
        out = []
        for i in range(cells):
            size = (i + 1) * nchunks // cells - i * nchunks // cells
            out.append(100 * counts[i] // size if size else 0)
        return out
