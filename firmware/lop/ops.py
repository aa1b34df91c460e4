# The long operations themselves (Tables 5-10, FIG. 8, claim 22): the system drive copy of the
# snapshot image, with incremental re-sync, and the RAID housekeeping that Table 2 names: rebuild,
# initialization and consistency check. Each does one slice of work per step(), reports progress
# and the status words of Tables 7 and 10, and ends through its manager (lop/manager.py), which
# keeps them across restarts. Details and every word: lop/README.md.
import time
from micropython import const
from hw import xor
from hw import iop as iopmod
from storage import raid
from snapshot import engine as snapshot
from lop.errors import Retry

REBUILD = const(1)
INIT = const(2)
CHECK = const(3)
COPY = const(4)
NAMES = {REBUILD: "rebuild", INIT: "initialization", CHECK: "consistency check", COPY: "copy"}
SHORT = {REBUILD: "rebuild", INIT: "init", CHECK: "check", COPY: "copy"}

# status words (Tables 7 and 10)
W_OK = const(0x0000)               # started / in progress
W_DATA_ERRORS = const(0x0001)      # irrecoverable data errors
W_NOT_READY = const(0x0002)        # one of the system drives is not ready
W_COMPLETED = const(0x0100)        # copy completed successfully
W_INVALID = const(0x0105)          # invalid system drive (start) / no copy in progress (status)
W_IN_PROGRESS = const(0x0106)      # a copy is already in progress
W_TERMINATED = const(0x0107)       # copy terminated by command

SLICE_BLOCKS = const(512)          # one buffer slot (256 KiB): a slice of the housekeeping operations
SPAN = const(2)                    # buffer slots of a copy's slice, when as many adjacent ones are free
COW_SLOTS = const(2)               # buffer slots a copy leaves free for copy-on-write (hw/board.py)
FLYING = const(8)                  # slices of a copy the I/O processor's thread moves at once (README)
# the thread's chains not yet ended at which the main loop reads the next slice itself (README);
# a variable, not a const, so a test can make either side take every slice
BUSY = 4

DRIVE_ERRORS = (raid.DriveError, iopmod.DiskError)


def raw(d):
    return getattr(d, "drive", d)       # a write-back drive's SystemDrive under its cache


_last_id = [0]                      # operations are numbered from 1 for the life of the firmware


class Op:
    kind = 0

    def __init__(self, m, sd, drives, rate):
        _last_id[0] += 1
        self.id = _last_id[0]
        self.m = m
        self.sd = sd
        self.drives = drives
        self.rate = rate
        self.state = "RUNNING"
        self.word = W_OK
        self.detail = ""
        self.pos = 0            # blocks (or chunks for the copy) done, in order
        self.end = 1
        self.started = time.time()
        self.finished = None
        self.resumed = False

    def percent(self):
        return 100.0 if self.state == "COMPLETED" else min(100.0, 100.0 * self.pos / self.end if self.end else 0.0)

    def info(self):
        p = self.percent()
        # done in tenths, cut rather than rounded up (100 only once complete); one key per fact
        d = {"id": self.id, "op": SHORT[self.kind], "sd": self.sd,
             "drives": list(self.drives), "state": self.state, "percent": int(p * 10) / 10,
             "word": self.word, "rate": self.rate, "started": self.started, "detail": self.detail}
        if self.finished is not None:
            d["finished"] = self.finished
        return d

    def save(self):
        return {"kind": self.kind, "sd": self.sd, "pos": self.pos, "rate": self.rate,
                "started": self.started, "id": self.id}

    def label(self):
        return "%s SD%d" % (NAMES[self.kind].upper(), self.sd)


class RowOp(Op):
    # rebuild, initialization and check walk the drive in slices of whole rows (storage/README.md)
    def __init__(self, m, sd, rate):
        Op.__init__(self, m, sd, (sd,), rate)
        d = raw(m.ctl.drives[sd])
        self.end = d.blocks
        rb = d.row_blocks
        if d.parity:
            self.step_blocks = rb * max(1, SLICE_BLOCKS // rb)
        else:
            self.step_blocks = SLICE_BLOCKS   # mirrors/striping: any range works

    def drive(self):
        d = self.m.ctl.drives.get(self.sd)
        return None if d is None else raw(d)

    def step(self):
        d = self.drive()
        if d is None:
            return self.m.finish(self, "FAILED", W_NOT_READY, "SD%d is gone" % self.sd)
        n = min(self.step_blocks, self.end - self.pos)
        try:
            self.work(d, self.pos, n)
        except Retry:
            return False
        except DRIVE_ERRORS as e:
            return self.failed(e)
        self.pos += n
        if self.pos >= self.end:
            return self.done(d)
        return False


class Rebuild(RowOp):
    kind = REBUILD

    def work(self, d, lba, n):
        d.rebuild(lba, n)

    def failed(self, e):
        # reading the survivors failed beyond redundancy: what the new disk should hold is lost
        self.m.ctl.refresh_status()
        return self.m.finish(self, "FAILED", W_DATA_ERRORS, str(e))

    def done(self, d):
        ctl = self.m.ctl
        for s in d.slots:
            if ctl.iop.state(s) == "rebuild":
                ctl.iop.set_online(s)
        ctl.refresh_status()
        return self.m.finish(self, "COMPLETED", W_COMPLETED, "redundancy restored")


class Init(RowOp):
    kind = INIT

    def __init__(self, m, sd, rate):
        RowOp.__init__(self, m, sd, rate)
        self.safe = 0           # host writes are accepted below this (persisted) boundary
        if self.step_blocks > SLICE_BLOCKS:
            self.step_blocks = SLICE_BLOCKS   # rows wider than a buffer slot: partial-row writes

    def work(self, d, lba, n):
        # a buffer slot of zeros for this slice only (the buffer is shared with copy-on-write)
        buf = self.m.ctl.buffer
        b = buf.take()
        if b < 0:
            raise Retry()
        try:
            z = buf.view(b)[:n << 9]
            xor.zero(z, n << 9)
            self.m.tracker.writing(self.sd, lba, n)
            d.write(lba, z)
        finally:
            buf.give(b)

    def failed(self, e):
        self.m.ctl.refresh_status()
        return self.m.finish(self, "FAILED", W_NOT_READY, str(e))

    def done(self, d):
        return self.m.finish(self, "COMPLETED", W_COMPLETED, "drive zeroed")


class Check(RowOp):
    kind = CHECK

    def __init__(self, m, sd, rate, fix):
        RowOp.__init__(self, m, sd, rate)
        self.fix = fix
        self.found = 0
        self.unit = "sectors" if raw(m.ctl.drives[sd]).mirror else "rows"

    def work(self, d, lba, n):
        self.found += d.check(lba, n, self.fix)

    def failed(self, e):
        self.m.ctl.refresh_status()
        return self.m.finish(self, "FAILED", W_NOT_READY, str(e))

    def done(self, d):
        what = "%d inconsistent %s%s" % (self.found, self.unit, (" fixed" if self.fix and self.found else ""))
        return self.m.finish(self, "COMPLETED", W_COMPLETED, what, "warn" if self.found else "info")

    def info(self):
        i = Op.info(self)
        i.update({"found": self.found, "unit": self.unit, "fix": self.fix})
        return i

    def save(self):
        s = Op.save(self)
        s.update({"fix": self.fix, "found": self.found})
        return s


class Slice:
    # a slice of a copy: blocks lba..lba+nb, the last of them finishing k chunks from c (k 0: a
    # piece of chunk c), in buffer slots b..b+n-1. One the I/O processor's thread writes holds
    # its slots until it has landed (Controller.settle calls landed)
    def __init__(self, op, b, n, c, k, lba, nb, mv):
        self.op, self.b, self.n, self.c, self.k, self.lba, self.nb, self.mv = op, b, n, c, k, lba, nb, mv

    def landed(self, failed):
        self.op.landed(self, failed)


class Copy(Op):
    # FIG. 8: the snapshot image (what the backup LUN shows) onto the backup system drive D;
    # incremental when the tracker knows D as an image of P (claim 22)
    kind = COPY

    def __init__(self, m, src, p, dst, snap, rate):
        eng = m.ctl.engine
        Op.__init__(self, m, src, (eng.log_sd, p, dst), rate)
        self.p, self.dst, self.snap = p, dst, snap
        t = m.tracker
        self.cb = t.cb
        self.blocks = eng.primary.blocks
        self.full = bool(t.full)
        self.total = t.plan()                    # chunks to move
        self.end = t.nchunks
        self.copied = 0                          # chunks moved so far
        self.blocks_copied = 0
        self.flying = []                         # slices the I/O processor's thread moves (Slice)
        self.planned = 0                         # the next chunk to hand it: pos is behind by them
        self.part = 0                            # blocks of chunk `planned` already in slices
        self.pieces = 0                          # blocks of chunk `pos` already landed
        self.read_beside = 0                     # slices read here while the thread wrote others

    def percent(self):
        if self.state == "COMPLETED":
            return 100.0
        if self.full or not self.total:
            return Op.percent(self)
        return min(100.0, 100.0 * self.copied / self.total)

    def info(self):
        i = Op.info(self)
        i.update({"source": self.sd, "primary": self.p, "log": self.drives[0], "to": self.dst,
                  "target": self.dst, "mode": "full" if self.full else "incremental",
                  "chunks": self.total, "chunks_copied": self.copied, "chunk_kb": self.cb // 2,
                  "blocks_copied": self.blocks_copied})
        return i

    def save(self):
        s = Op.save(self)
        s.update({"p": self.p, "dst": self.dst, "snap": self.snap, "copied": self.copied,
                  "blocks_copied": self.blocks_copied})
        return s

    def label(self):
        return "COPY SD%d -> SD%d" % (self.p, self.dst)

    def step(self):
        m = self.m
        ctl = m.ctl
        eng = ctl.engine
        if eng.state != snapshot.ACTIVE or eng.snap_id != self.snap:
            return self._ended(eng)
        D = ctl.drives.get(self.dst)
        if D is None:
            return m.finish(self, "FAILED", W_NOT_READY, "SD%d is gone" % self.dst)
        if self.flying:
            ctl.settle_own()                      # slices the thread has moved
            if len(self.flying) >= FLYING or (self.flying and ctl.buffer.free <= COW_SLOTS):
                return False                      # (a second slice only beside copy-on-write's slots)
        elif self.planned != self.pos:
            self.planned = self.pos
            self.part = 0
        c, k = self._next()
        if k < 0:
            return False                          # scanned far enough for one step
        if not k:
            return False if self.flying else self.complete()
        lba = c * self.cb + self.part             # (part: blocks of chunk c already in slices)
        end = min((c + k) * self.cb, self.blocks)
        ch = self._chains(D, end - lba)
        s = self._slice(ctl.buffer, c, k, lba, end, SPAN if ch is not None else 1)
        if s is None:
            return False                          # the buffer is full: try again next slice
        mv = s.mv
        handed = False
        try:
            if ch is not None:
                if ch.submitted - ch.done < BUSY and self._whole(eng):
                    handed = raid.chained((eng.primary, eng.log, D), s, self._both, D, lba, mv)
                if not handed and ch.room():
                    # the thread is busy (or cannot read the image): the slice is read here,
                    # beside it, and only D's write is handed over, so both cores move data
                    if not self._read(eng, lba, mv):
                        return True
                    handed = raid.chained((D,), s, self._put, D, lba, mv)
                    self.read_beside += handed > 0
                if handed:
                    self.flying.append(s)
                    return False
            if self.flying:
                self.planned, self.part = c, lba - c * self.cb   # (this slice again, once those landed)
                return False
            if not self._move(eng, D, lba, mv):
                return True
        finally:
            if not handed:
                ctl.buffer.give_span(s.b, s.n)
        self._moved(c, s.k, s.nb)
        if self.pos >= self.end:
            return self.complete()
        return False

    def _slice(self, buf, c, k, lba, end, most):
        # the next slice, blocks lba..end of the run of k chunks from c (or less), in up to
        # `most` adjacent buffer slots (two always left to copy-on-write when there are that
        # many): None when no slot is free. `planned` and `part` move past it
        cb = self.cb
        want = min((end - lba + SLICE_BLOCKS - 1) // SLICE_BLOCKS, most)
        if want > buf.free - COW_SLOTS:
            want = max(1, buf.free - COW_SLOTS)
        b, n = buf.take_span(want)
        if b < 0:
            return None
        done = k                                  # chunks this slice finishes
        if end - lba > n * SLICE_BLOCKS:
            # more than the slots hold: up to the last chunk boundary that fits, else (a chunk
            # larger than the slots) a piece of chunk c, the rest of it in the next slices
            end = lba + n * SLICE_BLOCKS
            if end // cb > c:
                end = end // cb * cb
            done = end // cb - c
        self.planned = c + done
        self.part = end - self.planned * cb if done < k else 0
        return Slice(self, b, n, c, done, lba, end - lba, buf.span(b, n, (end - lba) << 9))

    def _next(self):
        # the next run of chunks to copy from `planned`: (first, count); count 0 at the end, -1
        # when a step's worth of chunks was passed over
        todo = self.m.tracker.todo
        per = max(1, SPAN * SLICE_BLOCKS // self.cb)   # chunks per slice
        c = self.planned
        n = self.end
        scanned = 0
        while c < n:
            bits = todo[c >> 3] >> (c & 7)
            if bits & 1:
                break
            if bits:
                c += 1
            else:
                c = (c | 7) + 1               # the rest of this byte is clear: the next byte
                if c > n:
                    c = n
            scanned += 1
            if scanned >= 8192:
                self.planned = c
                if not self.flying:
                    self.pos = c
                return c, -1
        if c >= n:
            self.planned = n
            if not self.flying:
                self.pos = n
            return n, 0
        k = 1
        while k < per and c + k < n and todo[(c + k) >> 3] & (1 << ((c + k) & 7)):
            k += 1
        return c, k

    def _chains(self, D, nb):
        # the I/O processor's thread, when a slice of nb blocks may go to it (storage/README.md):
        # at least a slot's worth (scattered chunks of an incremental copy cost more in wake-ups
        # than they gain), at full rate (a lower rate is a share of the controller's time, which
        # the thread's work would escape), onto a plain ONLINE drive (a write-back drive's data
        # is in its cache; a degraded one is written on the main loop), and with more than the
        # slots copy-on-write keeps free (a slot the thread held would be one of them: the slice
        # is moved here, its slot back at once); else None
        ctl = self.m.ctl
        if nb < SLICE_BLOCKS or self.rate < 100 or type(D) is not raid.SystemDrive \
                or D.status() != raid.ONLINE or ctl.buffer.free <= COW_SLOTS:
            return None
        return ctl.iop.chains

    def _whole(self, eng):
        # whether the thread may read the image too: it is on plain drives read here (not a
        # write-back cache, not what a pair's follower must check against its partner's news;
        # one not ONLINE, raid.chained refuses, and the slice is read beside the thread)
        return not (eng.follower or eng.pending_k) and type(eng.primary) is raid.SystemDrive \
            and type(eng.log) is raid.SystemDrive

    def landed(self, s, failed):
        # (Controller.settle) a slice the thread moved, in order; one a disk failed under is
        # moved again here, degraded
        ctl = self.m.ctl
        self.flying.remove(s)
        try:
            if self.state != "RUNNING":
                return
            if failed:
                D = ctl.drives.get(self.dst)
                if D is None or not self._move(ctl.engine, D, s.lba, s.mv):
                    if self.state == "RUNNING":
                        self.m.finish(self, "FAILED", W_NOT_READY, "SD%d is gone" % self.dst)
                    return
            self._moved(s.c, s.k, s.nb)
        finally:
            ctl.buffer.give_span(s.b, s.n)

    def _both(self, D, lba, mv):
        # the image's blocks onto D (what a whole slice plans)
        self.m.ctl.engine.read_backup(lba, mv)
        D.write(lba, mv)

    def _put(self, D, lba, mv):
        # what a slice read here plans
        D.write(lba, mv)

    def _ended(self, eng):
        m = self.m
        if eng.state == snapshot.IDLE:
            # the snapshot terminate direct command (or the menu) ended it under the copy
            return m.finish(self, "TERMINATED", W_TERMINATED, "the snapshot was terminated by command")
        return m.finish(self, "FAILED", W_NOT_READY, "the snapshot ended (log overflow) before the copy completed")

    def _move(self, eng, D, lba, mv):
        # the slice here: False once the copy has failed
        if not self._read(eng, lba, mv):
            return False
        try:
            D.write(lba, mv)
        except DRIVE_ERRORS as e:
            self.m.ctl.refresh_status()
            self.m.finish(self, "FAILED", W_NOT_READY, "SD%d write failed: %s" % (self.dst, e))
            return False
        return True

    def _read(self, eng, lba, mv):
        # the image's blocks into the slice's buffer: False once the copy has failed
        try:
            eng.read_backup(lba, mv)
        except DRIVE_ERRORS as e:
            self.m.ctl.refresh_status()
            self.m.finish(self, "FAILED", W_DATA_ERRORS, "snapshot image unreadable at block %d: %s" % (lba, e))
            return False
        except snapshot.Ended:
            self._ended(eng)    # (a follower heard of it during the read: nothing of it is written)
            return False
        return True

    def _moved(self, c, k, nb):
        # (blocks of a chunk moved in pieces count once it is whole: a restart moves it again)
        if k:
            self.copied += k
            self.blocks_copied += nb + self.pieces
            self.pieces = 0
            self.pos = c + k
        else:
            self.pieces += nb

    def complete(self):
        # order matters for a kill at any point (lop/README.md): data on D, tracker, state, snapshot end
        # (every slice has landed: the thread has written them)
        m = self.m
        ctl = m.ctl
        if not ctl.destaged(self.dst):
            return m.finish(self, "FAILED", W_NOT_READY, "SD%d could not be destaged" % self.dst)
        m.tracker.commit()
        m.finish(self, "COMPLETED", W_COMPLETED, "%s copy, %d of %d chunks moved" % (
            "full" if self.full else "incremental", self.copied, self.end))
        ctl.engine.terminate("copied to SD%d" % self.dst)
        return True
