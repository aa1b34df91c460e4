# I/O processor (FIG. 3): the physical disks behind the drive channels.
# Each slot is a sparse file "disk-<channel>-<target>.img" of disk_blocks * 512 bytes in the
# board's state directory. The unix port's binary files are unbuffered (every write is a write(2)),
# so data written here survives a killed firmware process without any flush.
import os
import time
import struct
import binascii
from micropython import const
from hw.chains import Chains

SECTOR = const(512)
STATE_FILE = "slots.state"
# intent record of the multi-member write in flight (storage/README.md "Crash consistency"): one record,
# rewritten in place before each write; header then payload, CRC over both
INTENT_FILE = "intent.log"
INTENT_MAGIC = b"RBIX"
INTENT_FMT = "<4sBBHIIIIIiI"  # magic, kind, 0, drive, geometry, seq, a, b, c, member, payload length
_IHDR = const(40)              # the fields (36 bytes) and their CRC
INTENT_MAX_PAYLOAD = const(1048576)
STATES = ("online", "failed", "removed", "rebuild")


class DiskError(Exception):
    # .slot: the slot; .reason: 'failed' | 'removed' (state refuses I/O) | 'io' (the file failed)
    def __init__(self, slot, reason, detail=""):
        super().__init__("disk %d: %s%s" % (slot, reason, (" (" + detail + ")") if detail else ""))
        self.slot = slot
        self.reason = reason
        self.detail = detail


def exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def _size(path):
    return os.stat(path)[6]


def _blank(path, nbytes):
    # a sparse file of nbytes: only the last byte is written
    f = open(path, "wb")
    if nbytes:
        f.seek(nbytes - 1)
        f.write(b"\0")
    f.close()


def _transfer(writing):
    # IOP.read and IOP.write (lba in sectors; len(mv) whole sectors): one body, made twice so that
    # neither pays a further call on the data path
    def transfer(self, slot, lba, mv):
        if self.inflight:            # the I/O processor's thread first (hw/chains.py)
            if writing:
                self.drain()
            elif 0 <= slot < self.n_slots:
                self._one[0] = slot
                self.chains.wait_for(self._one)
        n = len(mv)
        if not 0 <= slot < self.n_slots or n & 511 or lba < 0 or lba + (n >> 9) > self.disk_blocks \
                or self._state[slot] in ("failed", "removed"):
            self._check(slot, lba, mv)   # one test on the hot path; the precise error from here
        f = self.files[slot]
        p = lba * SECTOR
        pf = self.at_file
        try:
            if pf[slot] is not f or self.at_pos[slot] != p:
                f.seek(p)
            pf[slot] = None
            done = f.write(mv) if writing else f.readinto(mv)
            while done < n:
                # short: a read of a file that shrank under us, a write to a full file system
                k = f.write(mv[done:]) if writing else f.readinto(mv[done:])
                if not k:
                    raise OSError("short %s at byte %d" % ("write" if writing else "read", p + done))
                done += k
        except OSError as e:
            raise self._io_failed(slot, e)
        pf[slot] = f
        self.at_pos[slot] = p + n
        if writing:
            self._writes += 1
            self._write_bytes += n
        else:
            self._reads += 1
            self._read_bytes += n
    return transfer


class IOP:
    def __init__(self, state_dir, n_slots, disk_blocks, names, intent=True, own_dir=None, makes_disks=True):
        if n_slots < 1 or len(names) != n_slots:
            raise ValueError("iop: %d names for %d slots" % (len(names), n_slots))
        if disk_blocks < 1:
            raise ValueError("iop: disk_blocks must be >= 1, got %r" % (disk_blocks,))
        self.state_dir = state_dir
        # the intent record is the controller's own (each of a pair has one); the disks are shared
        self.own_dir = own_dir or state_dir
        # of a pair only controller 0 makes the blank disks of a first boot; controller 1 waits for
        # them (two makers would race: one could find the other's file half made)
        self.makes_disks = makes_disks
        self.n_slots = n_slots
        self.disk_blocks = disk_blocks
        self.names = list(names)
        self.paths = []
        for nm in self.names:
            p = nm.split(":")
            if len(p) != 2 or not p[0].isdigit() or not p[1].isdigit():
                raise ValueError("iop: slot name %r is not 'channel:target'" % (nm,))
            self.paths.append("%s/disk-%s-%s.img" % (state_dir, p[0], p[1]))
        # problems found at boot, one (slot, text) per disk the board could not bring online;
        # the controller logs them as events
        self.problems = []
        self.files = [None] * n_slots    # each slot's open disk file, the main loop's
        # the I/O processor's thread's own handle on each disk file (opened and closed with
        # `files`): each thread moves only its own file offsets, so a read on the main loop need
        # not wait for the thread's reads of the same disk
        self.tfiles = [None] * n_slots
        self._state = ["online"] * n_slots
        self.gen = 0    # bumped on every slot state change: system drives cache their status by it
        self.on_change = None
        # where each disk file's offset is after the main loop's last transfer on it (None: not
        # known), so a sequential transfer saves its lseek (the thread keeps its own: hw/chains.py)
        self.at_file = [None] * n_slots
        self.at_pos = [0] * n_slots
        self._one = [0]          # (a slot as a list for Chains.wait_for, made once)
        first_boot = not self._load_states()
        for s in range(n_slots):
            self._open(s, first_boot)
        self._save_states()
        # the I/O processor's thread (hw/chains.py), started by start_thread(); inflight: chains
        # handed to it that nothing has waited for yet
        self.chains = None
        self.inflight = False
        self.reset_counters()
        # the intent record: off (intent=False) only for measurements and demonstrations
        self._ih = bytearray(_IHDR)
        self._ihv = memoryview(self._ih)
        self._ifields = self._ihv[0:_IHDR - 4]
        self._if = None
        self._iseq = 0
        self.intent_pending = None   # the record found at boot: (kind, drive, geometry, a, b, c, member, payload)
        self.intent_error = None     # why records cannot be written (the state directory failed)
        self.intent_writes = 0
        if intent:
            self._intent_open()

    # ---- slot states, kept in a small text file written as temp + rename
    def _load_states(self):
        path = self.state_dir + "/" + STATE_FILE
        try:
            f = open(path, "rb")
        except OSError:
            return False
        try:
            raw = f.read()
        finally:
            f.close()
        try:
            text = raw.decode()
        except UnicodeError:
            # not the file we write: every slot counts as online (the bad file is kept aside)
            os.rename(path, path + ".bad")
            self.problems.append((-1, "%s is not a slot state file (kept as %s.bad): every slot taken as online"
                                  % (STATE_FILE, STATE_FILE)))
            return True
        for ln in text.split("\n"):
            ln = ln.strip()
            if not ln or ln[0] == "#":
                continue
            w = ln.split()
            if len(w) != 2 or w[1] not in STATES:
                self.problems.append((-1, "%s: bad line %r ignored" % (STATE_FILE, ln)))
                continue
            if w[0] in self.names:
                self._state[self.names.index(w[0])] = w[1]
            else:
                self.problems.append((-1, "%s: no slot %s on this board, ignored" % (STATE_FILE, w[0])))
        return True

    def _save_states(self):
        path = self.state_dir + "/" + STATE_FILE
        # the temporary copy in the controller's own directory: both of a pair may write at once
        tmp = self.own_dir + "/" + STATE_FILE + ".tmp"
        f = open(tmp, "w")
        f.write("# slot state (online|failed|removed|rebuild)\n")
        for s in range(self.n_slots):
            f.write("%s %s\n" % (self.names[s], self._state[s]))
        f.close()
        os.rename(tmp, path)

    def _open(self, s, first_boot):
        path = self.paths[s]
        want = self.disk_blocks * SECTOR
        if self._state[s] == "removed":
            return
        if first_boot and not self.makes_disks:
            self._wait_for_disk(path, want)
        if not exists(path):
            if first_boot:
                _blank(path, want)
            else:
                # the disk was pulled while the board was off
                self._state[s] = "removed"
                self.problems.append((s, "%s missing: slot %s marked removed" % (path, self.names[s])))
                return
        try:
            size = _size(path)
            if size < want:
                self._state[s] = "failed"
                self.problems.append((s, "%s is %d bytes, a disk of this board has %d: slot %s marked failed"
                                      % (path, size, want, self.names[s])))
                return
            self._attach(s)
        except OSError as e:
            self._close(s)
            self._state[s] = "failed"
            self.problems.append((s, "%s cannot be opened (%s): slot %s marked failed" % (path, e, self.names[s])))

    def _wait_for_disk(self, path, want, ms=10000):
        while ms > 0 and not (exists(path) and _size(path) >= want):
            time.sleep_ms(20)
            ms -= 20

    def _check(self, slot, lba, mv):
        if not 0 <= slot < self.n_slots:
            raise ValueError("iop: no slot %r" % (slot,))
        n = len(mv)
        if n % SECTOR:
            raise ValueError("iop: length %d is not whole sectors" % n)
        if lba < 0 or lba + n // SECTOR > self.disk_blocks:
            raise ValueError("iop: slot %d lba %d+%d beyond %d blocks" % (slot, lba, n // SECTOR, self.disk_blocks))
        st = self._state[slot]
        if st == "failed" or st == "removed":
            raise DiskError(slot, st)
        return self.files[slot]

    def _io_failed(self, slot, e):
        # a disk whose file errors drops out, as a real drive the controller gives up on (after
        # the thread's chains: a read waits only for those on its own disk, and a slot state
        # changes between writes)
        if self.inflight:
            self.drain()
        self._set(slot, "failed")
        return DiskError(slot, "io", str(e))

    # ---- the I/O processor's thread (hw/chains.py)
    def start_thread(self):
        if self.chains is None:
            self.chains = Chains(self)
        return self.chains

    def drain(self):
        # every chain handed to the thread has run (and its failed disks are marked failed)
        if self.chains is not None:
            self.chains.drain()

    def failed_transfer(self, slot):
        # a transfer of the thread failed: the disk drops out, as in _io_failed
        if self._state[slot] == "online" or self._state[slot] == "rebuild":
            self._set(slot, "failed")

    # ---- data path
    read = _transfer(False)
    write = _transfer(True)

    # ---- slot states
    def state(self, slot):
        if not 0 <= slot < self.n_slots:
            raise ValueError("iop: no slot %r" % (slot,))
        return self._state[slot]

    def _set(self, slot, st):
        # (callers have waited for the thread's chains, or are its failure being applied)
        self.state(slot)
        self._state[slot] = st
        self.gen += 1
        self._save_states()
        if self.on_change is not None:
            self.on_change()     # the partner of a pair shares the slots

    def fail(self, slot):
        self.intent_clear()
        self._set(slot, "failed")

    def remove(self, slot):
        self.intent_clear()
        self._set(slot, "removed")
        self._close(slot)

    def replace(self, slot):
        # a new, blank disk in the slot: writes go to it, RAID does not trust it until rebuilt
        self.state(slot)
        self.intent_clear()
        self._close(slot)
        _blank(self.paths[slot], self.disk_blocks * SECTOR)
        self._attach(slot)
        self._set(slot, "rebuild")

    def _close(self, slot):
        # (nothing in flight: the callers have waited for the thread's chains)
        for fs in (self.files, self.tfiles):
            f = fs[slot]
            if f:
                f.close()
                fs[slot] = None

    def _attach(self, slot):
        # the disk file's two handles: the main loop's and the thread's
        self.files[slot] = open(self.paths[slot], "r+b")
        self.tfiles[slot] = open(self.paths[slot], "r+b")

    def set_online(self, slot):
        if self.files[slot] is None:
            raise DiskError(slot, self._state[slot], "no disk in the slot")
        self.intent_clear()
        self._set(slot, "online")

    # ---- intent record (storage/README.md "Crash consistency"): which multi-member write may be torn
    def _intent_open(self):
        path = self.own_dir + "/" + INTENT_FILE
        try:
            if not exists(path):
                open(path, "wb").close()
            f = open(path, "r+b")
        except OSError as e:
            self.intent_error = "%s cannot be opened (%s): writes are not crash-consistent" % (path, e)
            self.problems.append((-1, self.intent_error))
            return
        self._if = f
        self._read_intent(f)

    def _read_intent(self, f):
        # the record in f (if a write was in flight when its controller stopped) into intent_pending
        h = f.read(_IHDR)
        if len(h) != _IHDR or h[0:4] != INTENT_MAGIC:
            if h and h[0:4] not in (INTENT_MAGIC, b"\0\0\0\0"):
                # neither a record nor cleared (each is one write(2) a kill cannot tear): damage
                self.problems.append((-1, "%s is damaged: a write the last stop cut short may have left "
                                      "mirrors or parity disagreeing; run a consistency check" % INTENT_FILE))
            return  # empty or cleared: nothing in flight
        magic, kind, _, drive, geo, seq, a, b, c, member, plen = struct.unpack_from(INTENT_FMT, h, 0)
        self._iseq = max(self._iseq, seq)
        if plen > INTENT_MAX_PAYLOAD:
            return
        pay = f.read(plen) if plen else b""
        crc = binascii.crc32(pay, binascii.crc32(memoryview(h)[0:_IHDR - 4]))
        if len(pay) != plen or crc != struct.unpack_from("<I", h, _IHDR - 4)[0]:
            return  # torn while rewritten: its write had not begun, the one before it had ended
        self.intent_pending = (kind, drive, geo, a, b, c, member, pay if plen else None)

    def adopt_intent(self, other_dir):
        # failover: the dead partner's intent record, to close its write hole here; the record is
        # then cleared, so a restart of the partner cannot apply it again. -> its drive or None
        path = other_dir + "/" + INTENT_FILE
        try:
            f = open(path, "r+b")
        except OSError:
            return None
        try:
            self.intent_pending = None
            self._read_intent(f)
            f.seek(0)
            f.write(bytes(_IHDR))
        finally:
            f.close()
        return None if self.intent_pending is None else self.intent_pending[1]

    def reload_states(self):
        # the partner of a pair changed a slot's state (fail, remove, replace): the file is shared
        self.drain()
        old = list(self._state)
        self._load_states()
        for s in range(self.n_slots):
            if self._state[s] != old[s]:
                if self._state[s] == "online" and self.files[s] is None:
                    self._open(s, False)
                elif self._state[s] == "removed":
                    self._close(s)
                self.gen += 1

    @property
    def intent_on(self):
        return self._if is not None

    def intent_file(self):
        return self._if

    def pack_intent(self, h, fields, kind, drive, geo, a, b, c=0, member=-1, payload=None):
        # the record of the write about to start into h (_IHDR bytes; fields: a view of all but
        # its CRC); its payload, if any, is written after it
        self.intent_pending = None  # any older record is now overwritten
        plen = 0 if payload is None else len(payload)
        seq = (self._iseq + 1) & 0xFFFFFFFF
        self._iseq = seq
        struct.pack_into(INTENT_FMT, h, 0, INTENT_MAGIC, kind, 0, drive, geo, seq, a, b, c, member, plen)
        crc = binascii.crc32(fields)
        if plen:
            crc = binascii.crc32(payload, crc)
        struct.pack_into("<I", h, _IHDR - 4, crc)
        return plen

    def intent(self, kind, drive, geo, a, b, c=0, member=-1, payload=None):
        # record the write about to start; one write(2) (two with a payload), no allocation
        f = self._if
        if f is None:
            return
        if self.inflight:
            self.drain()
        plen = self.pack_intent(self._ih, self._ifields, kind, drive, geo, a, b, c, member, payload)
        try:
            f.seek(0)
            n = f.write(self._ihv)
            if plen:
                n += f.write(payload)
            if n != _IHDR + plen:
                raise OSError("short write")
        except OSError as e:
            # the data path carries on; crash consistency is lost until the directory works again
            self.intent_error = "%s/%s: %s" % (self.own_dir, INTENT_FILE, e)
            return
        self.intent_writes += 1

    def intent_clear(self):
        # nothing in flight (slot state changes run between writes): a record of a completed write
        # must not be resynced against the new member states
        if self.inflight:
            self.drain()
        self.intent_pending = None
        f = self._if
        if f is None:
            return
        try:
            f.seek(0)
            f.write(b"\0\0\0\0")
        except OSError as e:
            self.intent_error = "%s/%s: %s" % (self.own_dir, INTENT_FILE, e)

    # transfers and bytes moved, here and by the I/O processor's thread (each counts its own: the
    # two run at once)
    def _counted(name):
        def total(self):
            ch = self.chains
            return getattr(self, "_" + name) + (0 if ch is None else getattr(ch, name))
        return property(total)

    reads = _counted("reads")
    writes = _counted("writes")
    read_bytes = _counted("read_bytes")
    write_bytes = _counted("write_bytes")

    def reset_counters(self):
        self.drain()
        self._reads = self._writes = self._read_bytes = self._write_bytes = 0
        ch = self.chains
        if ch is not None:
            ch.reads = ch.writes = ch.read_bytes = ch.write_bytes = 0

    def close(self):
        if self.chains is not None:
            self.chains.stop()
            self.chains = None
        if self._if is not None:
            self._if.close()
            self._if = None
        for s in range(self.n_slots):
            self._close(s)
