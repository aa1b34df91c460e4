# The controller (FIG. 3): owns the I/O processor, buffer, NV memory, system drives, snapshot engine
# and long-operation registry, and offers the endpoints two things: the SCSI core (execute) and the
# firmware command table (command). The commands live in commands*.py and use only the public
# methods and attributes below.
import os
import asyncio
from hw import board as boardmod
from hw import nvram
from hw import levels
from hw import iop as iopmod
from storage import raid
from hw import buffer as buffermod
from hw import events as eventsmod
from hw import heap as heapmod
from lop import ops as lop
from lop import manager as lopmgr
from snapshot import engine as snapshot
from storage import cache as cachemod
from scsi import core as scsi
from scsi import lu as lumod
from scsi import pr
from scsi import sense
from scsi.sense import ScsiError
from scsi import vendor
from hw.iop import exists
from control import commands
from control import pair as pairmod
from control.errors import CmdError


# a buffer slot holds a run of chunks as they lie on the log: four 64 KiB chunks with their
# trailer pages, or one of the largest (256 KiB) chunks
BUFFER_SLOT = 4 * (64 + 4) * 1024
NVRAM_FILE = "nvram.bin"
RESERVED_SLOTS = 2        # buffer slots the write-back cache leaves for copy-on-write and config
ALL_LUNS = (1 << (nvram.PORTS * nvram.LUNS)) - 1


class CachedDrive:
    # a system drive with write-back caching (WB_MSK): the same interface, through the cache
    def __init__(self, drive, cache):
        self.drive, self.cache = drive, cache
        self.number, self.blocks = drive.number, drive.blocks

    def status(self):
        return self.drive.status()

    def read(self, lba, mv):
        self.cache.read(self.drive, lba, mv)

    def write(self, lba, mv, old=None):
        if self.drive.status() == raid.OFFLINE:
            # a line cached for an OFFLINE drive could never be destaged (and would hold up others)
            raise raid.DriveError("offline", "system drive %d is OFFLINE" % self.number)
        self.cache.write(self.drive, lba, mv)

    def flush(self):
        # destage this drive's lines
        self.cache.flush(self.drive)


class Controller:
    def __init__(self, board, state_dir, root="."):
        self.board = board
        self.state_dir = state_dir
        # what is the controller's own (NV memory, cache journal, intent record, long operations):
        # the state directory itself on a simplex board, STATE/c<n> for controller n of a pair
        self.number = board.get("controller")
        self.own_dir = state_dir if self.number is None else "%s/c%d" % (state_dir, self.number)
        if not exists(self.own_dir):
            os.mkdir(self.own_dir)
        self.root = root
        self.iqn = board["iqn"]
        self.events = eventsmod.EventLog()
        self.heap = heapmod.Plug()   # run by main.py's heap upkeep
        self.lops = lopmgr.Registry()
        self.names = boardmod.slot_names(board)
        self.tpc = board["targets_per_channel"]
        self.gports = nvram.PORTS if board.get("controller") is None else 2 * nvram.PORTS
        self.iop = iopmod.IOP(state_dir, len(self.names), board["disk_mb"] * 2048, self.names,
                              own_dir=self.own_dir, makes_disks=not self.number)
        for slot, text in self.iop.problems:
            self.events.log("error", ("DISK %s: %s" % (self.names[slot], text)) if slot >= 0 else text)
        self.buffer = buffermod.Buffer(board["buffer_kb"] * 1024, BUFFER_SLOT)
        self.nv = nvram.Nvram(self.own_dir + "/" + NVRAM_FILE, board["nvram_kb"] * 1024)
        self.cfg = self._load_config()
        # the exception index may take a quarter of the firmware's heap
        self.engine = snapshot.Engine(self.buffer, self.events, board["heap_kb"] * 256)
        self.core = scsi.Core(self.logical_unit, self.luns, self.lu_keys, self.long_operation,
                              self.events, board["model"])
        # what the logical units share; they are built with the drives (map_luns)
        self.backing = lumod.Backing(self.iqn, self.engine, self.lops, self.follow_disks,
                                     self.refresh_status, self.flush_drive, self.visible_lu,
                                     self.snapshot_refusal, self.initiate)
        self.cache = cachemod.WriteBackCache(self.own_dir + "/" + cachemod.JOURNAL_FILE, self.buffer,
                                             max(1, self.buffer.slots - RESERVED_SLOTS))
        self.drives = {}          # sd -> SystemDrive, or CachedDrive when write-back (built ones)
        self.pair = None
        self.answers = []         # host writes' answers settled before their transport asked
        self.w_status = 0         # settle(): the answer of the write it gives the ticket of
        self.w_sense = None
        self._lus = [None] * (nvram.PORTS * nvram.LUNS)
        self.rebuild_drives(attach=False)
        rep = self.cache.replay({sd: getattr(d, "drive", d) for sd, d in self.drives.items()})
        if rep["records"] or rep["errors"] or rep["torn_bytes"]:
            self.events.log("warn" if rep["errors"] else "info",
                            "WRITE-BACK CACHE REPLAYED: %d records, %d blocks%s%s" % (
                                rep["records"], rep["blocks"],
                                "; a last record cut short by the stop (never acknowledged) ignored"
                                if rep["torn_bytes"] and not rep["errors"] else "",
                                "; " + "; ".join(rep["errors"]) if rep["errors"] else ""))
        # only now is what a write-back log drive holds (its header, its index records) on it
        self._attach_log()
        self._gen = -1            # the disk states refresh_status last looked at (iop.gen)
        # controller n of a dual-active pair (control/pair.md); None on a simplex board
        if self.number is not None:
            self.pair = pairmod.Pair(self)
            self.iop.on_change = self.pair.disks_changed
            self.cache.mirror = self.pair.mirror
            self.engine.notify = self.pair.snapshot_changed
            self.engine.announce = self.pair.announce_exceptions
            self.engine.absorb = self.pair.feed.absorb
            self.core.alua = self.pair.alua_state
            self.pair.alua_changed = self.core.access_changed
        self.refresh_status(quiet=True)
        self.lop_mgr = lopmgr.Manager(self)     # change tracking and interrupted long operations

    # ---- boot ----------------------------------------------------------------------------
    def _load_config(self):
        path = self.nv.path
        if exists(path):
            try:
                cfg = self.nv.load()
                for note in self.nv.notes:
                    self.events.log("info", "NV MEMORY: " + note + " (previous image used)")
                return cfg
            except (nvram.NvramError, OSError) as e:
                aside = self._set_aside(path)
                self.events.log("error", "NV MEMORY UNUSABLE: %s; kept as %s; board unconfigured" % (e, aside))
                return self._blank_config()
        factory = self.board["factory_nvram"]
        if not factory.startswith("/"):
            factory = self.root + "/" + factory
        try:
            with open(factory, "rb") as f:
                image = f.read()
            cfg = self.nv.create(image)
            self.events.log("info", "NV MEMORY: factory default from %s" % self.board["factory_nvram"])
            return cfg
        except (nvram.NvramError, OSError) as e:
            self.events.log("error", "FACTORY NV IMAGE %s UNUSABLE: %s; board unconfigured"
                            % (self.board["factory_nvram"], e))
            return self._blank_config()

    def _set_aside(self, path):
        n = 0
        while exists("%s.bad%d" % (path, n)):
            n += 1
        os.rename(path, "%s.bad%d" % (path, n))
        return "%s.bad%d" % (NVRAM_FILE, n)

    def _blank_config(self):
        cfg = nvram.Config()
        self.nv.bank = -1
        self.nv.create(nvram.encode(cfg, 0))
        return cfg

    def slot_of(self, channel, target):
        return channel * self.tpc + target

    def _member_slot(self, v):
        # a target past the channel's would alias another disk (0:4 is 1:0 with 4 targets a
        # channel), and let two drives share blocks under two names
        if v[1] >= self.tpc:
            raise ValueError("member disk %d:%d: the board has targets 0..%d a channel" % (v[0], v[1], self.tpc - 1))
        return self.slot_of(v[0], v[1])

    def rebuild_drives(self, sd=None, attach=True):
        # (re)build system drive `sd` (every one when None) from the configuration; map the LUNs again
        for n in range(nvram.MAX_SD) if sd is None else (sd,):
            self.drives.pop(n, None)
            e = self.cfg.sd[n]
            if e is None:
                continue
            try:
                members = [(self._member_slot(v), v[2], v[3]) for v in e.vdrive]
                d = raid.SystemDrive(n, e.level(), members, e.stripe_kb * 2, self.iop, e.blocks)
                if d.resync_note:
                    self.events.log("info" if d.resync_ok else "error", "SD%d %s" % (n, d.resync_note))
                self.drives[n] = CachedDrive(d, self.cache) if e.write_back() else d
            except ValueError as err:
                self.events.log("error", "SD%d CANNOT BE BUILT: %s" % (n, err))
        if attach:
            self._attach_log()
        self.map_luns()

    def _attach_log(self):
        eng = self.engine
        if eng.primary is not None and eng.primary_sd in self.drives:
            eng.primary = self.drives[eng.primary_sd]    # rebuilt (a cache policy change): follow it
        for sd, e in enumerate(self.cfg.sd):
            if e is not None and e.is_log() and sd in self.drives:
                if eng.log is not None and eng.log_sd == sd:
                    eng.log = self.drives[sd]      # the same drive rebuilt: the same log on it
                else:
                    eng.attach_log(sd, self.drives[sd], e.chunk_kb, self.drives)
                return
        if eng.log is not None:
            eng.detach_log()

    def map_luns(self):
        # logical units hold their drive and NV memory facts: built again whenever either changes
        for i in range(nvram.PORTS * nvram.LUNS):
            sd = self.cfg.lunmap[i]
            e = None if sd == nvram.UNMAPPED else self.cfg.sd[sd]
            if e is None:
                self._lus[i] = None
            else:
                unit = lumod.BackupLU if e.is_log() else lumod.NormalLU
                self._lus[i] = unit(self.backing, sd, i // nvram.LUNS, i % nvram.LUNS,
                                    self.drives.get(sd), e)

    def refresh_status(self, quiet=False):
        # recompute system drive states from the disks; record changes in NV memory and the log
        changed = False
        for sd, e in enumerate(self.cfg.sd):
            if e is None or not self.mine(sd):
                continue          # of a pair, the owner records a drive's state (both hear it)
            d = self.drives.get(sd)
            st = levels.OFFLINE if d is None else levels.STATUS_CODES[d.status()]
            if st != e.status:
                e.status = st
                changed = True
                self.events.log("info" if st == levels.ONLINE else "error",
                                "SD%d %s" % (sd, levels.STATUS_NAMES[st]))
                if st == levels.OFFLINE and self.cache.dirty(sd):
                    # an OFFLINE drive never comes back (a replaced disk is blank): its dirty lines
                    # could never be written, and would block every other drive's destage
                    self.events.log("error", "SD%d: %d DIRTY CACHE LINES LOST" % (sd, self.cache.discard(sd)))
        self._gen = self.iop.gen
        if changed:
            self.save()
        self._snapshot_drives_offline()

    def _snapshot_drives_offline(self):
        # a snapshot whose log or primary drive is OFFLINE can no longer show its image: it ends at
        # once as an overflow does (the backup LUN reports 09/82/00 once; scsi/vendor.md)
        eng = self.engine
        if eng.state != snapshot.ACTIVE or not self.mine(eng.primary_sd):
            return
        for sd, role in ((eng.log_sd, "LOG"), (eng.primary_sd, "PRIMARY")):
            e = self.cfg.sd[sd]
            if e is None or e.status == levels.OFFLINE:
                eng.overflow("%s SD%d OFFLINE" % (role, sd), "log failed" if role == "LOG" else "overflow")
                return

    def save(self):
        # a change NV memory cannot hold exactly is refused and undone: the configuration in
        # memory goes back to the image NV memory holds, so the board never runs on one it lost.
        # Of a pair, the partner's NV memory holds it too before the change is answered.
        try:
            self.nv.store(self.cfg)
        except nvram.NvramError as e:
            self.cfg = self.nv.current()
            raise CmdError("NV_REFUSED", "NV memory cannot hold this change (%s); nothing was changed" % e)
        if self.pair is not None:
            self.pair.send_config()

    def mine(self, sd):
        # does this controller write system drive sd? (always on a simplex board)
        return self.pair is None or self.pair.mine(sd)

    # ---- the pair's needs (control/pair.py) -------------------------------------------------
    def adopt_config(self, image):
        # the partner's configuration: into NV memory now, into use once the current command ends
        cfg = self.nv.adopt(image)
        asyncio.create_task(self._use_config(cfg))
        return cfg

    async def _use_config(self, cfg):
        self.cfg = cfg
        self.rebuild_drives()
        self.pair.alua_moved()

    def disks_changed(self):
        # the partner changed a disk slot's state on the shared channels
        self.iop.reload_states()
        self.refresh_status()

    def sd_at(self, nexus):
        lu = self.logical_unit(nexus)
        return None if lu is None else lu.sd

    def snapshot_home(self, sd):
        # the drive whose owner runs commands for drive sd: the backup LU's (the log drive's) and
        # the snapshot commands run where the snapshot's primary is (None: no drive)
        p = self.pair.snap_primary
        if sd is None:
            return p if p is not None else (self.engine.log_sd if self.engine.log_sd >= 0 else None)
        e = self.cfg.sd[sd]
        if p is not None and e is not None and e.is_log():
            return p
        return sd

    def take_over(self, partner_dir):
        # the partner died: its write in flight is closed (its intent record), its battery-backed
        # state is taken and cleared so that it can never be applied twice, the snapshot's index
        # is read again from the log, and its long operations resume here (control/pair.md)
        self._replay_partner_cache(partner_dir)
        rec = self.iop.adopt_intent(partner_dir)
        if rec is not None and self.cfg.sd[rec] is not None:
            self.rebuild_drives(rec)
        self.took_back()
        eng = self.engine
        self.pair.snap_primary = eng.primary_sd if eng.state == snapshot.ACTIVE else None
        self.lop_mgr.adopt(partner_dir)

    def _replay_partner_cache(self, partner_dir):
        # the partner's write-back data (the copy kept here) onto the disks, before anything reads
        # them; then no copy of it is left to be applied twice (the partner's journal included)
        src, other = self.pair.partner_journal()
        rep = {"records": 0, "errors": []}
        if exists(src):
            wb = cachemod.WriteBackCache(src, self.buffer, 1)
            rep = wb.replay({sd: getattr(d, "drive", d) for sd, d in self.drives.items()})
            wb.close()
        if rep["records"] or rep["errors"]:
            self.events.log("warn" if rep["errors"] else "info",
                            "PAIR: PARTNER'S WRITE-BACK DATA REPLAYED: %d records, %d blocks%s" % (
                                rep["records"], rep["blocks"], "; " + "; ".join(rep["errors"]) if rep["errors"] else ""))
        if exists(other):
            open(other, "wb").close()

    def release(self, home):
        # failback: controller `home`'s drives go back to it, destaged, with the long operations
        # that run on them here -> those operations, saved; the writes in flight land first
        self.settle_all()
        ops = []
        for sd, e in enumerate(self.cfg.sd):
            if e is not None and e.affinity & 1 == home:
                ops += self.lop_mgr.hand_back(sd, home)
                if not self.destaged(sd):
                    self.events.log("error", "SD%d: WRITE-BACK DATA NOT DESTAGED AT FAILBACK" % sd)
        return ops

    def took_back(self, ops=()):
        # this controller's drives are its own again: the snapshot's index as the log holds it now,
        # the change tracking as the partner left it, and the long operations it handed over
        self.follow_log(False)
        self.lop_mgr.tracker.reload()
        self._gen = -1
        self.refresh_status()
        self.lop_mgr.adopt_saved(list(ops), "FAILBACK")

    def follow_log(self, follower):
        # the snapshot as the log drive holds it (header, index records); a follower serves its
        # backup LUN and never writes the log (control/pair.md "The snapshot across the pair")
        eng = self.engine
        if eng.log is None or self.cfg.sd[eng.log_sd] is None:
            return
        eng.attach_log(eng.log_sd, self.drives[eng.log_sd], self.cfg.sd[eng.log_sd].chunk_kb, self.drives)
        if follower:
            eng.follower = True
            eng.origins.clear()

    def gport(self, port):
        # host port `port` of this controller as the pair numbers ports (2 * controller + port)
        return port if self.number is None else 2 * self.number + port

    def execute_here_or_there(self, nexus, cdb, data_out=None):
        # execute for the console: on the partner (blocking) when it serves the drive
        if self.pair is not None:
            if self.pair.mode != pairmod.ACTIVE:
                # stood down: serves no drive, not even for the console (the partner writes them)
                return 2, sense.fixed(sense.NOT_READY, 0x04, 0x0B), b""
            if self.pair.routed(nexus, cdb):
                return self.pair.forward_blocking(nexus, cdb, data_out)
        return self.execute_here(nexus, cdb, data_out)     # (a reservation it changes is told)

    def transition_sense(self):
        return sense.fixed(sense.NOT_READY, 0x04, 0x0A)

    # ---- SCSI core interface ------------------------------------------------------------
    def execute(self, nexus, cdb, data_out=None, buf=None):
        if self.pair is not None and self.pair.routed(nexus, cdb):
            return self.pair.transition()     # ownership moved since the command was routed
        return self.execute_here(nexus, cdb, data_out, buf)

    def execute_here(self, nexus, cdb, data_out=None, buf=None, defer=False):
        # execute() for a transport that has just asked pair.routed() itself. `defer`: the
        # transport answers a write only once chained() is settled (its data-out stays put)
        b = self.backing
        b.defer = defer
        b.ticket = 0
        out = self.core.execute(nexus, cdb, data_out, buf)
        b.defer = False
        if self.pair is not None:
            pr = self.core.pr
            if not self.pair.reservations_checked():
                pr.roll_back()                # a reservation change the partner did not get
                return self.pair.transition()
            if pr.undo:
                pr.commit()                   # (its unit attentions are posted now)
        return out

    def buffer_gone(self, buf):
        # a transport no longer uses the data-in buffer it lent execute_here(): the core lets go of it
        self.core.forget(buf)

    def io_thread(self):
        """The I/O processor's thread (hw/chains.py), started on first use, for a transport that
        defers write answers: it reads `rx` readable as chains end (then woken(), settle()), and
        `hot` says the thread is awake (a write handed over now costs no wake-up)."""
        return self.iop.start_thread()

    def chained(self):
        # whether the command execute_here() just ran became a chain of the I/O processor's
        # thread (its GOOD status then waits for settle())
        t = self.backing.ticket
        self.backing.ticket = 0
        return t

    def settle(self):
        """The ticket of the oldest host write the I/O processor's thread has ended, its answer
        in `w_status` and `w_sense`; 0 while it runs. A write a disk failed under, or not run
        after such a failure, is written again here, degraded. The board's own chains ended
        before it (the copy's slices) land on the way. (Attributes, not a tuple: every host
        write the thread runs is settled once, and a tuple would allocate.)"""
        if self.answers:
            self.w_status, self.w_sense, ticket = self.answers.pop(0)
            return ticket
        return self._settle_chain()

    def _settle_chain(self):
        ch = self.iop.chains
        while ch is not None:
            ticket = ch.settle()
            if not ticket:
                return 0
            note = ch.last
            if type(note) is lop.Slice:
                note.landed(ch.last_failed)
                continue
            if ch.last_failed:
                self.refresh_status()
                self.w_status, self.w_sense = self.core.rewrite(note, ch.last_at, ch.last_data)
            else:
                self.w_status = 0
                self.w_sense = None
            return ticket
        return 0

    def settle_own(self):
        # the board's own chains that ended, up to the first host write (its transport settles it)
        ch = self.iop.chains
        while ch is not None:
            if type(ch.next_note()) is not lop.Slice:
                return
            ch.settle()
            ch.last.landed(ch.last_failed)

    def settle_all(self):
        # every chain run and settled now, before a change of configuration, ownership or
        # snapshot, or an answer that must follow every write (task management, logout): writes
        # a disk failed under are written again first (their answers wait in `answers`)
        ch = self.iop.chains
        if ch is None:
            return
        ch.drain()
        while ch.settled != ch.submitted:
            ticket = self._settle_chain()
            if ticket:
                self.answers.append((self.w_status, self.w_sense, ticket))

    def expected_out(self, cdb):
        return self.core.expected_out(cdb)

    def task_mgmt(self, nexus, kind):
        # task management from a transport (ABORT TASK SET, LOGICAL UNIT RESET, ...): the SCSI
        # core keeps the per-nexus state it affects (unit attentions, reservations); of a pair,
        # the drive's owner keeps it too (control/pair.md "Task management and sessions")
        if self.pair is None or not self.pair.nexus_event(nexus, kind):
            self.core.task_mgmt(nexus, kind)
            if self.pair is not None:
                self.pair.reservations_checked()

    def nexus_lost(self, initiator, port, isid=None):
        if self.pair is not None:
            self.pair.nexus_event((initiator, port, 0) if isid is None else (initiator, port, 0, isid),
                                  pairmod.NEXUS_LOST)
        self.core.nexus_lost(initiator, port, isid)
        if self.pair is not None:
            self.pair.reservations_checked()

    def luns(self, port, initiator):
        out = []
        for lun in range(nvram.LUNS):
            if self.logical_unit((initiator, port, lun)) is not None:
                out.append(lun)
        return out

    def logical_unit(self, nexus):
        # nexus: (initiator name, port, lun) or, from iSCSI, (initiator name, port, lun, ISID).
        # The port is the pair's: 2 * controller + host port (0..3); host port n of either
        # controller shows the same LUN map, as on the real pair's shared host buses
        initiator, gport, lun = nexus[0], nexus[1], nexus[2]
        if not (0 <= gport < self.gports and 0 <= lun < nvram.LUNS):
            return None
        i = (gport & 1) * nvram.LUNS + lun
        lu = self._lus[i]
        if lu is None or not self.cfg.masks:
            return lu
        return lu if self._mask_bits(initiator) >> i & 1 else None

    def _mask_bits(self, initiator):
        # the LUNs (bit port * 8 + lun) `initiator` may see: all while nothing is masked, none
        # for an initiator without a mask once any mask exists
        masks = self.cfg.masks
        if not masks:
            return ALL_LUNS
        for name, bits in masks:
            if name == initiator:
                return bits
        return 0

    def visible_lu(self, initiator, sd):
        # a logical unit of system drive `sd` that `initiator` sees on either host port, or None:
        # a direct command may name a drive only when there is one (scsi/vendor.md)
        bits = self._mask_bits(initiator)
        for i in range(nvram.PORTS * nvram.LUNS):
            lu = self._lus[i]
            if lu is not None and lu.sd == sd and bits >> i & 1:
                return lu
        return None

    def lu_keys(self, initiator):
        # the reservation keys of the logical units `initiator` sees: what its target reset reaches
        bits = self._mask_bits(initiator)
        return {pr.lukey(lu) for i, lu in enumerate(self._lus) if lu is not None and bits >> i & 1}

    def check_reservation(self, nexus, sd, write):
        # a drive a direct command reads (write False) or writes obeys the reservation of its
        # logical unit as a READ or WRITE from the caller would: RESERVATION CONFLICT otherwise
        res = self.core.pr
        if res.held and res.blocks(self.visible_lu(nexus[0], sd), pr.it_of(nexus), 0 if write else pr.F_READ):
            raise pr.conflict()

    def follow_disks(self):
        # before a command needs the drives: a disk dropped out under an I/O error somewhere
        if self.iop.gen != self._gen:
            self.refresh_status()

    # ---- snapshot direct commands (Tables 1-4) ------------------------------------------
    def snapshot_refusal(self, sd):
        # the Table 2 row that refuses an initiate on system drive `sd`, as (ascq, code, text)
        e = self.cfg.sd[sd]
        if e is not None and e.is_log():
            return vendor.ISSUED_TO_BACKUP, "IS_LOG_DRIVE", "SD%d is the log drive" % sd
        if self.engine.state == snapshot.ACTIVE:
            return vendor.ALREADY_IN_PROGRESS, "SNAPSHOT_ACTIVE", "a snapshot of SD%d is already active" % self.engine.primary_sd
        if self.engine.log is None:
            return vendor.NO_LOG_DEFINED, "NO_LOG_DEFINED", "no system drive is set to LOG"
        for kind, ascq, code in ((lop.REBUILD, vendor.REBUILD_IN_PROGRESS, "REBUILD_IN_PROGRESS"),
                                 (lop.INIT, vendor.INIT_IN_PROGRESS, "INIT_IN_PROGRESS"),
                                 (lop.CHECK, vendor.CHECK_IN_PROGRESS, "CHECK_IN_PROGRESS")):
            if self.lops.running(kind, sd) or self.lops.running(kind, self.engine.log_sd):
                return ascq, code, "a %s is in progress" % lop.NAMES[kind]
        return None

    def initiate(self, sd):
        # begin a snapshot of system drive `sd` (Table 1); the caller checked snapshot_refusal
        self.settle_all()     # writes in flight land before the instant the snapshot shows
        d = self.drives.get(sd)
        if d is None or d.status() == raid.OFFLINE or self.engine.log.status() == raid.OFFLINE:
            raise sense.not_ready()
        if not self.engine.indexable(d):
            self.events.log("error", "SNAPSHOT OF SD%d REFUSED: MORE CHUNKS THAN THE INDEX CAN NAME" % sd)
            raise sense.not_ready()
        self.flush_drive(sd)       # the snapshot point includes every acknowledged write
        try:
            self.engine.initiate(sd, d)
        except (raid.DriveError, iopmod.DiskError) as e:
            raise self.backing.io_error(e, 0)    # the header did not land: no snapshot began

    def flush_drive(self, sd):
        # destage the write-back cache of a system drive (SYNCHRONIZE CACHE, initiate, policy change)
        d = self.drives.get(sd)
        if isinstance(d, CachedDrive):
            try:
                d.flush()
            except (raid.DriveError, iopmod.DiskError) as e:
                raise self.backing.io_error(e, 0)

    def destaged(self, sd):
        # flush_drive for a long operation: False when the disks refused (the status followed)
        try:
            self.flush_drive(sd)
            return True
        except ScsiError:
            return False

    def long_operation(self, cdb, buf, nexus):
        # Start Long Operation / Get Long Operation Status (Tables 5-10): the CDB is read in
        # scsi/vendor.py, the copy and its words are the long-operation manager's
        return vendor.long_operation(self.lop_mgr, cdb, buf, nexus)

    # ---- firmware command table ---------------------------------------------------------
    def command(self, name, args=None, local=False):
        # `local`: the partner forwarded it here, where its drive is served
        if self.pair is not None and not local:
            if self.pair.command_home(name, args if isinstance(args, dict) else {}) is not None:
                return self.pair.remote_command(name, args)
        self.settle_all()     # a command sees every write the I/O processor's thread was given
        fn = commands.COMMANDS.get(name)
        if fn is None:
            raise CmdError("UNKNOWN_COMMAND", "no command %s; try: %s" % (eventsmod.value_text(name), ", ".join(sorted(commands.COMMANDS))))
        if args is None:
            args = {}
        if not isinstance(args, dict):
            raise CmdError("BAD_ARGUMENT", "arguments must be an object")
        return fn(self, args)
