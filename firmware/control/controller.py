# The controller (FIG. 3): owns the I/O processor, buffer, NV memory, system drives, snapshot engine
# and long-operation registry, and offers the endpoints two things: the SCSI core (execute) and the
# firmware command table (command). Configuration operations live in config.py.
import os
import binascii
import hashlib
from hw import board as boardmod
from hw import nvram
from hw import iop as iopmod
from storage import raid
from hw import buffer as buffermod
from hw import events as eventsmod
from lop import ops as lop
from snapshot import engine as snapshot
from storage import cache as cachemod
from scsi import core as scsi
from scsi import pr
from scsi import sense
from scsi import vendor
from scsi.sense import ScsiError
from hw.iop import exists


class CmdError(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


# a buffer slot holds a run of chunks as they lie on the log: four 64 KiB chunks with their
# trailer pages, or one of the largest (256 KiB) chunks
BUFFER_SLOT = 4 * (64 + 4) * 1024
NVRAM_FILE = "nvram.bin"
CACHE_FILE = "cache.journal"
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


class Controller:
    def __init__(self, board, state_dir, root="."):
        self.board = board
        self.state_dir = state_dir
        self.root = root
        self.iqn = board["iqn"]
        self.events = eventsmod.EventLog()
        self.lops = lop.Registry()
        self.names = boardmod.slot_names(board)
        self.tpc = board["targets_per_channel"]
        self.iop = iopmod.IOP(state_dir, len(self.names), board["disk_mb"] * 2048, self.names)
        for slot, text in self.iop.problems:
            self.events.log("error", ("DISK %s: %s" % (self.names[slot], text)) if slot >= 0 else text)
        self.buffer = buffermod.Buffer(board["buffer_kb"] * 1024, BUFFER_SLOT)
        self.nv = nvram.Nvram(state_dir + "/" + NVRAM_FILE, board["nvram_kb"] * 1024)
        self.cfg = self._load_config()
        # the exception index may take a quarter of the firmware's heap
        self.engine = snapshot.Engine(self.buffer, self.events, board["heap_kb"] * 256)
        self.core = scsi.Core(self)
        self.cache = cachemod.WriteBackCache(state_dir + "/" + CACHE_FILE, self.buffer,
                                             max(1, self.buffer.slots - RESERVED_SLOTS))
        self.drives = {}          # sd -> SystemDrive, or CachedDrive when write-back (built ones)
        self._lus = [None] * (nvram.PORTS * nvram.LUNS)
        self._build_drives(attach=False)
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
        self._gen = -1            # the disk states _refresh_status last looked at (iop.gen)
        self._refresh_status(quiet=True)
        lop.boot(self)            # change tracking and interrupted long operations

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

    def _build_drives(self, only=None, attach=True):
        for sd in range(nvram.MAX_SD):
            if only is not None and sd != only:
                continue
            self.drives.pop(sd, None)
            e = self.cfg.sd[sd]
            if e is None:
                continue
            try:
                members = [(self._member_slot(v), v[2], v[3]) for v in e.vdrive]
                d = raid.SystemDrive(sd, e.level(), members, e.stripe_kb * 2, self.iop, e.blocks)
                if d.resync_note:
                    self.events.log("info" if d.resync_ok else "error", "SD%d %s" % (sd, d.resync_note))
                self.drives[sd] = CachedDrive(d, self.cache) if e.write_back() else d
            except ValueError as err:
                self.events.log("error", "SD%d CANNOT BE BUILT: %s" % (sd, err))
        if attach:
            self._attach_log()
        self._map_luns()

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

    def _map_luns(self):
        for i in range(nvram.PORTS * nvram.LUNS):
            sd = self.cfg.lunmap[i]
            if sd == nvram.UNMAPPED or self.cfg.sd[sd] is None:
                self._lus[i] = None
            else:
                kind = scsi.BACKUP if self.cfg.sd[sd].is_log() else scsi.NORMAL
                self._lus[i] = scsi.LogicalUnit(kind, sd, i // nvram.LUNS, i % nvram.LUNS)

    def _refresh_status(self, quiet=False):
        # recompute system drive states from the disks; record changes in NV memory and the log
        changed = False
        for sd, e in enumerate(self.cfg.sd):
            if e is None:
                continue
            d = self.drives.get(sd)
            st = nvram.OFFLINE if d is None else {"ONLINE": nvram.ONLINE, "CRITICAL": nvram.CRITICAL}.get(d.status(), nvram.OFFLINE)
            if st != e.status:
                e.status = st
                changed = True
                self.events.log("info" if st == nvram.ONLINE else "error",
                                "SD%d %s" % (sd, nvram.STATUS_NAMES[st]))
                if st == nvram.OFFLINE and self.cache.dirty(sd):
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
        if eng.state != snapshot.ACTIVE:
            return
        for sd, role in ((eng.log_sd, "LOG"), (eng.primary_sd, "PRIMARY")):
            e = self.cfg.sd[sd]
            if e is None or e.status == nvram.OFFLINE:
                eng.overflow("%s SD%d OFFLINE" % (role, sd))
                return

    def save(self):
        # a change NV memory cannot hold exactly is refused and undone: the configuration in
        # memory goes back to the image NV memory holds, so the board never runs on one it lost
        try:
            self.nv.store(self.cfg)
        except nvram.NvramError as e:
            self.cfg = self.nv.current()
            raise CmdError("NV_REFUSED", "NV memory cannot hold this change (%s); nothing was changed" % e)

    # ---- SCSI core interface ------------------------------------------------------------
    def execute(self, nexus, cdb, data_out=None, buf=None):
        return self.core.execute(nexus, cdb, data_out, buf)

    def expected_out(self, cdb):
        return self.core.expected_out(cdb)

    def task_mgmt(self, nexus, kind):
        # task management from a transport (ABORT TASK SET, LOGICAL UNIT RESET, ...): the SCSI
        # core keeps the per-nexus state it affects (unit attentions, reservations)
        f = getattr(self.core, "task_mgmt", None)
        if f is not None:
            f(nexus, kind)

    def nexus_lost(self, initiator, port, isid=None):
        f = getattr(self.core, "nexus_lost", None)
        if f is not None:
            f(initiator, port, isid)

    def luns(self, port, initiator):
        out = []
        for lun in range(nvram.LUNS):
            if self.logical_unit((initiator, port, lun)) is not None:
                out.append(lun)
        return out

    def luns_for(self, lu):
        n = self.core.nexus
        return self.luns(n[1], n[0])

    def logical_unit(self, nexus):
        # nexus: (initiator name, port, lun) or, from iSCSI, (initiator name, port, lun, ISID)
        initiator, port, lun = nexus[0], nexus[1], nexus[2]
        if not (0 <= port < nvram.PORTS and 0 <= lun < nvram.LUNS):
            return None
        lu = self._lus[port * nvram.LUNS + lun]
        if lu is None or not self.cfg.masks:
            return lu
        return lu if self._mask_bits(initiator) >> (port * nvram.LUNS + lun) & 1 else None

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

    def busy(self, lu):
        # FIG. 8: LUNs of the backup system drive answer BUSY while the copy runs
        if not self.lops.ops:
            return False
        op = self.lops.running(lop.COPY)
        return op is not None and lu.kind == scsi.NORMAL and lu.sd == op.dst

    def check_ready(self, lu):
        if self.iop.gen != self._gen:
            self._refresh_status()    # a disk dropped out under an I/O error somewhere: follow it now
        if lu.kind == scsi.BACKUP:
            if self.engine.state != snapshot.ACTIVE:
                if self.engine.take_overflow():
                    raise vendor.log_overflow()
                raise ScsiError(sense.NOT_READY, 0x04, 0x03)   # not ready, manual intervention
            return
        d = self.drives.get(lu.sd)
        if d is None or d.status() == raid.OFFLINE:
            raise ScsiError(sense.NOT_READY, 0x04, 0x03)

    def geometry(self, lu):
        # the backup LUN presents the primary's geometry during a snapshot
        if lu.kind == scsi.BACKUP and self.engine.state == snapshot.ACTIVE:
            return self.engine.primary.blocks
        d = self.drives.get(lu.sd)
        return d.blocks if d is not None else 0

    def optimal_blocks(self, lu):
        e = self.cfg.sd[lu.sd]
        return e.stripe_kb * 2 if e is not None else 128

    def write_back(self, lu):
        e = self.cfg.sd[lu.sd]
        return e is not None and e.write_back()

    def read_blocks(self, lu, lba, mv):
        try:
            if lu.kind == scsi.BACKUP:
                self.engine.read_backup(lba, mv)
            else:
                if self.lops.ops:
                    lop.check_init(self, lu.sd, lba, len(mv) >> 9, False)
                self.drives[lu.sd].read(lba, mv)
        except (raid.DriveError, iopmod.DiskError) as e:
            err = self._io_error(e, lba)
            if lu.kind == scsi.BACKUP and self.engine.take_overflow():
                raise vendor.log_overflow()   # the read that lost the snapshot is the one to say so
            raise err

    def write_blocks(self, lu, lba, mv, fua=False):
        n = len(mv) >> 9
        if self.lops.ops:
            lop.check_init(self, lu.sd, lba, n, True)
        try:
            d = self.drives[lu.sd]
            for f in self.engine.listeners:
                f(lu.sd, lba, n)                  # change tracking, before the data is written
            self.engine.origins.get(lu.sd, d).write(lba, mv)   # the Origin during a snapshot
            if fua and isinstance(d, CachedDrive):
                self.cache.flush(d.drive)
        except (raid.DriveError, iopmod.DiskError) as e:
            raise self._io_error(e, lba)
        except snapshot.SnapshotError:
            raise ScsiError(sense.HARDWARE_ERROR, 0x55, 0x03)   # insufficient resources: buffer

    def _io_error(self, e, lba):
        self._refresh_status()
        if isinstance(e, raid.DriveError) and e.kind == "offline":
            return ScsiError(sense.NOT_READY, 0x04, 0x03)
        return ScsiError(sense.MEDIUM_ERROR, 0x11, 0x00, lba)

    def flush(self, lu):
        if lu.kind == scsi.NORMAL:
            self.flush_drive(lu.sd)

    def serial(self, lu):
        h = binascii.crc32(self.iqn.encode())
        return ("%08X%02d%s" % (h, lu.sd, "B" if lu.kind == scsi.BACKUP else "P")).encode()

    def naa(self, lu):
        # NAA 6 (IEEE registered extended): stable for a system drive's life, distinct per LU kind
        e = self.cfg.sd[lu.sd]
        seed = "%s/%d/%d/%r" % (self.iqn, lu.sd, lu.kind, e.vdrive if e is not None else None)
        d = bytearray(hashlib.sha1(seed.encode()).digest()[:16])
        d[0] = 0x60 | (d[0] & 0x0F)
        return bytes(d)

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

    def snapshot_initiate(self, lu):
        if lu.kind == scsi.BACKUP:
            raise vendor.refused(vendor.ISSUED_TO_BACKUP)
        # the log drive keeps and shows the image: a caller that sees none of its LUNs has, as
        # far as it can tell, no log LUN defined (scsi/vendor.md)
        if self.visible_lu(self.core.nexus[0], self.engine.log_sd) is None:
            raise vendor.refused(vendor.NO_LOG_DEFINED)
        r = self.snapshot_refusal(lu.sd)
        if r is not None:
            raise vendor.refused(r[0])
        self._initiate(lu.sd)

    def _initiate(self, sd):
        d = self.drives.get(sd)
        if d is None or d.status() == raid.OFFLINE or self.engine.log.status() == raid.OFFLINE:
            raise ScsiError(sense.NOT_READY, 0x04, 0x03)
        self.flush_drive(sd)       # the snapshot point includes every acknowledged write
        try:
            self.engine.initiate(sd, d)
        except (raid.DriveError, iopmod.DiskError) as e:
            raise self._io_error(e, 0)    # the header did not land: no snapshot began

    def snapshot_terminate(self, lu):
        e = self.engine
        if e.state != snapshot.ACTIVE or (lu.kind == scsi.NORMAL and lu.sd != e.primary_sd):
            raise vendor.refused(vendor.NOT_IN_PROGRESS)
        e.terminate()

    def flush_drive(self, sd):
        # destage the write-back cache of a system drive (SYNCHRONIZE CACHE, initiate, policy change)
        d = self.drives.get(sd)
        if isinstance(d, CachedDrive):
            try:
                self.cache.flush(d.drive)
            except (raid.DriveError, iopmod.DiskError) as e:
                raise self._io_error(e, 0)

    def long_operation(self, cdb, buf):
        # Start Long Operation / Get Long Operation Status (Tables 5-10): lop.py owns them; the
        # caller's nexus decides which drives it may name and which copy it may hear of
        return lop.direct(self, cdb, buf, self.core.nexus)

    # ---- firmware command table ---------------------------------------------------------
    def command(self, name, args=None):
        from control import config
        fn = config.COMMANDS.get(name)
        if fn is None:
            raise CmdError("UNKNOWN_COMMAND", "no command %r; try: %s" % (name, ", ".join(sorted(config.COMMANDS))))
        if args is None:
            args = {}
        if not isinstance(args, dict):
            raise CmdError("BAD_ARGUMENT", "arguments must be an object")
        return fn(self, args)
