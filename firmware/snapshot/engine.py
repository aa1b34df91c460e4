# Snapshot engine (FIG. 5/6): one backup pair at a time (claim 14). During a snapshot the first write
# to each chunk of the primary copies the chunk's old data to the log system drive (the Origin the
# engine stacks on the primary, origin.py); the backup LUN reads a chunk from the log when it was
# copied, else from the primary.
#
# Log drive layout (blocks of 512 bytes; see snapshot/README.md):
#   block 0          header: magic, state, primary, chunk size, generation, snapshot id, CRC
#   blocks 8 ..      index records, 32 a block: (snapshot id, primary chunk, slot, CRC), slot order
#   data area ..     slot i: C blocks of old data at DATA + i*C (4 KiB aligned, contiguous)
# The write ordering that keeps the log exact at any kill (old data, then index records, then the
# primary) is the origin's (origin.py). Slots fill in order, so the index is rebuilt at boot by
# reading records until the first one that is not valid; the records' format is index.py's.
import struct
import binascii
import os
import time
from micropython import const
from hw.xor import zero
from snapshot.index import (ExceptionIndex, find_run, pack_records, record_chunk,
                            RUN_SHIFT, RUN_SLOT, REC_LEN, RECS_PER_BLOCK)
from snapshot.origin import Origin, SnapshotError

IDLE = const(0)
ACTIVE = const(1)
OVERFLOWED = const(2)      # terminated by overflow; the backup LUN has not yet reported it
STATE_NAMES = ("IDLE", "ACTIVE", "OVERFLOWED")


class Ended(Exception):
    # a follower's backup read met the end of its partner's snapshot: nothing it read is the image
    pass


HDR_MAGIC = b"RBSNAPv1"
HDR = "<8sIIIII"           # magic, state, primary sd, chunk blocks, generation, snapshot id
# the last snapshot's outcome, at OUT_AT of the header sector with its own CRC-32 after it (zeros: none):
# how (index in HOWS + 1), primary, log, usage %, exceptions, capacity, generation, started, ended, reason
OUT = "<BBBBIIIII48s"
OUT_AT = const(64)
OUT_LEN = const(72)
HOWS = ("terminated", "copied", "overflow", "log failed")
HDR_BLOCKS = const(8)      # the index records start at 4 KiB
READ_RECS = const(64)      # record blocks read at a time when rebuilding the index
DEFAULT_CHUNK_KB = const(64)
MAX_RUN_KB = const(1024)   # neighbouring chunks copied with one read and one log write (buffer span)
MAX_CHUNK_KB = const(256)
CHUNK_KB_CHOICES = (4, 8, 16, 32, 64, 128, 256)
USAGE_EVENTS = (75, 90, 98)


class Engine:
    """The backup pair of the board: log drive, primary, state, exception index and the origin."""

    def __init__(self, buffer, events, index_budget):
        self.buffer = buffer
        self.events = events
        self.index_budget = index_budget   # RAM bytes the exception index may take
        self.log = None            # log SystemDrive (or None when no drive has LOG)
        self.log_sd = -1
        self.primary = None
        self.primary_sd = -1
        self.state = IDLE
        # of a pair (control/pair.md "The snapshot across the pair"): notify(state) is told when a
        # snapshot begins or ends; announce(c, slot, k) puts a run of exceptions in the partner's
        # mirror memory before its copy begins (so before the primary is written). A follower
        # keeps the partner's snapshot and never writes the log: absorb() takes the runs the
        # partner announced since it last looked (follow_exceptions each) and says how many. The
        # run announced last (chunks pending_c.. to slots pending_slot.., pending_k of them) may
        # still be on its way to the log, and stays out of the index until it is known to be
        # there; the slots below `indexed` are all in the index
        self.notify = None
        self.announce = None
        self.absorb = None
        self.follower = False
        self.ended = -1            # a follower: the snapshot whose end it took from the mirror
        self.pending_c = self.pending_slot = self.pending_k = 0
        self.indexed = 0
        self.follows = 0           # counts the times the index began afresh (the feed starts over)
        self._chk = bytearray(512)         # a follower's look at a record block
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
        self.copies = 0           # chunks copied to the log since boot (for tests and the map)
        self.started = 0          # time.time() of the running snapshot's initiate
        # how the last snapshot ended (primary, log, when, how, how full the log got), kept until
        # the next initiate, in RAM and in the log header (README "Last outcome")
        self.last = None
        self.origin = Origin(self)
        # sd -> what a host write to it goes through instead of the drive: the Origin, stacked on
        # the primary while a snapshot is active (the write path: origins.get(sd, drive).write)
        self.origins = {}
        # told (sd, lba, blocks) of every host write to any system drive before it is written, by
        # the write path; registered from above (change tracking, lop/track.py). Never raise.
        self.listeners = []

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
        ram_slots = ExceptionIndex.slots_for(self.index_budget)
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
        self.origins.clear()
        self.last = None
        self.follower = False
        self.pending_k = 0
        self.indexed = 0
        self.follows += 1
        self._read_header()
        if self.state == ACTIVE:
            p = drives.get(self.primary_sd)
            if p is None:
                self.events.log("error", "SNAPSHOT LOST: PRIMARY SD%d GONE" % self.primary_sd)
                self.state = IDLE
                self._write_header()
            else:
                self.primary = p
                self._stack()
                try:
                    self._rebuild_index()
                except Exception as e:         # the log failed under the scan (DriveError)
                    self.overflow("LOG SD%d UNREADABLE: %s" % (sd, e), "log failed")

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
        self._read_outcome(h)
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
        o = self.last
        if o is not None:
            struct.pack_into(OUT, h, OUT_AT, HOWS.index(o["how"]) + 1, o["primary"] & 0xFF, o["log"] & 0xFF,
                             o["usage_pct"], o["exceptions"], o["capacity"], o["generation"],
                             int(o["started"] or 0), int(o["ended"]), o["reason"].encode()[:48])
            struct.pack_into("<I", h, OUT_AT + OUT_LEN, binascii.crc32(memoryview(h)[OUT_AT:OUT_AT + OUT_LEN]))
        self.log.write(0, memoryview(h))

    def _read_outcome(self, h):
        # the outcome a restart finds in the header (written with every end), if whole
        if struct.unpack_from("<I", h, OUT_AT + OUT_LEN)[0] != binascii.crc32(memoryview(h)[OUT_AT:OUT_AT + OUT_LEN]):
            return
        how, prim, log, pct, n, cap, gen, t0, t1, why = struct.unpack_from(OUT, h, OUT_AT)
        if not 1 <= how <= len(HOWS):
            return
        try:
            why = why.rstrip(b"\0").decode()
        except Exception:
            why = "?"
        self.last = {"primary": prim, "log": log, "generation": gen, "started": t0 or None, "ended": t1,
                     "how": HOWS[how - 1], "reason": why, "usage_pct": pct, "exceptions": n, "capacity": cap}

    @staticmethod
    def _data_start(m):
        return HDR_BLOCKS + ((m + RECS_PER_BLOCK - 1) // RECS_PER_BLOCK + 7) // 8 * 8

    def _rebuild_index(self):
        b = self.buffer.take()
        try:
            n = self._index_records(0, self.buffer.view(b)[:READ_RECS * 512])
        finally:
            self.buffer.give(b)
        if n < 0:
            self.overflow("LOG INDEX DOES NOT FIT IN MEMORY")
            return
        self.next_slot = self.indexed = n
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

    def _index_records(self, s, buf):
        # the records from slot s on, in slot order, into the index up to the first one not valid
        # for this snapshot (or the last slot), read len(buf) // 512 record blocks at a time.
        # -> the slot after the last one indexed; -1 when the index is full
        per = len(buf) // 512
        while s < self.max_slots:
            blk = s // RECS_PER_BLOCK
            k = min(per, (self.max_slots - 1) // RECS_PER_BLOCK + 1 - blk)
            self.log.read(HDR_BLOCKS + blk, buf[:k * 512])
            end = min(self.max_slots, (blk + k) * RECS_PER_BLOCK)
            while s < end:
                chunk = record_chunk(buf, (s - blk * RECS_PER_BLOCK) * REC_LEN, self.snap_id, s)
                if chunk < 0:
                    return s
                if not self.index.insert(chunk, s):
                    return -1
                s += 1
        return s

    def _record_valid(self, n):
        r = self._rec
        self.log.read(HDR_BLOCKS + n // RECS_PER_BLOCK, memoryview(r))
        return record_chunk(r, (n % RECS_PER_BLOCK) * REC_LEN, self.snap_id, n) >= 0

    # ---- direct commands -----------------------------------------------------------------
    def initiate(self, sd, drive):
        # O(1) in the primary's size: a header write and a clear of the RAM index
        self.primary, self.primary_sd = drive, sd
        self.generation += 1
        self.snap_id = struct.unpack("<I", os.urandom(4))[0] | 1
        self.state = ACTIVE
        self.next_slot = 0
        self.started = time.time()
        self.last = None
        self._next_warning()
        zero(self._rec, len(self._rec))
        self.index.clear()
        try:
            self._write_header()
        except Exception:
            # the log drive failed under the header write: no snapshot began
            self.state, self.primary, self.primary_sd = IDLE, None, -1
            raise
        self._stack()
        self.events.log("info", "SNAPSHOT STARTED SD%d -> LOG SD%d" % (sd, self.log_sd))
        if self.notify is not None:
            self.notify(ACTIVE)

    def terminate(self, reason="command"):
        self._keep_outcome("copied" if reason.startswith("copied") else "terminated", reason)
        self.state = IDLE
        self.origins.clear()
        self._store_header()
        self.index.clear()
        self.primary, self.primary_sd = None, -1
        self.events.log("info", "SNAPSHOT ENDED (%s)" % reason)
        if self.notify is not None:
            self.notify(IDLE)

    def _stack(self):
        # the primary's host writes go through the origin from now on (copy-on-write)
        self.origins.clear()
        self.origins[self.primary_sd] = self.origin

    def take_overflow(self):
        # the backup LUN's first command after an overflow: report it once, then plain NOT READY
        if self.state != OVERFLOWED:
            return False
        self.state = IDLE
        self._store_header()
        return True

    # ---- exceptions (the origin's copy-on-write records them here) --------------------------
    def write_records(self, c, slot, k):
        # append the index records of chunks c..c+k-1, just copied to slots slot..slot+k-1 of the
        # log, one write per record block touched
        r = self._rec
        while k:
            n = min(k, RECS_PER_BLOCK - slot % RECS_PER_BLOCK)
            pack_records(r, self.snap_id, c, slot, n)
            self.log.write(HDR_BLOCKS + slot // RECS_PER_BLOCK, self._recv)
            slot += n
            c += n
            k -= n
            if not slot % RECS_PER_BLOCK:
                zero(r, 512)

    def add_exceptions(self, c, slot, k):
        # chunks c..c+k-1 are on the log in slots slot..slot+k-1, their records too: into the index
        if not self.index.insert_run(c, slot, k):
            # on the log, but this board's memory cannot index it: the snapshot ends
            self.overflow("LOG INDEX DOES NOT FIT IN MEMORY")
            return
        self.next_slot = slot + k
        self.copies += k
        if self.next_slot >= self._warn_at:
            self._next_warning()
            self.events.log("warn", "LOG DRIVE %d%% FULL" % USAGE_EVENTS[self._warned - 1])

    # ---- a pair's follower: the partner's snapshot, kept from its messages -----------------------
    def indexable(self, drive):
        # whether the index can name every chunk of `drive` (chunk numbers below 2^27 at least)
        return (drive.blocks + self.chunk_blocks - 1) // self.chunk_blocks <= self.index.max_chunks

    def follow(self, state, primary_sd, primary, snap_id, generation, started, last):
        # the partner began (ACTIVE) or ended a snapshot; this engine serves its backup LUN reads
        if state == ACTIVE and primary is not None and not self.indexable(primary):
            self.events.log("error", "LOG INDEX CANNOT NAME SD%d'S CHUNKS: THE PARTNER'S SNAPSHOT IS NOT SERVED HERE"
                            % primary_sd)
            state, primary = OVERFLOWED, None
        if state == ACTIVE:
            self.primary, self.primary_sd, self.next_slot = primary, primary_sd, 0
            self.snap_id, self.generation, self.started = snap_id, generation, started
            self.last = None
        else:
            self.primary, self.primary_sd, self.last = None, -1, last
            if snap_id == self.ended:
                return          # its end was taken already (follow_end)
        self.state = state
        self.follower = True
        self.pending_k = self.indexed = 0
        self.follows += 1
        self.origins.clear()
        if self.index is not None:
            self.index.clear()

    def follow_end(self, state):
        # the partner's snapshot is over here: it ended (its end in the mirror memory, ahead of
        # its message), or this controller cannot follow it. The backup LUN reports it as the
        # message would, and the message, when it comes, changes nothing but the outcome kept
        # (an overflow is reported once)
        self.ended = self.snap_id
        self.state = state if state in (IDLE, OVERFLOWED) else OVERFLOWED
        self.primary, self.primary_sd, self.pending_k = None, -1, 0
        self.origins.clear()
        if self.index is not None:
            self.index.clear()

    def follow_exceptions(self, c, slot, k):
        # the partner is about to copy chunks c..c+k-1 to slots slot..: the run it announced
        # before is on the log if this one comes after it (a copy that failed is announced again
        # at the same slots), and this one may not be there yet (read_backup checks its records).
        # Slots already indexed (read from the log's records when this controller began to
        # follow) are left out
        d = self.indexed - slot
        if d >= k:
            return
        if d > 0:
            c, slot, k = c + d, slot + d, k - d
        if self.pending_k and slot >= self.pending_slot + self.pending_k:
            self._follow_run()
        self.pending_c, self.pending_slot, self.pending_k = c, slot, k
        if slot + k > self.next_slot:
            self.next_slot = slot + k

    def _next_warning(self):
        # the usage events (75/90/98 %) as slot counts, so the write path compares two integers
        self._warned = 0
        for t in USAGE_EVENTS:
            if self.max_slots and 100 * self.next_slot // self.max_slots >= t:
                self._warned += 1
        self._warn_at = (self.max_slots * USAGE_EVENTS[self._warned] + 99) // 100 \
            if self._warned < len(USAGE_EVENTS) else 1 << 62

    def overflow(self, why, how="overflow"):
        # the snapshot ends without a terminate: the log filled (how "overflow"), or its log drive
        # ("log failed") or primary drive failed
        self._keep_outcome(how, why)
        self.state = OVERFLOWED
        self.origins.clear()
        self.index.clear()
        self.primary, self.primary_sd = None, -1
        self.events.log("error", why + ": SNAPSHOT TERMINATED")
        self._store_header()
        if self.notify is not None:
            self.notify(OVERFLOWED)

    def _keep_outcome(self, how, why):
        self.last = {"primary": self.primary_sd, "log": self.log_sd, "generation": self.generation,
                     "started": self.started or None, "ended": time.time(), "how": how, "reason": why,
                     "usage_pct": self.usage_pct(), "exceptions": self.next_slot,
                     "capacity": self.max_slots}

    def _store_header(self):
        # a snapshot that ends ends in RAM even when its log drive cannot record it; a restart
        # then finds that log OFFLINE (or its header unreadable): no snapshot either way. A
        # follower never writes the log: the partner's header is the one
        if self.follower:
            return
        try:
            self._write_header()
        except Exception as e:
            self.events.log("error", "LOG HEADER WRITE FAILED: %s" % e)

    # ---- backup LUN read path ------------------------------------------------------------
    def read_backup(self, lba, mv):
        # the primary as it was at initiate: log where the chunk was copied, else the primary.
        # A follower first takes what the partner announced; the runs it announced while the
        # primary was read here may have been copied and overwritten meanwhile, so their chunks
        # are read again from where they are now (control/pair.md "The snapshot across the pair")
        if not self.follower:
            self._read_image(lba, mv)
            return
        self._news()
        if self.state == ACTIVE:
            self._read_image(lba, mv)
            if self._news():
                self._read_again(lba, mv)
        if self.state != ACTIVE:
            raise Ended()

    def _news(self):
        # a follower's look at what its partner copied: the runs announced in its mirror memory,
        # then the records on the log past the indexed slots (runs whose copy is done, announced
        # or not: after a restart this controller may begin to follow while the partner does not
        # yet hear it). -> whether anything came
        n = self._absorb_records()
        if self.absorb is not None and self.absorb():
            return True
        return n

    def _absorb_records(self):
        # the records past `indexed` into the index, up to the first slot without one
        if self.state != ACTIVE:
            return False
        s0 = self.indexed
        s = self._index_records(s0, memoryview(self._chk))
        if s < 0:
            self._not_followed()
            return True
        if s == s0:
            return False
        self.indexed = s
        if s > self.next_slot:
            self.next_slot = s
        if self.pending_k and self.pending_slot < s:
            # the announced run is (partly) among them, or was dropped for another at its slots
            d = min(s - self.pending_slot, self.pending_k)
            self.pending_c, self.pending_slot, self.pending_k = self.pending_c + d, self.pending_slot + d, self.pending_k - d
        return True

    def _read_again(self, lba, mv):
        # the chunks of lba.. that are now indexed or announced, read as those are
        cb = self.chunk_blocks
        end = lba + (len(mv) >> 9)
        pos = lba
        while pos < end and self.state == ACTIVE:
            j = pos // cb
            n = min(end, (j + 1) * cb) - pos
            part = mv[(pos - lba) << 9:(pos - lba + n) << 9]
            slot = self.index.find(j)
            if slot >= 0:
                self.log.read(self.data + slot * cb + (pos - j * cb), part)
            elif self.pending_k and self.pending_c <= j < self.pending_c + self.pending_k:
                self._read_announced(pos, part)
            pos += n

    def _read_image(self, lba, mv):
        if self.pending_k:
            a = self.pending_c * self.chunk_blocks
            b = a + self.pending_k * self.chunk_blocks
            end = lba + (len(mv) >> 9)
            if lba < b and end > a:
                lo = max(lba, a)
                hi = min(end, b)
                if lba < lo:
                    self._read_indexed(lba, mv[:(lo - lba) << 9])
                self._read_announced(lo, mv[(lo - lba) << 9:(hi - lba) << 9])
                if hi < end and self.state == ACTIVE:
                    self._read_indexed(hi, mv[(hi - lba) << 9:])
                return
        self._read_indexed(lba, mv)

    def _read_indexed(self, lba, mv):
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
        cells, p = index.cells, index.p
        while pos < end:
            c = pos // cb
            r = find_run(cells, p, c, last)
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

    def _read_announced(self, pos, seg):
        # a follower's read of chunks the partner announced and may still be copying: a chunk
        # whose record is on the log is read from its slot; the others from the primary, which
        # the partner overwrites only after the record is written, so a record still missing
        # once the primary was read proves that read was of the old data (control/pair.md)
        cb = self.chunk_blocks
        c0, s0 = self.pending_c, self.pending_slot
        end = pos + (len(seg) >> 9)
        while pos < end and self.state == ACTIVE:      # (a run that cannot be indexed ends it)
            j = pos // cb
            n = min(end, (j + 1) * cb) - pos
            part = seg[:n << 9]
            seg = seg[n << 9:]
            at = self.data + (s0 + j - c0) * cb + (pos - j * cb)
            if self._copied(j, s0 + j - c0):
                self.log.read(at, part)
            else:
                self.primary.read(pos, part)
                if self._copied(j, s0 + j - c0):
                    self.log.read(at, part)
            pos += n

    def _copied(self, chunk, s):
        # whether the log holds the record of `chunk` in slot s; once the run's last record is
        # there the whole run is, and it joins the index
        b = self._chk
        self.log.read(HDR_BLOCKS + s // RECS_PER_BLOCK, memoryview(b))
        if record_chunk(b, (s % RECS_PER_BLOCK) * REC_LEN, self.snap_id, s) != chunk:
            return False
        if self.pending_k and s == self.pending_slot + self.pending_k - 1:
            self._follow_run()
            self.pending_k = 0
        return True

    def _follow_run(self):
        # the announced run is on the log: into the index. A follower whose memory cannot index
        # it stops serving the partner's snapshot here (its backup LUN reports the end, as after
        # an overflow) rather than read new data for a chunk it left out; the partner's goes on
        if not self.index.insert_run(self.pending_c, self.pending_slot, self.pending_k):
            self._not_followed()
            return
        if self.pending_slot <= self.indexed:
            # (else slots below it are not indexed yet: runs copied without a word to this
            # controller, which the log's records bring in; _absorb_records)
            self.indexed = self.pending_slot + self.pending_k

    def _not_followed(self):
        self.events.log("error", "LOG INDEX DOES NOT FIT IN MEMORY: THE PARTNER'S SNAPSHOT IS NOT SERVED HERE")
        self.follow_end(OVERFLOWED)

    # ---- status --------------------------------------------------------------------------
    def usage_pct(self):
        return 100 * self.next_slot // self.max_slots if self.max_slots else 0

    def status(self):
        return {"state": STATE_NAMES[self.state], "primary": self.primary_sd if self.primary else None,
                "log": self.log_sd if self.log else None, "chunk_kb": self.chunk_blocks // 2,
                "exceptions": self.next_slot if self.state == ACTIVE else 0,
                "capacity": self.max_slots, "usage_pct": self.usage_pct() if self.state == ACTIVE else 0,
                "generation": self.generation, "last": self.last}

    def copied_map(self, cells):
        # percent of each of `cells` regions of the primary already copied to the log
        if self.state != ACTIVE or cells <= 0:
            return [0] * max(cells, 0)
        nchunks = (self.primary.blocks + self.chunk_blocks - 1) // self.chunk_blocks
        counts = [0] * cells
        for c in self.index.chunks():
            counts[c * cells // nchunks] += 1
        out = []
        for i in range(cells):
            size = (i + 1) * nchunks // cells - i * nchunks // cells
            out.append(100 * counts[i] // size if size else 0)
        return out
