# The I/O processor's own thread (FIG. 3: the i960 beside the host CPU): it runs chains of disk
# transfers and XOR steps that the firmware's main loop plans, so a host write's data movement
# (parity reads, XOR, data and parity writes, its intent record) runs on the second core while the
# main loop reads the next commands. storage/README.md "The I/O processor's thread" has the rules.
#
# The thread runs Python under micropython.heap_lock(): it allocates nothing, so it can never start
# a garbage collection (which, in this build without a GIL, would scan the main loop's objects while
# they change), and a failing system call costs it no memory either (the emergency exception). It
# stores only small integers and the disk file objects of its steps (held in the ring's `f` until
# the chain is settled), so a collection the main loop makes never misses an object it moved.
#
# Ordering: chains run one at a time in the order submitted. Everything else that writes the disks
# (a write here, a slot state change, the intent record) first waits for every chain in flight
# (IOP.drain), so the disks see the same order of writes as without the thread, and a killed
# firmware leaves a prefix of it: the intent record of the chain in flight is the last one written.
# A read here waits only for the chains that write its disks (wait_for): what it reads is then
# what it would read after them all. The thread moves data through disk file handles of its own
# (IOP.tfiles), so a file offset is never moved by both threads.
import _thread
import micropython
import time
from array import array
from micropython import const
from hw.doorbell import Doorbell
from hw.xor import xor_into, xor_into2, xor_of, zero

IDLE_POLLS = const(8)    # naps of 25 us the thread takes watching for the next chain before it sleeps
OPS = const(2048)        # steps in the ring: a chain's steps stay there until it is settled
CHAINS = const(64)       # chains in flight or not yet settled
REC = const(40)          # an intent record (hw/iop.py: header and CRC, no payload)

_READ = const(1)
_WRITE = const(2)
_XOR = const(3)          # a ^= b
_XOR2 = const(4)         # a ^= b ^ c
_XOR_OF = const(5)       # a = b ^ c
_ZERO = const(6)         # a = 0


class Full(Exception):
    pass


class Chains:
    def __init__(self, iop):
        self.iop = iop
        self._files = iop.tfiles           # the thread's own disk handles (the IOP's list)
        # where each of those files' offset is after the thread's last transfer on it, so a
        # sequential transfer saves its lseek
        self._pf = [None] * iop.n_slots
        self._pp = array("l", bytes(8 * iop.n_slots))
        # per disk slot, the ticket of the last chain planned to write there: a read on the main
        # loop waits only for those (wait_for), not for the chains on other disks nor for reads
        self.touch = array("l", bytes(8 * iop.n_slots))
        self.op = bytearray(OPS)
        self.slot = bytearray(OPS)         # the disk slot of a transfer
        self.bad = bytearray(OPS)          # 1: this transfer failed
        self.pos = array("l", bytes(8 * OPS))   # ("q" items are read as new big ints)
        self.nb = array("i", bytes(4 * OPS))
        self.f = [None] * OPS
        self.a = [None] * OPS
        self.b = [None] * OPS
        self.c = [None] * OPS
        self.first = array("i", bytes(4 * CHAINS))
        self.count = array("i", bytes(4 * CHAINS))
        # 1: a step failed (a read stops its chain, a write not); 2: not run (planned before a
        # failure the main loop had not yet applied, it is written there instead)
        self.failed = bytearray(CHAINS)
        self.recs = [memoryview(bytearray(REC)) for _ in range(CHAINS)]
        self.recf = [r[0:REC - 4] for r in self.recs]
        # what the submitter gave with each chain, for settle(): a note and a block address and
        # buffer of its own (a host write's, should it have to be written again)
        self.what = [None] * CHAINS
        self.at = array("l", bytes(8 * CHAINS))
        self.data = [None] * CHAINS
        self.last = self.last_data = None  # settle(): the chain settled, as given
        self.last_at = 0
        self.last_failed = 0
        self.head = 0                      # next free step
        self.used = 0                      # steps held by unsettled chains
        self.submitted = 0                 # chains handed over; the thread has run `done` of them
        self.done = 0
        self.settled = 0                   # chains whose outcome the main loop has taken
        self.applied = 0                   # chains whose failed disks are marked failed
        self.skip_until = 0                # chains before this one are not run (failed 2)
        self.planning = -1                 # the step the chain being planned starts at
        self.n = 0
        self.stopping = False
        self.hot = False                   # the thread is awake: a chain given now costs no wake-up
        self.reads = self.writes = 0       # transfers and bytes the thread moved (IOP.reads etc.)
        self.read_bytes = self.write_bytes = 0
        self.faults = 0                    # chains this code failed (an allocation, a bug): never
        # main loop -> thread: woken once per batch; thread -> main loop: a ring per chain
        self.bell = Doorbell(b"iop")
        self.rx = self.bell.rx
        _thread.start_new_thread(self._run, ())

    # ---- planning (main loop) --------------------------------------------------------------
    def room(self):
        """Whether begin() would start a chain now."""
        return self.submitted - self.settled < CHAINS and self.used <= OPS // 2

    def begin(self):
        """Starts planning a chain: False when the ring holds no room for one."""
        if not self.room():
            return False
        self.planning = self.head
        self.n = 0
        self.failed[self.submitted % CHAINS] = 0
        return True

    def _step(self, op, a, b=None, c=None, nb=0):
        if self.used + self.n >= OPS:
            raise Full()
        k = (self.planning + self.n) % OPS
        self.op[k] = op
        self.a[k] = a
        self.b[k] = b
        self.c[k] = c
        self.nb[k] = nb
        self.bad[k] = 0
        self.n += 1
        return k

    def _transfer(op):
        # Chains.read and Chains.write: one step each, written out (no further call per transfer:
        # a copy slice or a host write plans one per stripe unit)
        def transfer(self, slot, lba, mv):
            n = self.n
            if self.used + n >= OPS:
                raise Full()
            k = self.planning + n
            if k >= OPS:
                k -= OPS
            self.op[k] = op
            self.a[k] = mv
            self.bad[k] = 0
            self.f[k] = self._files[slot]
            self.slot[k] = slot
            self.pos[k] = lba * 512
            if op == _WRITE:
                self.touch[slot] = self.submitted + 1     # (this chain's ticket once submitted)
            self.n = n + 1
        return transfer

    read = _transfer(_READ)
    write = _transfer(_WRITE)

    def xor_into(self, dst, src, nbytes):
        self._step(_XOR, dst, src, None, nbytes)

    def xor_into2(self, dst, a, b, nbytes):
        self._step(_XOR2, dst, a, b, nbytes)

    def xor_of(self, dst, a, b, nbytes):
        self._step(_XOR_OF, dst, a, b, nbytes)

    def zero(self, dst, nbytes):
        self._step(_ZERO, dst, None, None, nbytes)

    def intent(self, kind, drive, geo, a, b, c=0, member=-1, payload=None):
        # the record goes first in the chain, from the chain's own record buffer
        iop = self.iop
        f = iop.intent_file()
        if f is None:
            return
        i = self.submitted % CHAINS
        rec = self.recs[i]
        iop.pack_intent(rec, self.recf[i], kind, drive, geo, a, b, c, member)
        iop.intent_writes += 1
        k = self._step(_WRITE, rec)
        self.f[k] = f
        self.slot[k] = 255
        self.pos[k] = 0

    def cancel(self):
        self.planning = -1

    def submit(self, what, at=0, data=None):
        """Hands the planned chain to the thread: its ticket (settle() gives back what came with it)."""
        i = self.submitted % CHAINS
        self.first[i] = self.planning
        self.count[i] = self.n
        self.what[i] = what
        self.at[i] = at
        self.data[i] = data
        self.head = (self.planning + self.n) % OPS
        self.used += self.n
        self.planning = -1
        self.submitted += 1
        self.iop.inflight = True
        self.bell.wake()
        return self.submitted

    # ---- completion (main loop) ------------------------------------------------------------
    def woken(self):
        # the rings of the thread: each says a chain ended
        self.bell.answered()
        self.apply()

    def drain(self):
        """Waits until the thread has run every chain, marking the disks that failed in them."""
        while self.done != self.submitted:
            self.apply()         # (a failed chain holds the thread until this is done)
            time.sleep_us(20)
        self.iop.inflight = False
        self.apply()

    def wait_for(self, slots):
        """Waits until the thread has run every chain that writes these disk slots (a list),
        marking the disks that failed in them: what a read there must wait for. (Chains
        run in order, so the last ticket of a slot covers the ones before it. A ticket past
        `submitted` is that of a chain planned and cancelled, which overwrote the slot's last
        one: then every chain given is waited for.)"""
        touch = self.touch
        for s in slots:
            t = touch[s]
            if t > self.submitted:
                t = self.submitted
            if t > self.applied:
                while self.done < t:
                    self.apply()
                    time.sleep_us(20)
                self.apply()

    def apply(self):
        # a disk that failed a transfer is failed now, before anything reads or writes around it.
        # The thread waits meanwhile; the chains given before this moment were planned with the
        # disk online, so they are not run but written again here (failed 2)
        while self.applied != self.done:
            i = self.applied % CHAINS
            if self.failed[i] == 1:
                k = self.first[i]
                for _ in range(self.count[i]):
                    if self.bad[k]:
                        if self.slot[k] == 255:
                            self.iop.intent_error = "the intent record could not be written"
                        else:
                            self.iop.failed_transfer(self.slot[k])
                    k = (k + 1) % OPS
                self.skip_until = self.submitted
            self.applied += 1

    def next_note(self):
        # the note of the oldest chain ended and not settled, or None
        return None if self.settled == self.done else self.what[self.settled % CHAINS]

    def settle(self):
        """The ticket of the oldest chain the thread has ended, or 0: none has. Its steps are free
        again; what was submitted with it is in `last`, `last_at` and `last_data`, and
        `last_failed` says whether it failed (1) or was not run (2). (Attributes, not a tuple:
        every host write is settled once, and a tuple would allocate.)"""
        if self.settled == self.done:
            return 0
        self.apply()
        i = self.settled % CHAINS
        self.last = self.what[i]
        self.last_at = self.at[i]
        self.last_data = self.data[i]
        self.last_failed = self.failed[i]
        self.what[i] = self.data[i] = None
        k = self.first[i]
        for _ in range(self.count[i]):     # let go of the buffers
            self.a[k] = self.b[k] = self.c[k] = self.f[k] = None
            k = (k + 1) % OPS
        self.used -= self.count[i]
        self.settled += 1
        if self.settled == self.submitted:
            self.iop.inflight = False
        return self.settled

    # ---- the thread --------------------------------------------------------------------------
    def stop(self):
        # (the main loop, when the controller closes): the thread ends after what it was given
        self.drain()
        self.stopping = True
        self.bell.wake()
        self.bell.close_main()

    def _run(self):
        micropython.heap_lock()
        while not self.stopping:
            naps = IDLE_POLLS    # (naps, not a spin: the other core stays free for the host)
            while naps and self.done == self.submitted:
                time.sleep_us(25)
                naps -= 1
            if self.done == self.submitted:
                self.hot = False
                self.bell.sleep()
                self.hot = True
            while self.done != self.submitted and not self.stopping:
                i = self.done % CHAINS
                if self.done < self.skip_until:
                    self.failed[i] = 2
                else:
                    try:
                        self._chain(i)
                    except Exception:
                        self.failed[i] = 1   # (a fault of this code: the main loop writes it again)
                        self.faults += 1
                self.done += 1
                self.bell.ring()
                if self.failed[i] == 1:
                    # no chain runs until the main loop has marked the failed disks failed
                    # (and fenced the chains planned before): the intent record of this one
                    # stays until then
                    while self.applied < self.done and not self.stopping:
                        time.sleep_ms(1)
        self.bell.close_thread()

    def _chain(self, i):
        ops = self.op            # locals: no lookup per step (one by one: a tuple would allocate)
        a = self.a
        b = self.b
        c = self.c
        nb = self.nb
        files = self.f
        pos = self.pos
        slots = self.slot
        pf = self._pf
        pp = self._pp
        k = self.first[i]
        n = self.count[i]
        reads = writes = 0       # counted here, added to the thread's own once (IOP.reads etc.)
        rb = wb = 0
        while n:
            op = ops[k]
            if op == _READ or op == _WRITE:
                f = files[k]
                mv = a[k]
                want = len(mv)
                p = pos[k]
                s = slots[k]
                if s == 255:     # the intent record: its own file, always at 0
                    s = -1
                try:
                    if s < 0 or pf[s] is not f or pp[s] != p:
                        f.seek(p)
                    if s >= 0:
                        pf[s] = None      # (until this transfer is whole)
                    got = f.readinto(mv) if op == _READ else f.write(mv)
                except OSError:
                    got = -1
                if got != want:
                    self.bad[k] = 1
                    self.failed[i] = 1
                    if op == _READ:
                        break    # nothing of its row is written yet: the main loop redoes it
                else:
                    if s >= 0:
                        pp[s] = p + want
                        pf[s] = f         # (held by f[k] too until settled: no collection misses it)
                    if op == _READ:
                        reads += 1
                        rb += want
                    else:
                        writes += 1
                        wb += want
            elif op == _XOR2:
                xor_into2(a[k], b[k], c[k], nb[k])
            elif op == _XOR:
                xor_into(a[k], b[k], nb[k])
            elif op == _XOR_OF:
                xor_of(a[k], b[k], c[k], nb[k])
            else:
                zero(a[k], nb[k])
            k += 1
            if k == OPS:
                k = 0
            n -= 1
        self.reads += reads
        self.read_bytes += rb
        self.writes += writes
        self.write_bytes += wb
