# The partner's mirror memory (FIG. 7): what each controller of a pair keeps of the other's state
# through cache mirroring over the back-end channels. The owner of a system drive writes it straight
# into the partner's battery-backed memory, as the DAC960's channel DMA does, without the partner's
# processor: here files in the partner's directory, which outlive a killed firmware process as the
# memory outlives a reset. A write's completion is its acknowledgement: the host's write is
# answered, or the primary overwritten, only after it. The partner reads its mirror memory when it
# needs it: the write-back records at a takeover, the snapshot's exceptions before a backup LUN
# read. Written only while the partner is UP on the link: a lost link is a lost channel, and the
# fencing of control/pair.md keeps a controller that stood down or was reset from writing it.
# The files and their rules: control/pair.md "Mirror memory".
import binascii
import os
import struct
from micropython import const
from snapshot.engine import ACTIVE

WB_FILE = "mirror.journal"      # the partner's write-back journal, as this controller keeps it
WB_EPOCH = "mirror.epoch"       # the partner's epoch that copy belongs to
EPOCH_FILE = "epoch"            # bumped when the controller writes back without its partner's copy
EXC_FILE = "exceptions.mirror"  # the runs of exceptions of the partner's snapshot
ENTRY = const(20)               # an exception run: snapshot id, chunk, slot, count, CRC-32 "<IIIII"
END = const(0xFFFFFFFF)         # the chunk of the entry that ends a snapshot (its slot: the state)
FEED = const(32)                # runs read in one go


def read_int(path, default=-1):
    try:
        with open(path) as f:
            return int(f.read())
    except (OSError, ValueError):
        return default


def write_int(path, n):
    with open(path, "w") as f:
        f.write("%d\n" % n)


def _close(f):
    if f is not None:
        try:
            f.close()
        except OSError:
            pass


class WriteBackMirror:
    """The write-back cache's copy in the partner's memory (storage/cache.py `mirror`): each journal
    record the cache writes goes there too, before the write is answered. When the cache rewrites
    its journal the copy starts afresh: written aside, then put in place and stamped with this
    controller's epoch. A record that cannot be mirrored (the partner is not up) makes the
    controller write back alone: its epoch is bumped, and the partner's copy no longer counts."""

    def __init__(self, pair):
        self.pair = pair
        self.f = None               # the copy, open for appending while it is current
        self.fresh = False          # self.f is a fresh copy, written aside until commit()
        self.alone = False          # a record went unmirrored: the partner's copy is stale

    def _path(self):
        return self.pair.partner_dir + "/" + WB_FILE

    def reset(self):
        self.close()
        if not self.pair.up():
            self._unmirrored()
            return
        try:
            self.f = open(self._path() + ".tmp", "wb")
            self.fresh = True
        except OSError as e:
            self._failed(e)

    def record(self, hdr, data):
        f = self.f
        if f is None or not self.pair.up():
            self._unmirrored()
            return
        try:
            f.write(hdr)
            f.write(data)
        except OSError as e:
            self._failed(e)

    def commit(self):
        # a fresh copy replaces the old one whole, then gets the epoch: a controller killed in
        # between leaves a copy under an older epoch, which does not count (pair.md)
        if not self.fresh:
            return
        f, self.f, self.fresh = self.f, None, False
        path = self._path()
        try:
            f.close()
            os.rename(path + ".tmp", path)
            write_int(self.pair.partner_dir + "/" + WB_EPOCH, read_int(self.pair.ctl.own_dir + "/" + EPOCH_FILE, 0))
            self.f = open(path, "ab")
        except OSError as e:
            self._failed(e)

    def close(self):
        _close(self.f)
        self.f, self.fresh = None, False

    def _failed(self, e):
        self.pair.ctl.events.log("error", "PAIR: WRITE-BACK DATA NOT MIRRORED TO CONTROLLER %d: %s"
                                 % (self.pair.other, e))
        self.close()
        self._unmirrored()

    def _unmirrored(self):
        if not self.alone:
            self.alone = True
            self.close()
            own = self.pair.ctl.own_dir + "/" + EPOCH_FILE
            write_int(own, read_int(own, 0) + 1)


class ExceptionMirror:
    """The snapshot's runs of exceptions in the partner's memory, written by the snapshot's owner as
    each copy begins (claim 11): one ENTRY per run, appended; the list starts empty when a snapshot
    begins. An entry that cannot be written fails the host write that made it (OSError): the
    primary is not overwritten behind the partner's back."""

    def __init__(self, pair):
        self.pair = pair
        self.f = None
        self.e = bytearray(ENTRY)
        self.ev = memoryview(self.e)

    def _path(self):
        return self.pair.partner_dir + "/" + EXC_FILE

    def start(self):
        self.close()
        if self.pair.up():
            try:
                self.f = open(self._path(), "wb")
            except OSError:
                self.f = None       # add() tries again

    def end(self, sid, state):
        # the snapshot ended here (terminated, overflowed, its log lost): said in the partner's
        # memory before any write to the primary goes uncopied, so the partner's backup LUN never
        # reads such a write while the message that says it is on its way (control/pair.md)
        self.add(sid, END, state, 0)

    def add(self, sid, c, slot, k):
        if not self.pair.up():
            return
        f = self.f
        if f is None:
            f = self.f = open(self._path(), "ab")
            cut = f.seek(0, 2) % ENTRY
            if cut:                 # an entry cut short by a failed write: made whole, and bad
                f.write(bytes(ENTRY - cut))
        e = self.e
        struct.pack_into("<IIII", e, 0, sid, c, slot, k)
        struct.pack_into("<I", e, 16, binascii.crc32(self.ev[:16]))
        try:
            f.write(e)
        except OSError:
            self.close()
            raise

    def close(self):
        _close(self.f)
        self.f = None


class ExceptionFeed:
    """A follower's reading of the exceptions its partner mirrors here (engine.absorb), while it
    follows an active snapshot: from where it last stopped to the last whole entry (one being
    written is read again next time); entries of another snapshot, and one a failed write left
    with more behind it, are passed over."""

    def __init__(self, own_dir, engine):
        self.path = own_dir + "/" + EXC_FILE
        self.engine = engine
        self.f = None
        self.at = 0                 # entries taken
        self.follows = -1           # the engine's count of fresh starts when `at` was 0
        self.buf = bytearray(ENTRY * FEED)
        self.mv = memoryview(self.buf)

    def absorb(self):
        eng = self.engine
        if eng.follows != self.follows:
            # the engine follows afresh (a snapshot begun, or read from the log): from the first
            # entry (those already indexed are left out by engine.follow_exceptions)
            self.follows, self.at = eng.follows, 0
        f = self.f
        if f is None:
            try:
                f = self.f = open(self.path, "rb")
            except OSError:
                return 0
        n = 0
        buf = self.buf
        while eng.follower and eng.state == ACTIVE:
            f.seek(self.at * ENTRY)
            got = (f.readinto(buf) or 0) // ENTRY
            for i in range(got):
                o = i * ENTRY
                sid, c, slot, k, crc = struct.unpack_from("<IIIII", buf, o)
                if crc != binascii.crc32(self.mv[o:o + 16]):
                    if i == got - 1:
                        return n        # the last one: being written, read again next time
                    self.at += 1        # with more behind it: one a failed write left, passed
                    continue
                self.at += 1
                if sid == eng.snap_id:  # (the owner appends to a list left by an earlier snapshot
                    n += 1              # when it could not empty it at the start)
                    if c == END:
                        eng.follow_end(slot)
                    else:
                        eng.follow_exceptions(c, slot, k)
                    if eng.state != ACTIVE:
                        return n        # (it ended, or this controller cannot follow it)
            if got < FEED:
                break
        return n
