# Logical units: the back end of the command sets. The command sets (spc, sbc, vendor) check and
# parse CDBs; a logical unit reads, writes, answers for its readiness and describes itself. A
# normal LU is a system drive's LUN; the backup LU is a LUN of the log drive and shows the
# snapshot image. The controller builds them (again whenever the drives or the LUN map change)
# and hands them the layers below; every storage error becomes sense data here.
from micropython import const
from binascii import crc32
from hashlib import sha1
from hw import iop
from storage import raid
from snapshot import engine as snapshot
from lop import ops as lop
from scsi import sense
from scsi import vendor
from scsi.sense import ScsiError

# a logical unit's kind: with its system drive, the key of its reservations (pr.lukey)
NORMAL = const(0)
BACKUP = const(1)

_STORAGE_ERRORS = (raid.DriveError, iop.DiskError)


class Backing:
    # what the logical units of one controller share: the snapshot engine and the long-operation
    # registry, and the controller's own bookkeeping as bound methods (the scsi layer does not
    # import control): follow() brings drive states up to date when a disk changed, refresh()
    # always; flush_drive(sd) destages a drive; visible(initiator, sd), refusal(sd) and start(sd)
    # are the snapshot initiate's masking, Table 2 refusals and the start itself
    def __init__(self, iqn, engine, lops, follow, refresh, flush_drive, visible, refusal, start):
        self.iqn, self.engine, self.lops = iqn, engine, lops
        self.follow, self.refresh, self.flush_drive = follow, refresh, flush_drive
        self.visible, self.refusal, self.start = visible, refusal, start
        # set by a transport that can answer a write once the I/O processor's thread has run it
        # (Controller.execute_here(defer=True)); ticket: the chain the command became, or 0
        self.defer = False
        self.ticket = 0

    def io_error(self, e, lba):
        # a storage error as the host hears it: drive states first follow the disk that failed;
        # an OFFLINE drive is not ready, anything else a medium error at `lba`
        self.refresh()
        if isinstance(e, raid.DriveError) and e.kind == "offline":
            return sense.not_ready()
        return ScsiError(sense.MEDIUM_ERROR, 0x11, 0x00, lba)


class LogicalUnit:
    # the same system drive mapped on both host ports is two of these but one LU to reservations
    kind = NORMAL
    read_only = False
    model_suffix = ""          # after the board's model in INQUIRY
    _letter = "P"              # of the serial number

    def __init__(self, backing, sd, port, lun, drive, entry):
        # `drive`: the built SystemDrive (a CachedDrive when write-back) or None; `entry`: its NV
        # memory entry, whose facts an LU keeps until the controller builds it again
        self.b = backing
        self.sd, self.port, self.lun = sd, port, lun
        self.drive = drive
        self.wb = entry.write_back()
        self.stripe_blocks = entry.stripe_kb * 2
        self.vdrive = entry.vdrive
        # a full stripe: the data of one row of the array, written without reading parity back
        self.row_blocks = self.stripe_blocks * raid.data_units(entry.level(), len(entry.vdrive))

    def granularity_blocks(self):
        return self.row_blocks

    def optimal_blocks(self, most):
        # the most whole rows a request of at most `most` blocks can carry: QD 1 sequential
        # transfers measured fastest there (firmware/scsi/README.md "Block limits")
        r = self.row_blocks
        return most // r * r if r <= most else most

    def write_back(self):
        return self.wb

    def serial(self):
        return ("%08X%02d%s" % (crc32(self.b.iqn.encode()), self.sd, self._letter)).encode()

    def naa(self):
        # NAA 6 (IEEE registered extended): stable for a system drive's life, distinct per LU kind
        seed = "%s/%d/%d/%r" % (self.b.iqn, self.sd, self.kind, self.vdrive)
        d = bytearray(sha1(seed.encode()).digest()[:16])
        d[0] = 0x60 | (d[0] & 0x0F)
        return bytes(d)


class NormalLU(LogicalUnit):
    def ready(self):
        self.b.follow()
        d = self.drive
        if d is None or d.status() == raid.OFFLINE:
            raise sense.not_ready()
        if self.b.lops.incomplete[self.sd]:
            # a copy onto this drive stopped half-way: never let a host take it for a backup
            raise sense.incomplete_copy()

    def busy(self):
        # FIG. 8: the LUNs of the copy's destination answer BUSY while the copy runs
        lops = self.b.lops
        if not lops.ops:
            return False
        op = lops.running(lop.COPY)
        return op is not None and self.sd == op.dst

    def capacity(self):
        d = self.drive
        return d.blocks if d is not None else 0

    def _fence(self, lba, n, write):
        # an initialization zeroes ahead of its position: a read there would see the old data it
        # is about to erase, a write not yet behind its saved position would be lost
        for op in self.b.lops.ops:
            if op.kind == lop.INIT and op.sd == self.sd and lba + n > (op.safe if write else op.pos):
                raise ScsiError(sense.NOT_READY, 0x04, 0x04)      # not ready, format in progress

    def read(self, lba, mv):
        if self.b.lops.ops:
            self._fence(lba, len(mv) >> 9, False)
        try:
            self.drive.read(lba, mv)
        except _STORAGE_ERRORS as e:
            raise self.b.io_error(e, lba)

    def write(self, lba, mv, fua, chain=False):
        # a write to the primary of an active snapshot goes through its Origin (copy-on-write).
        # `chain`: the command's only write, from data-out that stays put until it is answered: a
        # write-through drive outside a snapshot may hand it to the I/O processor's thread
        b = self.b
        n = len(mv) >> 9
        if b.lops.ops:
            self._fence(lba, n, True)
        try:
            e = b.engine
            for f in e.listeners:
                f(self.sd, lba, n)                    # change tracking, before the data is written
            o = e.origins.get(self.sd)
            if o is not None:
                o.write(lba, mv)             # the Origin during a snapshot
            elif not (chain and b.defer and not self.wb and self._chain(lba, mv)):
                self.drive.write(lba, mv)
            if fua and self.wb:
                self.drive.flush()
        except _STORAGE_ERRORS as e:
            raise b.io_error(e, lba)
        except snapshot.SnapshotError:
            raise ScsiError(sense.HARDWARE_ERROR, 0x55, 0x03)   # insufficient resources: buffer

    def _chain(self, lba, mv):
        t = self.drive.write_chained(lba, mv, self)
        self.b.ticket = t
        return t

    def flush(self):
        self.b.flush_drive(self.sd)

    def initiate(self, initiator):
        # the log drive keeps and shows the image: a caller that sees none of its LUs has, as far
        # as it can tell, no log LUN defined (scsi/vendor.md)
        b = self.b
        if b.visible(initiator, b.engine.log_sd) is None:
            raise vendor.refused(vendor.NO_LOG_DEFINED)
        r = b.refusal(self.sd)
        if r is not None:
            raise vendor.refused(r[0])
        b.start(self.sd)

    def terminate(self):
        e = self.b.engine
        if e.state != snapshot.ACTIVE or self.sd != e.primary_sd:
            raise vendor.refused(vendor.NOT_IN_PROGRESS)
        e.terminate()


class BackupLU(LogicalUnit):
    # the snapshot's image, read-only, with the primary's geometry while a snapshot is active
    kind = BACKUP
    read_only = True
    model_suffix = " BACKUP"
    _letter = "B"

    def ready(self):
        b = self.b
        b.follow()
        if b.engine.state != snapshot.ACTIVE:
            if b.engine.take_overflow():
                raise vendor.log_overflow()
            raise sense.not_ready()

    def busy(self):
        return False

    def capacity(self):
        e = self.b.engine
        if e.state == snapshot.ACTIVE:
            return e.primary.blocks
        d = self.drive
        return d.blocks if d is not None else 0

    def read(self, lba, mv):
        e = self.b.engine
        try:
            e.read_backup(lba, mv)
        except _STORAGE_ERRORS as err:
            s = self.b.io_error(err, lba)
            if e.take_overflow():
                raise vendor.log_overflow()   # the read that lost the snapshot is the one to say so
            raise s
        except snapshot.Ended:
            self.ready()        # the end is reported instead of what was read, as ready() does

    def write(self, lba, mv, fua):
        raise sense.write_protected()

    def flush(self):
        pass                    # nothing of the image is cached

    def initiate(self, initiator):
        raise vendor.refused(vendor.ISSUED_TO_BACKUP)

    def terminate(self):
        e = self.b.engine
        if e.state != snapshot.ACTIVE:
            raise vendor.refused(vendor.NOT_IN_PROGRESS)
        e.terminate()
