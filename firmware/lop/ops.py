# Long operations (Tables 5-10, FIG. 8, claim 22): system drive copy of the snapshot image, with
# incremental re-sync, and the RAID housekeeping that Table 2 names: rebuild, initialization and
# consistency check. They run as cooperative background work (run() is the asyncio task, step()
# the same slice for tests), report progress and the status words of Tables 7 and 10, log events,
# and keep their state in `lop.state` (atomic rename) so a killed firmware resumes them truthfully.
# The registry (which operation runs on which drive) is what the controller consults for Table 2
# rows and for the BUSY status of the copy's destination. Details and every word: lop/README.md.
import os
import sys
import json
import time
import asyncio
from micropython import const
from scsi import sense
from hw import xor
from scsi.sense import ScsiError

REBUILD = const(1)
INIT = const(2)
CHECK = const(3)
COPY = const(4)
NAMES = {REBUILD: "rebuild", INIT: "initialization", CHECK: "consistency check", COPY: "copy"}
SHORT = {REBUILD: "rebuild", INIT: "init", CHECK: "check", COPY: "copy"}

COPY_OPCODE = const(0x01)          # Table 5/8 byte 3 "0xXX copy system drive": chosen 0x01

# status words (Tables 7 and 10)
W_OK = const(0x0000)               # started / in progress
W_DATA_ERRORS = const(0x0001)      # irrecoverable data errors
W_NOT_READY = const(0x0002)        # one of the system drives is not ready
W_COMPLETED = const(0x0100)        # copy completed successfully
W_INVALID = const(0x0105)          # invalid system drive (start) / no copy in progress (status)
W_IN_PROGRESS = const(0x0106)      # a copy is already in progress
W_TERMINATED = const(0x0107)       # copy terminated by command

STATE_FILE = "lop.state"
TRACK_FILE = "lop.track"
SLICE_BLOCKS = const(512)          # I/O of one slice: one buffer slot (256 KiB)
SAVE_MS = const(500)               # progress persisted at most this often
HISTORY = const(8)


class Registry:
    def __init__(self):
        self.ops = []        # objects with .kind, .drives (tuple of sd numbers), .info()

    def add(self, op):
        self.ops.append(op)

    def remove(self, op):
        if op in self.ops:
            self.ops.remove(op)

    def running(self, kind, sd=None):
        # the running operation of `kind` (on system drive `sd` if given), or None
        for op in self.ops:
            if op.kind == kind and (sd is None or sd in op.drives):
                return op
        return None


class Retry(Exception):
    # no buffer slot free this slice: try again at the next one
    pass


class Refused(Exception):
    # a start that cannot be done: status word (Table 7 vocabulary), command-table code, message
    def __init__(self, word, code, msg):
        super().__init__(msg)
        self.word, self.code, self.msg = word, code, msg


def _drive_errors():
    from storage import raid
    from hw import iop
    return (raid.DriveError, iop.DiskError)


def _raw(d):
    return getattr(d, "drive", d)       # a CachedDrive's SystemDrive


def _sig(ctl, sd):
    import binascii
    e = ctl.cfg.sd[sd]
    if e is None:
        return 0
    return binascii.crc32(repr((e.level(), [tuple(v) for v in e.vdrive], e.blocks, e.stripe_kb)).encode())


# ---- operations ------------------------------------------------------------------------------
class Op:
    kind = 0
    _ids = [0]

    def __init__(self, m, sd, drives, rate):
        Op._ids[0] += 1
        self.id = Op._ids[0]
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
        d = {"id": self.id, "op": SHORT[self.kind], "name": NAMES[self.kind], "sd": self.sd,
             "drives": list(self.drives), "state": self.state, "percent": int(p * 10) / 10,
             "pct": int(p), "word": self.word, "words": "0x%04X" % self.word, "rate": self.rate,
             "started": self.started, "detail": self.detail}
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
        d = _raw(m.ctl.drives[sd])
        self.end = d.blocks
        rb = d.row_blocks
        if d.parity:
            self.step_blocks = rb * max(1, SLICE_BLOCKS // rb)
        else:
            self.step_blocks = SLICE_BLOCKS   # mirrors/striping: any range works

    def drive(self):
        d = self.m.ctl.drives.get(self.sd)
        return None if d is None else _raw(d)

    def step(self):
        d = self.drive()
        if d is None:
            return self.m.finish(self, "FAILED", W_NOT_READY, "SD%d is gone" % self.sd)
        n = min(self.step_blocks, self.end - self.pos)
        try:
            self.work(d, self.pos, n)
        except Retry:
            return False
        except _drive_errors() as e:
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
        self.m.ctl._refresh_status()
        return self.m.finish(self, "FAILED", W_DATA_ERRORS, str(e))

    def done(self, d):
        ctl = self.m.ctl
        for s in d.slots:
            if ctl.iop.state(s) == "rebuild":
                ctl.iop.set_online(s)
        ctl._refresh_status()
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
        self.m.ctl._refresh_status()
        return self.m.finish(self, "FAILED", W_NOT_READY, str(e))

    def done(self, d):
        return self.m.finish(self, "COMPLETED", W_COMPLETED, "drive zeroed")


class Check(RowOp):
    kind = CHECK

    def __init__(self, m, sd, rate, fix):
        RowOp.__init__(self, m, sd, rate)
        self.fix = fix
        self.found = 0
        self.unit = "sectors" if _raw(m.ctl.drives[sd]).mirror else "rows"

    def work(self, d, lba, n):
        self.found += d.check(lba, n, self.fix)

    def failed(self, e):
        self.m.ctl._refresh_status()
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
        from snapshot import engine as snapshot
        if eng.state != snapshot.ACTIVE or eng.snap_id != self.snap:
            if eng.state == snapshot.IDLE:
                # the snapshot terminate direct command (or the menu) ended it under the copy
                return m.finish(self, "TERMINATED", W_TERMINATED, "the snapshot was terminated by command")
            return m.finish(self, "FAILED", W_NOT_READY, "the snapshot ended (log overflow) before the copy completed")
        D = ctl.drives.get(self.dst)
        if D is None:
            return m.finish(self, "FAILED", W_NOT_READY, "SD%d is gone" % self.dst)
        b = ctl.buffer.take()
        if b < 0:
            return False                          # the buffer is full: try again next slice
        try:
            return self._slice(eng, D, ctl.buffer.view(b))
        finally:
            ctl.buffer.give(b)

    def _slice(self, eng, D, buf):
        todo = self.m.tracker.todo
        cb = self.cb
        per = SLICE_BLOCKS // cb                  # chunks per I/O
        c = self.pos
        n = self.end
        scanned = 0
        while c < n and not todo[c >> 3] & (1 << (c & 7)):
            c += 1
            scanned += 1
            if scanned >= 8192:
                self.pos = c
                return False
        if c >= n:
            self.pos = n
            return self.complete()
        k = 1
        while k < per and c + k < n and todo[(c + k) >> 3] & (1 << ((c + k) & 7)):
            k += 1
        lba = c * cb
        nb = min(k * cb, self.blocks - lba)
        mv = buf[:nb << 9]
        errs = _drive_errors()
        try:
            eng.read_backup(lba, mv)
        except errs as e:
            self.m.ctl._refresh_status()
            return self.m.finish(self, "FAILED", W_DATA_ERRORS,
                                 "snapshot image unreadable at block %d: %s" % (lba, e))
        try:
            D.write(lba, mv)
        except errs as e:
            self.m.ctl._refresh_status()
            return self.m.finish(self, "FAILED", W_NOT_READY, "SD%d write failed: %s" % (self.dst, e))
        self.copied += k
        self.blocks_copied += nb
        self.pos = c + k
        if self.pos >= n:
            return self.complete()
        return False

    def complete(self):
        # order matters for a kill at any point (lop/README.md): data on D, tracker, state, snapshot end
        m = self.m
        ctl = m.ctl
        try:
            ctl.flush_drive(self.dst)
        except ScsiError:
            return m.finish(self, "FAILED", W_NOT_READY, "SD%d could not be destaged" % self.dst)
        m.tracker.commit()
        m.finish(self, "COMPLETED", W_COMPLETED, "%s copy, %d of %d chunks moved" % (
            "full" if self.full else "incremental", self.copied, self.end))
        ctl.engine.terminate("copied to SD%d" % self.dst)
        return True


# ---- the manager (one per controller) --------------------------------------------------------
class Manager:
    def __init__(self, ctl):
        from lop import track as lop_track
        self.ctl = ctl
        self.path = ctl.state_dir + "/" + STATE_FILE
        self.rate = 100
        self.copy_word = W_INVALID      # Table 10 when no copy runs: the last copy's outcome
        self.copy_pair = None           # (source, destination) the last copy named: who may hear of it
        self.history = []
        self.last_save = time.ticks_ms()
        self.tracker = lop_track.Tracker(ctl.state_dir + "/" + TRACK_FILE, ctl.engine)
        if self.tracker.problem:
            ctl.events.log("warn", "CHANGE TRACKING RESET (%s): next copy is full" % self.tracker.problem)
        ctl.engine.listeners.append(self.tracker.writing)
        self._resume()

    @property
    def ops(self):
        return self.ctl.lops.ops

    # ---- persistence --------------------------------------------------------------------------
    def _read_state(self):
        try:
            with open(self.path) as f:
                st = json.loads(f.read())
        except OSError:
            return None
        except ValueError as e:            # (UnicodeError too: not text at all)
            st = e
        if not (isinstance(st, dict) and isinstance(st.get("ops", []), list)
                and isinstance(st.get("history", []), list)):
            self.ctl.events.log("error", "LONG OPERATION STATE UNREADABLE (%s): treated as none"
                                % (st if isinstance(st, Exception) else "not the file this board writes"))
            return None
        return st

    def save(self):
        st = {"v": 1, "rate": self.rate, "copy_word": self.copy_word, "copy_pair": self.copy_pair,
              "history": self.history, "ops": [op.save() for op in self.ops]}
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.write(json.dumps(st))
        os.rename(tmp, self.path)
        self.last_save = time.ticks_ms()
        for op in self.ops:
            if op.kind == INIT:
                op.safe = op.pos

    def _resume(self):
        st = self._read_state()
        if not st:
            return
        ctl = self.ctl
        r, w = st.get("rate"), st.get("copy_word")
        self.rate = r if type(r) is int and 1 <= r <= 100 else 100
        self.copy_word = w if type(w) is int and 0 <= w <= 0xFFFF else W_INVALID
        self.history = [h for h in st.get("history", []) if isinstance(h, dict)][-HISTORY:]
        self.copy_pair = _pair(st.get("copy_pair")) or self._last_copy_pair()
        from snapshot import engine as snapshot
        eng = ctl.engine
        # a copy completed just before the kill, whose snapshot was not yet ended: end it now
        for h in self.history[-1:]:
            if (h.get("op") == "copy" and h.get("state") == "COMPLETED" and eng.state == snapshot.ACTIVE
                    and h.get("snap") == eng.snap_id):
                eng.terminate("copied to SD%d (completed before restart)" % h.get("to", -1))
        for s in st.get("ops", []):
            if not isinstance(s, dict):
                continue
            try:
                op = self._revive(s)
            except Exception as e:     # a drive changed under it: report, never guess
                op = None
                why = str(e) or repr(e)
            else:
                why = None
            if op is None:
                word = W_NOT_READY
                info = {"op": SHORT.get(s.get("kind"), "?"), "name": NAMES.get(s.get("kind"), "?"),
                        "sd": s.get("sd"), "state": "TERMINATED", "word": word, "words": "0x%04X" % word,
                        "percent": 0, "pct": 0, "detail": "not resumed after restart: " + (why or "?"),
                        "started": s.get("started"), "finished": time.time()}
                if s.get("kind") == COPY:
                    self.copy_word = word
                    self.copy_pair = _pair([s.get("sd"), s.get("dst")])
                    info["to"] = s.get("dst")
                self._remember(info)
                ctl.events.log("error", "%s SD%s NOT RESUMED AFTER RESTART: %s"
                               % (NAMES.get(s.get("kind"), "?").upper(), s.get("sd"), why))
                continue
            op.resumed = True
            ctl.lops.add(op)
            ctl.events.log("info", "%s RESUMED AT %d%%" % (op.label(), op.percent()))
        self.save()

    def _revive(self, s):
        ctl = self.ctl
        kind, sd, rate = s["kind"], s["sd"], s.get("rate", self.rate)
        if kind == COPY:
            from snapshot import engine as snapshot
            eng = ctl.engine
            if eng.state != snapshot.ACTIVE or eng.snap_id != s["snap"]:
                raise Refused(W_NOT_READY, "NOT_READY", "its snapshot is gone")
            t = self.tracker
            if t.p != s["p"] or t.d != s["dst"]:
                raise Refused(W_NOT_READY, "NOT_READY", "change tracking lost")
            t.add_exceptions(eng)
            op = Copy(self, sd, s["p"], s["dst"], s["snap"], rate)
            op.copied = s.get("copied", 0)
            op.blocks_copied = s.get("blocks_copied", 0)
        else:
            if ctl.drives.get(sd) is None:
                raise Refused(W_NOT_READY, "NOT_READY", "SD%d is gone" % sd)
            if kind == REBUILD:
                op = Rebuild(self, sd, rate)
            elif kind == INIT:
                op = Init(self, sd, rate)
            elif kind == CHECK:
                op = Check(self, sd, rate, s.get("fix", False))
                op.found = s.get("found", 0)
            else:
                raise Refused(W_INVALID, "BAD_STATE", "unknown kind %r" % kind)
        op.pos = min(s.get("pos", 0), op.end)
        op.started = s.get("started", op.started)
        if kind == INIT:
            op.safe = op.pos
        return op

    def _last_copy_pair(self):
        # a state file from before copy_pair was kept: the drives of the last copy in the history
        for h in reversed(self.history):
            if h.get("op") == "copy":
                return _pair([h.get("sd"), h.get("to")])
        return None

    def _remember(self, info):
        self.history.append(info)
        if len(self.history) > HISTORY:
            self.history.pop(0)

    # ---- start / stop -------------------------------------------------------------------------
    def _rate(self, args):
        r = args.get("rate", self.rate)
        if type(r) is not int or not 1 <= r <= 100:
            raise Refused(W_INVALID, "BAD_ARGUMENT", "rate must be an integer 1..100 (percent of the time), got %r" % (r,))
        return r

    def start_copy(self, src, dst, rate=None, need_base=False, force_full=False, nexus=None):
        # `nexus`: the host that asks (the direct command), which may name only drives it sees
        # and whose reservations bind it; None from the console
        ctl = self.ctl
        from snapshot import engine as snapshot
        from storage import raid
        eng = ctl.engine
        if self.ctl.lops.running(COPY):
            raise Refused(W_IN_PROGRESS, "COPY_ACTIVE", "a copy is already in progress")
        for x, what in ((src, "source"), (dst, "destination")):
            if (not 0 <= x <= 7 or ctl.cfg.sd[x] is None or ctl.drives.get(x) is None
                    or nexus is not None and ctl.visible_lu(nexus[0], x) is None):
                raise Refused(W_INVALID, "INVALID_DRIVE", "%s system drive %d is not defined" % (what, x))
        if dst == src or ctl.cfg.sd[dst].is_log():
            raise Refused(W_INVALID, "INVALID_DRIVE", "SD%d cannot be the destination" % dst)
        if eng.log is None or eng.state != snapshot.ACTIVE:
            raise Refused(W_NOT_READY, "NO_SNAPSHOT", "no snapshot is active: initiate one first")
        if src != eng.log_sd and src != eng.primary_sd:
            raise Refused(W_INVALID, "INVALID_DRIVE",
                          "the source must be the log system drive (or the primary of the active snapshot)")
        p = eng.primary_sd
        if dst == p:
            raise Refused(W_INVALID, "INVALID_DRIVE", "SD%d is the primary" % dst)
        D = ctl.drives[dst]
        if D.blocks < eng.primary.blocks:
            raise Refused(W_INVALID, "INVALID_DRIVE", "SD%d has %d blocks, the primary SD%d %d: too small"
                          % (dst, D.blocks, p, eng.primary.blocks))
        for sd in (p, eng.log_sd, dst):
            if ctl.drives[sd].status() == raid.OFFLINE:
                raise Refused(W_NOT_READY, "NOT_READY", "SD%d is OFFLINE" % sd)
        for op in self.ops:
            if dst in op.drives and op.kind != REBUILD:
                raise Refused(W_NOT_READY, "LOP_ACTIVE", "a %s runs on SD%d" % (NAMES[op.kind], dst))
        if nexus is not None:
            ctl.check_reservation(nexus, src, False)
            ctl.check_reservation(nexus, dst, True)
        r = self.rate if rate is None else rate
        t = self.tracker
        sp, sdg = _sig(ctl, p), _sig(ctl, dst)
        if force_full or not t.tracking(p, dst, sp, sdg):
            if need_base:
                raise Refused(W_INVALID, "NO_BASE", "SD%d does not hold an earlier copy of SD%d: use copy" % (dst, p))
            t.setup(p, dst, eng.primary.blocks, sp, sdg, eng.snap_id)
        elif t.seen != eng.snap_id:
            t.rotate(eng.snap_id)
        t.add_exceptions(eng)          # writes since the initiate, made before tracking knew of P
        op = Copy(self, src, p, dst, eng.snap_id, r)
        self._launch(op, "%s, %d of %d chunks" % ("full" if op.full else "incremental", op.total, op.end))
        return op

    def start_row(self, kind, sd, rate, fix=False, standby=None):
        ctl = self.ctl
        from storage import raid
        from snapshot import engine as snapshot
        if not 0 <= sd <= 7 or ctl.cfg.sd[sd] is None:
            raise Refused(W_INVALID, "NO_SUCH_DRIVE", "system drive %r is not defined" % (sd,))
        if ctl.drives.get(sd) is None:
            raise Refused(W_NOT_READY, "NOT_READY", "SD%d is not built" % sd)
        for op in self.ops:
            if sd in op.drives:
                raise Refused(W_IN_PROGRESS, "LOP_ACTIVE", "a %s already runs on SD%d" % (NAMES[op.kind], sd))
        eng = ctl.engine
        snap = eng.state == snapshot.ACTIVE and sd in (eng.primary_sd, eng.log_sd)
        if kind == REBUILD and standby is not None:
            if snap:
                raise Refused(W_NOT_READY, "SNAPSHOT_ACTIVE", "SD%d is in the active snapshot; rebuild onto a replaced disk instead" % sd)
            self._use_standby(sd, standby)
        d = _raw(ctl.drives[sd])
        st = d.status()
        if kind == REBUILD:
            if "rebuild" not in [ctl.iop.state(s) for s in d.slots]:
                raise Refused(W_INVALID, "NOTHING_TO_REBUILD",
                              "SD%d has no replaced disk to rebuild (disk_replace a failed member, or name a standby slot)" % sd)
            if not (d.parity or d.mirror) or st == raid.OFFLINE:
                raise Refused(W_NOT_READY, "NOT_READY", "SD%d is %s and has no redundancy to rebuild from" % (sd, st))
        elif kind == INIT:
            if snap:
                raise Refused(W_NOT_READY, "SNAPSHOT_ACTIVE", "SD%d is in the active snapshot" % sd)
            if st != raid.ONLINE:
                raise Refused(W_NOT_READY, "NOT_READY", "SD%d is %s" % (sd, st))
        elif kind == CHECK:
            if st != raid.ONLINE:
                raise Refused(W_NOT_READY, "NOT_READY", "SD%d is %s: rebuild it first" % (sd, st))
        if kind == INIT:
            ctl.cache.discard(sd)          # the drive is being wiped: its cached writes go too
            op = Init(self, sd, rate)
        elif kind == REBUILD:
            op = Rebuild(self, sd, rate)
        else:
            op = Check(self, sd, rate, fix)
        self._launch(op, "%d blocks" % op.end)
        return op

    def _use_standby(self, sd, slot):
        # swap the failed member of SD`sd` for the unused disk in `slot`, which becomes a blank
        # member to rebuild
        ctl = self.ctl
        if type(slot) is not int or not 0 <= slot < len(ctl.names):
            raise Refused(W_INVALID, "NO_SUCH_SLOT", "no disk slot %r" % (slot,))
        if ctl.iop.state(slot) != "online":
            raise Refused(W_NOT_READY, "DISK_NOT_ONLINE", "standby disk %s is %s" % (ctl.names[slot], ctl.iop.state(slot)))
        for e in ctl.cfg.sd:
            if e is not None:
                for v in e.vdrive:
                    if ctl.slot_of(v[0], v[1]) == slot:
                        raise Refused(W_INVALID, "DISK_IN_USE", "disk %s belongs to a system drive" % ctl.names[slot])
        e = ctl.cfg.sd[sd]
        bad = [i for i, v in enumerate(e.vdrive) if ctl.iop.state(ctl.slot_of(v[0], v[1])) in ("failed", "removed")]
        if not bad:
            raise Refused(W_INVALID, "NOTHING_TO_REBUILD", "SD%d has no failed member to replace" % sd)
        i = bad[0]
        ch, tg, start, blocks = e.vdrive[i]
        if start + blocks > ctl.iop.disk_blocks:
            raise Refused(W_INVALID, "NO_SPACE", "the standby disk is too small")
        ctl.iop.replace(slot)              # blank, and untrusted until rebuilt
        e.vdrive[i] = (slot // ctl.tpc, slot % ctl.tpc, start, blocks)
        ctl.save()
        ctl._build_drives(sd)
        ctl.events.log("warn", "SD%d: STANDBY DISK %s REPLACES %d:%d" % (sd, ctl.names[slot], ch, tg))

    def _launch(self, op, what):
        self.ctl.lops.add(op)
        if op.kind == COPY:
            self.copy_word = W_OK
            self.copy_pair = [op.sd, op.dst]
        self.save()
        self.ctl.events.log("info", "%s STARTED (%s)" % (op.label(), what))

    def finish(self, op, state, word, detail, level=None):
        op.state, op.word, op.detail = state, word, detail
        op.finished = time.time()
        self.ctl.lops.remove(op)
        info = op.info()
        if op.kind == COPY:
            info["snap"] = op.snap
            self.copy_word = word
        self._remember(info)
        self.save()
        if level is None:
            level = "info" if state == "COMPLETED" else ("warn" if state == "TERMINATED" else "error")
        self.ctl.events.log(level, "%s %s: %s" % (op.label(), state, detail))
        return True

    def stop(self, op, why="by command"):
        return self.finish(op, "TERMINATED", W_TERMINATED, "terminated " + why)

    # ---- the scheduler's slice ----------------------------------------------------------------
    def step(self):
        for op in list(self.ops):
            if op.state != "RUNNING":
                continue
            try:
                op.step()
            except Refused as e:
                self.finish(op, "FAILED", e.word, e.msg)
            except Exception as e:      # a fault must not stop the scheduler or hide the op
                sys.print_exception(e, sys.stderr)
                self.finish(op, "FAILED", W_NOT_READY, "firmware fault: %r" % e)
        if self.ops and time.ticks_diff(time.ticks_ms(), self.last_save) >= SAVE_MS:
            self.save()
        elif any(op.kind == INIT for op in self.ops):
            self.save()              # keeps the host-write boundary close behind the zeroing
        return len(self.ops)

    # ---- what the commands see ----------------------------------------------------------------
    def table10(self, nexus=None):
        # a host hears of the last copy only when it sees both drives the copy named (lop/README.md)
        if nexus is not None and not self._sees_copy(nexus[0]):
            return W_INVALID
        return W_OK if self.ctl.lops.running(COPY) else self.copy_word

    def _sees_copy(self, initiator):
        pair = self.copy_pair
        if pair is None:
            return False
        return (self.ctl.visible_lu(initiator, pair[0]) is not None
                and self.ctl.visible_lu(initiator, pair[1]) is not None)

    def status(self, sd=None):
        ops = [op.info() for op in self.ops if sd is None or sd in op.drives]
        for h in reversed(self.history):
            if sd is None or h.get("sd") == sd or sd in h.get("drives", ()):
                ops.append(h)
        t = self.tracker
        tr = {"primary": t.p, "backup": t.d, "chunk_kb": t.cb // 2, "chunks": t.nchunks,
              "full_copy_needed": bool(t.full)} if t.p >= 0 else None
        if tr is not None:
            tr.update(t.counts())
        return {"lops": ops, "copy_word": "0x%04X" % self.table10(), "rate": self.rate, "tracking": tr}


def _pair(v):
    # [source, destination] as lop.state keeps it, or None when it is not that
    if isinstance(v, list) and len(v) == 2 and all(type(x) is int and 0 <= x <= 7 for x in v):
        return v
    return None


def _mgr(ctl):
    m = getattr(ctl, "lop_mgr", None)
    if m is None:
        m = Manager(ctl)
        ctl.lop_mgr = m
    return m


def drive_changed(ctl, sd):
    # a system drive was deleted or (re)created: if it is half of the tracked pair, forget the pair
    # so the next copy is full (config's sd_create/sd_delete call this)
    t = _mgr(ctl).tracker
    if sd in (t.p, t.d):
        ctl.events.log("info", "CHANGE TRACKING OF SD%d -> SD%d DROPPED: SD%d CHANGED" % (t.p, t.d, sd))
        t.drop()


def check_init(ctl, sd, lba, n, write):
    # a host read of blocks a running initialization has not zeroed yet, or a write past those
    # whose zeroing is persisted (`safe`: a restart zeroes again from there, and the write would
    # be lost): not ready (format in progress), never the old data it is about to erase
    for op in ctl.lops.ops:
        if op.kind == INIT and op.sd == sd and lba + n > (op.safe if write else op.pos):
            raise ScsiError(sense.NOT_READY, 0x04, 0x04)


def auto_rebuild(ctl, slot):
    # a disk just replaced in `slot`: the rebuild of each drive it is a member of starts at once
    # when the controller parameter says so (the DAC960's automatic rebuild; on by default).
    # -> the system drives whose rebuild started; a drive that cannot rebuild now gets an event
    if not ctl.cfg.auto_rebuild():
        return []
    m = _mgr(ctl)
    started = []
    for sd in sorted(ctl.drives):
        if slot not in _raw(ctl.drives[sd]).slots:
            continue
        try:
            m.start_row(REBUILD, sd, m.rate)
            started.append(sd)
        except Refused as e:
            ctl.events.log("warn", "SD%d: AUTOMATIC REBUILD NOT STARTED: %s" % (sd, e.msg))
    return started


def boot(ctl):
    # install the write hook and resume persisted operations (the controller's boot calls this)
    return _mgr(ctl)


# ---- direct commands (Tables 5-10) -----------------------------------------------------------
def direct(ctl, cdb, buf, nexus):
    m = _mgr(ctl)
    dcmd = cdb[2]
    # LUN bits (byte 1, 7-5) ignored; byte 1 bits 4-0 reserved; control byte zero
    if cdb[1] & 0x1F or cdb[9] or cdb[3] != COPY_OPCODE:
        raise ScsiError(sense.ILLEGAL_REQUEST, 0x24, 0x00)
    if dcmd == 0x44:
        if cdb[6]:
            raise ScsiError(sense.ILLEGAL_REQUEST, 0x24, 0x00)
        try:
            m.start_copy(cdb[4], cdb[5], nexus=nexus)
            word = W_OK
        except Refused as e:
            word = e.word
    else:
        if cdb[4] or cdb[5] or cdb[6]:
            raise ScsiError(sense.ILLEGAL_REQUEST, 0x24, 0x00)
        word = m.table10(nexus)
    alloc = (cdb[7] << 8) | cdb[8]
    out = buf[:2]
    out[0] = word >> 8
    out[1] = word & 0xFF
    return out[:alloc if alloc < 2 else 2]


# ---- firmware command table: lop_start / lop_status / lop_stop -------------------------------
KINDS = {"copy": COPY, "resync": COPY, "rebuild": REBUILD, "init": INIT, "initialize": INIT,
         "initialization": INIT, "check": CHECK, "consistency": CHECK}


def _sd_arg(args, *keys):
    for k in keys:
        if k in args:
            v = args[k]
            if type(v) is not int or not 0 <= v <= 7:
                raise Refused(W_INVALID, "BAD_ARGUMENT", "'%s' must be a system drive 0..7, got %r" % (k, v))
            return v
    raise Refused(W_INVALID, "BAD_ARGUMENT", "'%s' is required" % keys[0])


def _start(m, args):
    name = args.get("op")
    if name == "rate":
        m.rate = m._rate(args)
        for op in m.ops:
            op.rate = m.rate
        m.save()
        return {"rate": m.rate}
    kind = KINDS.get(name) if isinstance(name, str) else None
    if kind is None:
        raise Refused(W_INVALID, "BAD_ARGUMENT", "op must be one of copy, resync, rebuild, init, check or rate; got %r" % (name,))
    rate = m._rate(args)
    if kind == COPY:
        src = _sd_arg(args, "sd", "src", "source")
        dst = _sd_arg(args, "to", "dst", "target")
        full = args.get("full", False)
        if not isinstance(full, bool):
            raise Refused(W_INVALID, "BAD_ARGUMENT", "full must be true or false")
        op = m.start_copy(src, dst, rate, need_base=(name == "resync"), force_full=full)
    else:
        sd = _sd_arg(args, "sd")
        fix = args.get("fix", False)
        if not isinstance(fix, bool):
            raise Refused(W_INVALID, "BAD_ARGUMENT", "fix must be true or false")
        standby = args.get("standby")
        op = m.start_row(kind, sd, rate, fix=fix, standby=standby)
    r = op.info()
    r["words"] = "0x%04X" % W_OK
    return r


def _find(m, args):
    if "id" in args:
        for op in m.ops:
            if op.id == args["id"]:
                return op
        raise Refused(W_INVALID, "NO_SUCH_OPERATION", "no running long operation has id %r" % (args["id"],))
    sd = _sd_arg(args, "sd")
    for op in m.ops:
        if op.sd == sd or sd in op.drives:
            return op
    raise Refused(W_INVALID, "NO_OPERATION", "no long operation runs on SD%d" % sd)


def command(ctl, name, args):
    from control.controller import CmdError
    try:
        m = _mgr(ctl)
        if name == "start":
            return _start(m, args)
        if name == "status":
            sd = _sd_arg(args, "sd") if "sd" in args else None
            return m.status(sd)
        if name == "stop":
            op = _find(m, args)
            m.stop(op)
            return op.info()
    except Refused as e:
        raise CmdError(e.code, "%s (word 0x%04X)" % (e.msg, e.word))
    raise CmdError("UNKNOWN_COMMAND", "lop_%s does not exist" % name)


# ---- the scheduler ---------------------------------------------------------------------------
def step(ctl):
    # one slice of every running operation (the tests' synchronous scheduler); answers how many run
    return _mgr(ctl).step()


def finish_all(ctl, limit=1 << 30):
    # run slices until nothing runs (tests, benches); answers the slices taken
    n = 0
    while step(ctl) and n < limit:
        n += 1
    return n


async def run(ctl, ticks_us=time.ticks_us, sleep_ms=asyncio.sleep_ms):
    # the background task: a slice, then a pause that leaves (100 - rate)% of the time to the host
    # (measured in microseconds: a slice often takes less than a millisecond, and the pause it
    # owes is carried over until it amounts to a whole millisecond). The clock and the pause are
    # parameters so that a test can drive them.
    m = _mgr(ctl)
    owed = 0
    while True:
        if not m.ops:
            owed = 0
            await sleep_ms(20)
            continue
        t0 = ticks_us()
        try:
            m.step()
        except Exception as e:
            sys.print_exception(e, sys.stderr)
        dt = time.ticks_diff(ticks_us(), t0)
        rate = min([op.rate for op in m.ops] or [m.rate])
        if rate < 100:
            owed += dt * (100 - rate) // rate
        await sleep_ms(owed // 1000)
        owed %= 1000
