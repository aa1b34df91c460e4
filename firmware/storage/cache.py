# Write-back cache for system drives with WB_MSK. The real board's buffer is battery-backed; here
# the battery is a journal file in the state directory: a write is appended to the journal (one
# record per cache line it touches) before it is acknowledged, so it survives a killed firmware
# process, and replay() puts the journal onto the drives at boot.
#
# Dirty data lives in Buffer slots, one cache line per slot (line_blocks, by default the largest
# power of two of sectors a slot holds, aligned on the drive). The cache never holds more than max_lines slots: a write that needs a new line when the
# cache is full destages the least recently written line first. A line only holds dirty sectors
# (one byte per sector says which), so reads merge it over what the drive has.
#
# Journal record: header "<IIIIII" = magic, sequence, drive, lba, blocks, crc32(fields + data), then
# the data. A torn tail (killed mid-append) fails its CRC and is ignored: it was never acknowledged.
# The journal is emptied when nothing is dirty, and rewritten (temp + rename) with only the dirty
# lines when it grows past journal_limit or a drive's lines are flushed or discarded; replaying
# records whose data is already on the drive is harmless, so any crash point is safe.
#
# Of a dual-active pair, `mirror` (control/pair.py) keeps a copy of the journal in the partner's
# memory: every record is sent before the write is answered, and every rewrite of the journal
# starts the copy afresh (so the partner never holds a record the journal dropped).
import os
import struct
import binascii
from micropython import const
from hw.iop import exists
from storage.raid import OFFLINE

JOURNAL_FILE = "cache.journal"   # a controller's journal, in its own directory (control/)
MAGIC = const(0x4A575252)  # "RRWJ"
HDR = const(24)
SECTOR = const(512)
MAX_DRIVES = const(16)


class WriteBackCache:
    def __init__(self, journal_path, buffer, max_lines=None, journal_limit=None, line_blocks=None):
        self.path = journal_path
        self.buf = buffer
        per_slot = buffer.slot_bytes // SECTOR
        if line_blocks is None:
            # a power of two, so lines stay aligned with stripe units
            line_blocks = 1
            while line_blocks * 2 <= per_slot:
                line_blocks *= 2
        if not 1 <= line_blocks <= per_slot:
            raise ValueError("cache: line of %r blocks, a buffer slot holds %d" % (line_blocks, per_slot))
        self.spl = line_blocks  # sectors per line
        if max_lines is None:
            max_lines = buffer.slots
        if not 1 <= max_lines <= buffer.slots:
            raise ValueError("cache: max_lines %r, the buffer has %d slots" % (max_lines, buffer.slots))
        self.max_lines = max_lines
        if journal_limit is None:
            journal_limit = 2 * max_lines * (buffer.slot_bytes + HDR)
        self.journal_limit = journal_limit
        self.lines = {}  # key (line number * MAX_DRIVES + drive) -> buffer slot
        ns = buffer.slots
        self._key = [-1] * ns  # per buffer slot: the line key it caches, -1 when not ours
        self._age = [0] * ns
        self._dirty = bytearray(ns * self.spl)  # 1 per dirty sector
        self._dv = memoryview(self._dirty)
        self._ones = memoryview(b"\x01" * self.spl)
        self._zeros = memoryview(bytes(self.spl))
        self._clock = 0
        self._per_drive = [0] * MAX_DRIVES  # dirty lines per drive
        self.drives = [None] * MAX_DRIVES  # drive objects we hold dirty data for
        self._jdrv = bytearray(MAX_DRIVES)  # drives with records in the journal
        self._hdr = bytearray(HDR)
        self._jf = None
        self._seq = 0
        self.journal_bytes = 0
        self.destaged = 0  # lines written back, for the statistics
        self.write_through = 0  # line segments written straight through for lack of buffer
        self.mirror = None      # of a pair: record(header, data), reset(), commit() (above)

    # ---- journal
    def _open_journal(self, truncate):
        if self._jf:
            self._jf.close()
        if truncate or not exists(self.path):
            self._jf = open(self.path, "wb")
            self.journal_bytes = 0
            if self.mirror is not None:
                self.mirror.reset()
                self.mirror.commit()
        else:
            self._jf = open(self.path, "r+b")
            self.journal_bytes = self._jf.seek(0, 2)

    def _record(self, f, no, lba, seg):
        h = self._hdr
        self._seq = (self._seq + 1) & 0xFFFFFFFF
        nb = len(seg) // SECTOR
        struct.pack_into("<IIIII", h, 0, MAGIC, self._seq, no, lba, nb)
        crc = binascii.crc32(seg, binascii.crc32(memoryview(h)[4:20]))
        struct.pack_into("<I", h, 20, crc)
        f.write(h)
        f.write(seg)
        if self.mirror is not None:
            self.mirror.record(h, seg)
        return HDR + len(seg)

    def _rewrite(self):
        # the journal becomes exactly the dirty lines (or empty): temp file + rename
        for i in range(MAX_DRIVES):
            self._jdrv[i] = 1 if self._per_drive[i] else 0
        if not self.lines:
            self._open_journal(True)
            return
        tmp = self.path + ".tmp"
        f = open(tmp, "wb")
        size = 0
        if self.mirror is not None:
            self.mirror.reset()
        for key in self.lines:
            slot = self.lines[key]
            ln = key // MAX_DRIVES
            no = key - ln * MAX_DRIVES
            v = self.buf.view(slot)
            for a, b in self._dirty_runs(slot):
                size += self._record(f, no, ln * self.spl + a, v[a * SECTOR:b * SECTOR])
        f.close()
        self._jf.close()
        self._jf = None
        os.rename(tmp, self.path)
        self._open_journal(False)
        if self.mirror is not None:
            self.mirror.commit()

    def _dirty_runs(self, slot):
        # the runs (first, end) of dirty sectors of a cache line
        d0 = slot * self.spl
        o = 0
        while o < self.spl:
            a, b = self._run(d0, o)
            if a < 0:
                return
            yield a, b
            o = b

    def _run(self, d0, o):
        # next run [a, b) of dirty sectors of the line whose flags start at d0, from sector o
        d = self._dirty
        end = d0 + self.spl
        a = d.find(b"\x01", d0 + o, end)
        if a < 0:
            return -1, -1
        b = d.find(b"\x00", a, end)
        if b < 0:
            b = end
        return a - d0, b - d0

    def replay(self, drives):
        # At boot, before any other use: put the journal onto the drives and start it afresh.
        # drives: number -> SystemDrive (dict or list; None/missing for a drive that is gone).
        # Answers {records, blocks, torn_bytes, errors:[text]} for the event log.
        rep = {"records": 0, "blocks": 0, "torn_bytes": 0, "errors": []}
        if self.lines:
            raise ValueError("cache: replay() is for boot, the cache already holds dirty lines")
        if exists(self.path + ".tmp"):
            os.remove(self.path + ".tmp")  # a rewrite that did not finish: the journal is intact
        if not exists(self.path):
            self._open_journal(True)
            return rep
        f = open(self.path, "rb")
        size = f.seek(0, 2)
        f.seek(0)
        slot = self.buf.take()
        if slot < 0:
            f.close()
            raise ValueError("cache: no buffer slot free to replay the journal")
        v = self.buf.view(slot)
        h = self._hdr
        pos = 0
        told = False              # the reason the replay stopped is already in the report
        try:
            while pos + HDR <= size:
                if f.readinto(h) != HDR:
                    break
                magic, seq, no, lba, nb = struct.unpack_from("<IIIII", h, 0)
                crc = struct.unpack_from("<I", h, 20)[0]
                if magic != MAGIC or nb < 1 or pos + HDR + nb * SECTOR > size:
                    break
                if nb > self.spl:
                    rep["errors"].append("journal: record of %d blocks at byte %d is larger than a buffer slot "
                                         "(was the board's buffer changed?): replay stops there" % (nb, pos))
                    told = True
                    break
                seg = v[0:nb * SECTOR]
                if f.readinto(seg) != nb * SECTOR:
                    break
                if binascii.crc32(seg, binascii.crc32(memoryview(h)[4:20])) != crc:
                    break
                pos += HDR + nb * SECTOR
                self._seq = seq
                rep["records"] += 1
                try:
                    drv = drives[no]
                except (KeyError, IndexError):
                    drv = None
                if drv is None:
                    rep["errors"].append("journal: system drive %d is gone, %d blocks at %d dropped" % (no, nb, lba))
                    continue
                try:
                    drv.write(lba, seg)
                    rep["blocks"] += nb
                except Exception as e:  # DriveError (OFFLINE) or a range that no longer fits
                    rep["errors"].append("journal: system drive %d lba %d+%d not written back: %s" % (no, lba, nb, e))
            # a kill can cut short the one record being appended, which begins with its magic;
            # anything else left over is damage
            torn = size - pos
            if torn and not told and (torn > HDR + self.spl * SECTOR or not self._starts_a_record(f, pos, torn)):
                rep["errors"].append("journal: %d bytes from byte %d do not parse (damaged); what they held is lost"
                                     % (torn, pos))
        finally:
            f.close()
            self.buf.give(slot)
        rep["torn_bytes"] = size - pos
        self._open_journal(True)
        return rep

    def _starts_a_record(self, f, pos, n):
        # whether the n bytes at pos begin as a record does (its magic, or as much of it as there is)
        h = self._hdr
        f.seek(pos)
        k = f.readinto(memoryview(h)[:min(n, 4)])
        return bytes(h[:k]) == struct.pack("<I", MAGIC)[:k]

    # ---- cache lines
    def _check(self, drive, lba, mv):
        if self._jf is None:
            raise ValueError("cache: replay() has not run yet")
        no = drive.number
        if not 0 <= no < MAX_DRIVES:
            raise ValueError("cache: drive number %r" % (no,))
        nb = len(mv)
        if nb % SECTOR:
            raise ValueError("cache: length %d is not whole sectors" % nb)
        if lba < 0 or lba + nb // SECTOR > drive.blocks:
            raise ValueError("cache: lba %d+%d beyond %d blocks" % (lba, nb // SECTOR, drive.blocks))
        return no

    def _alloc(self):
        if len(self.lines) < self.max_lines:
            i = self.buf.take()
            if i >= 0:
                return i
        if not self.lines:
            return -1
        # reuse the least recently written line
        old = -1
        best = 0
        for key in self.lines:
            s = self.lines[key]
            if old < 0 or self._age[s] < best:
                old = s
                best = self._age[s]
        try:
            self._destage(old)
        except Exception:
            no = self._key[old] % MAX_DRIVES
            if self.drives[no].status() != OFFLINE:
                raise
            # its drive is OFFLINE for good: none of its lines can ever be written, and the write
            # asking for a line must not fail for it. Drop them, but leave the journal alone (no
            # rewrite): the record of the segment being cached now is in it and nowhere else yet
            self._forget(no)
            return self._alloc()
        self._drop(old)
        return old

    def _destage(self, slot):
        key = self._key[slot]
        ln = key // MAX_DRIVES
        no = key - ln * MAX_DRIVES
        drv = self.drives[no]
        v = self.buf.view(slot)
        for a, b in self._dirty_runs(slot):
            drv.write(ln * self.spl + a, v[a * SECTOR:b * SECTOR])
        self.destaged += 1

    def _drop(self, slot):
        # forget the line (the slot stays taken by the caller)
        key = self._key[slot]
        del self.lines[key]
        self._per_drive[key % MAX_DRIVES] -= 1
        self._key[slot] = -1

    def write(self, drive, lba, mv):
        no = self._check(drive, lba, mv)
        self.drives[no] = drive
        spl = self.spl
        end = lba + len(mv) // SECTOR
        pos = lba
        mo = 0
        f = self._jf
        while pos < end:
            ln = pos // spl
            o = pos - ln * spl
            c = spl - o
            if c > end - pos:
                c = end - pos
            nb = c * SECTOR
            seg = mv[mo:mo + nb]
            # journal first: from here on the data survives a kill
            self.journal_bytes += self._record(f, no, pos, seg)
            self._jdrv[no] = 1
            key = ln * MAX_DRIVES + no
            slot = self.lines.get(key, -1)
            if slot < 0:
                slot = self._alloc()
                if slot < 0:
                    # no buffer to be had: write through (the record keeps replay in order)
                    drive.write(pos, seg)
                    self.write_through += 1
                    pos += c
                    mo += nb
                    continue
                self.lines[key] = slot
                self._key[slot] = key
                self._per_drive[no] += 1
                self._dv[slot * spl:(slot + 1) * spl] = self._zeros
            v = self.buf.view(slot)
            v[o * SECTOR:o * SECTOR + nb] = seg
            self._dv[slot * spl + o:slot * spl + o + c] = self._ones[0:c]
            self._clock += 1
            self._age[slot] = self._clock
            pos += c
            mo += nb
        if self.mirror is not None:
            self.mirror.commit()     # in the partner's memory before the write is answered
        if self.journal_bytes > self.journal_limit:
            self._rewrite()

    def read(self, drive, lba, mv):
        no = self._check(drive, lba, mv)
        if not self._per_drive[no]:
            drive.read(lba, mv)
            return
        spl = self.spl
        end = lba + len(mv) // SECTOR
        pos = lba
        mo = 0
        run = -1  # start of a stretch with no cached line, read from the drive in one go
        while pos < end:
            ln = pos // spl
            o = pos - ln * spl
            c = spl - o
            if c > end - pos:
                c = end - pos
            slot = self.lines.get(ln * MAX_DRIVES + no, -1)
            if slot < 0:
                if run < 0:
                    run = pos
            else:
                if run >= 0:
                    drive.read(run, mv[(run - lba) * SECTOR:mo])
                    run = -1
                d0 = slot * spl
                nb = c * SECTOR
                seg = mv[mo:mo + nb]
                if self._dirty.find(b"\x00", d0 + o, d0 + o + c) >= 0:
                    drive.read(pos, seg)  # partly dirty: the drive's sectors, then ours on top
                v = self.buf.view(slot)
                q = o
                while q < o + c:
                    a, b = self._run(d0, q)
                    if a < 0 or a >= o + c:
                        break
                    if b > o + c:
                        b = o + c
                    seg[(a - o) * SECTOR:(b - o) * SECTOR] = v[a * SECTOR:b * SECTOR]
                    q = b
            pos += c
            mo += c * SECTOR
        if run >= 0:
            drive.read(run, mv[(run - lba) * SECTOR:mo])

    def flush(self, drive=None):
        # Destage the dirty lines of one drive (or all) in drive order and give their slots back;
        # then the journal keeps only what is still dirty. Answers the number of lines written.
        no = -1 if drive is None else (drive if isinstance(drive, int) else drive.number)
        keys = [k for k in self.lines if no < 0 or k % MAX_DRIVES == no]
        keys.sort()
        n = 0
        try:
            for key in keys:
                slot = self.lines[key]
                self._destage(slot)
                self._drop(slot)
                self.buf.give(slot)
                n += 1
        finally:
            # no record of a flushed drive may stay behind: a later write that bypasses the
            # cache must not be overwritten by a replay
            if (no < 0 and self.journal_bytes) or (no >= 0 and self._jdrv[no]):
                self._rewrite()
        return n

    def remirror(self):
        # a partner (re)joined: its copy becomes what the journal holds now
        if self.mirror is not None and self._jf is not None:
            self._rewrite()

    def discard(self, drive_number):
        # forget a deleted drive's dirty data (its lines and journal records)
        n = self._forget(drive_number)
        self.drives[drive_number] = None
        self._rewrite()
        return n

    def _forget(self, no):
        # drop a drive's lines, their slots back to the buffer -> how many
        keys = [k for k in self.lines if k % MAX_DRIVES == no]
        for key in keys:
            slot = self.lines[key]
            self._drop(slot)
            self.buf.give(slot)
        return len(keys)

    def dirty(self, drive=None):
        # dirty lines held, for one drive number or all
        if drive is None:
            return len(self.lines)
        return self._per_drive[drive if isinstance(drive, int) else drive.number]

    def close(self):
        if self._jf:
            self._jf.close()
            self._jf = None
