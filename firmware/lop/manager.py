# The long-operation manager (one per controller): starts operations after checking what Table 7
# and the command table require, finishes them, keeps them in `lop.state` (atomic rename) so a
# killed firmware resumes them truthfully, and is the snapshot engine's write hook for change
# tracking (lop/track.py). The registry (which operation runs on which drive) is what the
# controller consults for Table 2 rows and the BUSY status of the copy's destination.
# What it uses of the controller, and why duck-typed: lop/README.md.
import os
import sys
import json
import time
import binascii
from micropython import const
from hw import events
from storage import raid
from snapshot import engine as snapshot
from lop import ops
from lop import track
from lop.errors import Refused
from lop.ops import REBUILD, INIT, CHECK, COPY, NAMES, SHORT, W_OK, W_NOT_READY, W_INVALID, \
    W_IN_PROGRESS, W_TERMINATED

STATE_FILE = "lop.state"
TRACK_FILE = "lop.track"
SAVE_MS = const(500)               # progress persisted at most this often
HISTORY = const(8)


class Registry:
    def __init__(self):
        self.ops = []        # objects with .kind, .drives (tuple of sd numbers), .info()
        self.now = ()        # the same, as a tuple made when they change: what a slice walks
        # a system drive holding a half-made copy (flag per sd): its logical units answer NOT
        # READY until a copy onto it completes or the operator clears it (lop/README.md)
        self.incomplete = bytearray(8)

    def add(self, op):
        self.ops.append(op)
        self.now = tuple(self.ops)

    def remove(self, op):
        if op in self.ops:
            self.ops.remove(op)
            self.now = tuple(self.ops)

    def running(self, kind, sd=None):
        # the running operation of `kind` (on system drive `sd` if given), or None
        for op in self.ops:
            if op.kind == kind and (sd is None or sd in op.drives):
                return op
        return None


def _sig(ctl, sd):
    # what a system drive is made of: a tracked pair whose drive was redefined is not tracked
    e = ctl.cfg.sd[sd]
    if e is None:
        return 0
    return binascii.crc32(repr((e.level(), [tuple(v) for v in e.vdrive], e.blocks, e.stripe_kb)).encode())


class Manager:
    def __init__(self, ctl):
        self.ctl = ctl
        self.path = ctl.own_dir + "/" + STATE_FILE
        self.rate = 100
        self.copy_word = W_INVALID      # Table 10 when no copy runs: the last copy's outcome
        self.copy_pair = None           # (source, destination) the last copy named: who may hear of it
        self.history = []
        self.last_save = time.ticks_ms()
        # in the state directory itself: of a pair, the primary's owner keeps it (track.py)
        self.tracker = track.Tracker(ctl.state_dir + "/" + TRACK_FILE, ctl.engine)
        if self.tracker.problem:
            ctl.events.log("warn", "CHANGE TRACKING RESET (%s): next copy is full" % self.tracker.problem)
        ctl.engine.listeners.append(self.tracker.writing)
        self._resume()

    @property
    def ops(self):
        return self.ctl.lops.ops

    # ---- persistence --------------------------------------------------------------------------
    def _read_state(self, path):
        try:
            with open(path) as f:
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
              "incomplete": self.incomplete_drives(),
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
        st = self._read_state(self.path)
        if not st:
            return
        ctl = self.ctl
        r, w = st.get("rate"), st.get("copy_word")
        self.rate = r if type(r) is int and 1 <= r <= 100 else 100
        self.copy_word = w if type(w) is int and 0 <= w <= 0xFFFF else W_INVALID
        self.history = [h for h in st.get("history", []) if isinstance(h, dict)][-HISTORY:]
        self.copy_pair = _pair(st.get("copy_pair")) or self._last_copy_pair()
        self._mark_incomplete(st)
        eng = ctl.engine
        # a copy completed just before the kill, whose snapshot was not yet ended: end it now
        for h in self.history[-1:]:
            if (h.get("op") == "copy" and h.get("state") == "COMPLETED" and eng.state == snapshot.ACTIVE
                    and h.get("snap") == eng.snap_id):
                eng.terminate("copied to SD%d (completed before restart)" % h.get("to", -1))
        self._revive_all(st.get("ops", []), "RESTART")
        self.save()

    def adopt(self, other_dir):
        # failover: the dead partner's long operations resume here; its state file is set aside
        # so a restart of the partner cannot run them a second time
        path = other_dir + "/" + STATE_FILE
        st = self._read_state(path)
        if not st:
            return
        os.rename(path, path + ".adopted")
        self._mark_incomplete(st)
        self._revive_all(st.get("ops", []), "FAILOVER")
        self.save()

    def _mark_incomplete(self, st):
        inc = st.get("incomplete")
        for sd in inc if isinstance(inc, list) else ():
            if type(sd) is int and 0 <= sd <= 7:
                self.ctl.lops.incomplete[sd] = 1

    def hand_back(self, sd, home):
        # failback: an operation on a drive going back to its controller leaves here, as saved,
        # to resume there (adopt_saved) -> the saved operations
        out = []
        for op in list(self.ops):
            if op.sd == sd:
                out.append(op.save())
                self.ctl.lops.remove(op)
                self.ctl.events.log("info", "%s HANDED TO CONTROLLER %d AT %d%%" % (op.label(), home, op.percent()))
        if out:
            self.save()
        return out

    def adopt_saved(self, saved, when):
        # the operations the partner handed over with their drives
        if saved:
            self._revive_all(saved, when)
            self.save()

    def _revive_all(self, saved, when):
        ctl = self.ctl
        for s in saved:
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
                info = {"op": SHORT.get(s.get("kind"), "?"),
                        "sd": s.get("sd"), "state": "TERMINATED", "word": word,
                        "percent": 0, "detail": "not resumed after restart: " + (why or "?"),
                        "started": s.get("started"), "finished": time.time()}
                if s.get("kind") == COPY:
                    self.copy_word = word
                    self.copy_pair = _pair([s.get("sd"), s.get("dst")])
                    info["to"] = s.get("dst")
                self._remember(info)
                ctl.events.log("error", "%s SD%s NOT RESUMED AFTER %s: %s"
                               % (NAMES.get(s.get("kind"), "?").upper(), s.get("sd"), when, why))
                continue
            op.resumed = True
            ctl.lops.add(op)
            ctl.events.log("info", "%s RESUMED AT %d%% AFTER %s" % (op.label(), op.percent(), when))

    def _revive(self, s):
        ctl = self.ctl
        kind, sd, rate = s["kind"], s["sd"], s.get("rate", self.rate)
        if kind == COPY:
            eng = ctl.engine
            if eng.state != snapshot.ACTIVE or eng.snap_id != s["snap"]:
                raise Refused(W_NOT_READY, "NOT_READY", "its snapshot is gone")
            t = self.tracker
            if t.p != s["p"] or t.d != s["dst"]:
                raise Refused(W_NOT_READY, "NOT_READY", "change tracking lost")
            t.add_exceptions(eng)
            op = ops.Copy(self, sd, s["p"], s["dst"], s["snap"], rate)
            op.copied = s.get("copied", 0)
            op.blocks_copied = s.get("blocks_copied", 0)
        else:
            if ctl.drives.get(sd) is None:
                raise Refused(W_NOT_READY, "NOT_READY", "SD%d is gone" % sd)
            if kind == REBUILD:
                op = ops.Rebuild(self, sd, rate)
            elif kind == INIT:
                op = ops.Init(self, sd, rate)
            elif kind == CHECK:
                op = ops.Check(self, sd, rate, s.get("fix", False))
                op.found = s.get("found", 0)
            else:
                raise Refused(W_INVALID, "BAD_STATE", "unknown kind %s" % events.value_text(kind))
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
    def set_rate(self, r):
        # the share of the time (percent) every operation, running and to come, takes from the host
        self.rate = r
        for op in self.ops:
            op.rate = r
        self.save()

    def start_copy(self, src, dst, rate=None, need_base=False, force_full=False, nexus=None):
        # `nexus`: the host that asks (the direct command), which may name only drives it sees
        # and whose reservations bind it; None from the console
        ctl = self.ctl
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
        op = ops.Copy(self, src, p, dst, eng.snap_id, r)
        self._launch(op, "%s, %d of %d chunks" % ("full" if op.full else "incremental", op.total, op.end))
        return op

    def start_row(self, kind, sd, rate, fix=False, standby=None):
        ctl = self.ctl
        if not 0 <= sd <= 7 or ctl.cfg.sd[sd] is None:
            raise Refused(W_INVALID, "NO_SUCH_DRIVE", "system drive %s is not defined" % events.value_text(sd))
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
        d = ops.raw(ctl.drives[sd])
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
            op = ops.Init(self, sd, rate)
        elif kind == REBUILD:
            op = ops.Rebuild(self, sd, rate)
        else:
            op = ops.Check(self, sd, rate, fix)
        self._launch(op, "%d blocks" % op.end)
        return op

    def _use_standby(self, sd, slot):
        # swap the failed member of SD`sd` for the unused disk in `slot`, which becomes a blank
        # member to rebuild
        ctl = self.ctl
        if type(slot) is not int or not 0 <= slot < len(ctl.names):
            raise Refused(W_INVALID, "NO_SUCH_SLOT", "no disk slot %s" % events.value_text(slot))
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
        ctl.rebuild_drives(sd)
        ctl.events.log("warn", "SD%d: STANDBY DISK %s REPLACES %d:%d" % (sd, ctl.names[slot], ch, tg))

    def _launch(self, op, what):
        self.ctl.lops.add(op)
        if op.kind == COPY:
            self.copy_word = W_OK
            self.copy_pair = [op.sd, op.dst]
            self.ctl.lops.incomplete[op.dst] = 1     # saved below, before the first block moves
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
            if state == "COMPLETED":
                self.ctl.lops.incomplete[op.dst] = 0
        self._remember(info)
        self.save()
        if level is None:
            level = "info" if state == "COMPLETED" else ("warn" if state == "TERMINATED" else "error")
        self.ctl.events.log(level, "%s %s: %s" % (op.label(), state, detail))
        return True

    def stop(self, op, why="by command"):
        return self.finish(op, "TERMINATED", W_TERMINATED, "terminated " + why)

    def find(self, sd):
        # the running operation that involves system drive `sd` in any role (a copy: the drive
        # it was started through, the primary, the log drive, the destination), or None
        for op in self.ops:
            if op.sd == sd or sd in op.drives:
                return op
        return None

    def incomplete_drives(self):
        return [sd for sd in range(8) if self.ctl.lops.incomplete[sd]]

    def clear_incomplete(self, sd, why):
        # the operator accepts SD`sd` as it is (or it was redefined): its LUNs answer again
        lops = self.ctl.lops
        if not lops.incomplete[sd]:
            return False
        op = lops.running(COPY, sd)
        if op is not None and op.dst == sd:
            raise Refused(W_IN_PROGRESS, "COPY_ACTIVE", "a copy onto SD%d runs: stop it first" % sd)
        lops.incomplete[sd] = 0
        self.save()
        self.ctl.events.log("warn", "SD%d: INCOMPLETE COPY MARK CLEARED (%s)" % (sd, why))
        return True

    # ---- the scheduler's slice ----------------------------------------------------------------
    def step(self):
        # (no allocation: this runs for every slice, and spins while the I/O processor's thread
        # moves a copy's slices)
        ctl = self.ctl
        zeroing = False
        for op in ctl.lops.now:
            if op.kind == INIT:
                zeroing = True
            if op.state != "RUNNING" or not ctl.mine(op.sd):
                continue         # of a pair, the drive's owner runs it
            try:
                op.step()
            except Refused as e:
                self.finish(op, "FAILED", e.word, e.msg)
            except Exception as e:      # a fault must not stop the scheduler or hide the op
                sys.print_exception(e, sys.stderr)
                self.finish(op, "FAILED", W_NOT_READY, "firmware fault: %r" % e)
        n = len(ctl.lops.ops)
        if n and time.ticks_diff(time.ticks_ms(), self.last_save) >= SAVE_MS:
            self.save()
        elif zeroing:
            self.save()              # keeps the host-write boundary close behind the zeroing
        return n

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
        rows = [op.info() for op in self.ops if sd is None or sd in op.drives]
        for h in reversed(self.history):
            if sd is None or h.get("sd") == sd or sd in h.get("drives", ()):
                rows.append(h)
        t = self.tracker
        tr = {"primary": t.p, "backup": t.d, "chunk_kb": t.cb // 2, "chunks": t.nchunks,
              "full_copy_needed": bool(t.full)} if t.p >= 0 else None
        if tr is not None:
            tr.update(t.counts())
        return {"lops": rows, "copy_word": "0x%04X" % self.table10(), "rate": self.rate, "tracking": tr}

    # ---- what the controller tells --------------------------------------------------------------
    def drive_changed(self, sd):
        # a system drive was deleted or (re)created: if it is half of the tracked pair, forget the
        # pair so the next copy is full (the command table's sd_create/sd_delete call this)
        self.clear_incomplete(sd, "the drive was redefined")
        t = self.tracker
        if sd in (t.p, t.d):
            self.ctl.events.log("info", "CHANGE TRACKING OF SD%d -> SD%d DROPPED: SD%d CHANGED" % (t.p, t.d, sd))
            t.drop()

    def auto_rebuild(self, slot):
        # a disk just replaced in `slot`: the rebuild of each drive it is a member of starts at
        # once when the controller parameter says so (the DAC960's automatic rebuild; on by
        # default). -> the system drives whose rebuild started; a drive that cannot rebuild now
        # gets an event
        ctl = self.ctl
        if not ctl.cfg.auto_rebuild():
            return []
        started = []
        for sd in sorted(ctl.drives):
            if slot not in ops.raw(ctl.drives[sd]).slots:
                continue
            try:
                self.start_row(REBUILD, sd, self.rate)
                started.append(sd)
            except Refused as e:
                ctl.events.log("warn", "SD%d: AUTOMATIC REBUILD NOT STARTED: %s" % (sd, e.msg))
        return started


def _pair(v):
    # [source, destination] as lop.state keeps it, or None when it is not that
    if isinstance(v, list) and len(v) == 2 and all(type(x) is int and 0 <= x <= 7 for x in v):
        return v
    return None
