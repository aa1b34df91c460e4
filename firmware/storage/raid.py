# System drives: a RAID level over extents ("virtual drives") of physical disks. Layouts are in
# storage/README.md. All addresses are 512-byte sectors. A member is trusted only when its slot is 'online';
# a 'rebuild' member (a replacement disk) receives every write but is never read for data.
import binascii
from micropython import const
from hw.iop import DiskError
from hw.chains import Full as ChainFull
from hw import xor
from hw import levels
from hw.levels import RAID0, RAID1, RAID3, RAID5, RAID6, NORAID

SECTOR = const(512)
VIEWS = const(64)        # views of the scratch buffers a drive keeps (_view)
# intent record kinds (storage/README.md "Crash consistency")
INTENT_RANGE = const(1)  # a = lba, b = count: drive blocks a whole write touches
INTENT_ROW = const(2)    # a = row, b..c = sectors of the unit, member = lost member, payload = its content
# what SystemDrive.status() answers: the status by name (NV memory keeps its code)
ONLINE = levels.STATUS_NAMES[levels.ONLINE]
CRITICAL = levels.STATUS_NAMES[levels.CRITICAL]
OFFLINE = levels.STATUS_NAMES[levels.OFFLINE]


def data_units(level, n):
    # stripe units of data per row
    if level == RAID0:
        return n
    if level == RAID3 or level == RAID5:
        return n - 1
    if level == RAID6:
        return n // 2
    return 1


def capacity(level, n_members, extent_blocks, stripe_blocks):
    err = levels.validate(level, n_members)
    if err:
        raise ValueError(err)
    if extent_blocks < 1 or stripe_blocks < 1:
        raise ValueError("extent and stripe must be at least 1 block")
    if level == NORAID or level == RAID1:
        return extent_blocks
    return data_units(level, n_members) * (extent_blocks // stripe_blocks) * stripe_blocks


def chained(drives, note, work, a, b, c, at=0, data=None):
    """work(a, b, c) with every drive of `drives` planning its member I/O and XOR into one new
    chain of the I/O processor's thread (hw/chains.py) instead of doing them: the chain's ticket
    (settle() gives `note`, `at` and `data` back), or 0 and nothing planned when there is no
    thread, a drive is not ONLINE, or the ring has no room for it. (Arguments by position, no
    *args: a host write comes here, and a tuple of them would allocate.)"""
    ch = drives[0].iop.chains
    if ch is None or not ch.begin():
        return 0
    try:
        for d in drives:
            if d.status() != ONLINE:
                ch.cancel()
                return 0
            d.io = d.x = ch
        work(a, b, c)
    except ChainFull:
        ch.cancel()
        return 0
    except BaseException:
        ch.cancel()
        raise
    finally:
        for d in drives:
            d.io = d.iop
            d.x = xor
    return ch.submit(note, at, data)


class DriveError(Exception):
    # .kind: 'offline' (more members lost than the level tolerates), 'critical' (an operation that
    # needs every member, e.g. a consistency check, on a CRITICAL drive), 'medium' (reserved)
    def __init__(self, kind, msg):
        super().__init__(msg)
        self.kind = kind


class SystemDrive:
    def __init__(self, number, level, members, stripe_blocks, iop, blocks=None):
        err = levels.validate(level, len(members))
        if err:
            raise ValueError("system drive %r: %s" % (number, err))
        if not isinstance(stripe_blocks, int) or stripe_blocks < 1:
            raise ValueError("system drive %r: stripe of %r blocks" % (number, stripe_blocks))
        self.number = number
        self.level = level
        self.iop = iop
        self.stripe_blocks = stripe_blocks
        n = len(members)
        self.n = n
        self.members = []
        for m in members:
            if len(m) != 3:
                raise ValueError("system drive %r: member %r is not (slot, start, blocks)" % (number, m))
            slot, start, blk = m
            if not 0 <= slot < iop.n_slots:
                raise ValueError("system drive %r: no slot %r" % (number, slot))
            if start < 0 or blk < 1 or start + blk > iop.disk_blocks:
                raise ValueError("system drive %r: extent %d+%d outside slot %d (%d blocks)"
                                 % (number, start, blk, slot, iop.disk_blocks))
            for s2, st2, b2 in self.members:
                if s2 == slot and start < st2 + b2 and st2 < start + blk:
                    raise ValueError("system drive %r: extents overlap on slot %d" % (number, slot))
            self.members.append((slot, start, blk))
        self.slots = [m[0] for m in self.members]
        self.starts = [m[1] for m in self.members]
        ext = min([m[2] for m in self.members])
        self.parity = level == RAID3 or level == RAID5
        self.mirror = level == RAID1 or level == RAID6
        self.nd = data_units(level, n)
        self.striped = not (level == NORAID or level == RAID1)
        if not self.striped:
            self.unit = ext  # one unit covers the member
            self.member_blocks = ext
        else:
            self.unit = stripe_blocks
            self.member_blocks = ext // stripe_blocks * stripe_blocks
            if not self.member_blocks:
                raise ValueError("system drive %r: extents of %d blocks are smaller than one stripe unit (%d)"
                                 % (number, ext, stripe_blocks))
        cap = capacity(level, n, ext, stripe_blocks)
        if blocks is None:
            blocks = cap
        elif not isinstance(blocks, int) or not 1 <= blocks <= cap:
            raise ValueError("system drive %r: %r blocks asked, the members allow 1..%d" % (number, blocks, cap))
        self.blocks = blocks
        self.row_blocks = self.nd * self.unit
        self._st = [""] * n
        self._bad = -1
        self._nbad = 0
        self._sgen = -1         # IOP state generation the cached status was computed at
        self._status = None
        # scratch, sized by the stripe unit, allocated once: parity P, temporary T, old data O
        ub = stripe_blocks * SECTOR
        if self.parity:
            self._p = bytearray(ub)
            self._pv = memoryview(self._p)
            self._o = bytearray(ub)
            self._ov = memoryview(self._o)
        if self.parity or self.mirror:
            self._t = bytearray(ub if self.parity else 2 * ub)  # mirrors compare two units
            self._tv = memoryview(self._t)
        # views of P and T a read-modify-write uses, made once per range (_view)
        self._views = {}
        # where member I/O and XOR go: the IOP and the XOR engine, or, while chained() plans a
        # write, the chain it hands to the I/O processor's thread (hw/chains.py)
        self.io = iop
        self.x = xor
        self.alone = (self,)        # (made once: write_chained's drives and work)
        self.write_m = self._write
        # identity of the layout in intent records: a record of another drive is never applied
        self.geo = binascii.crc32(("%d %d %d %r" % (level, stripe_blocks, blocks, self.members)).encode())
        # a multi-member write cut short by a killed firmware: make the members agree before use
        self.resync_note = None   # what the boot resync did, for the event log
        self.resync_ok = True
        rec = iop.intent_pending
        if rec is not None and rec[1] == number and rec[2] == self.geo:
            iop.intent_pending = None
            if self.parity or self.mirror:
                self._resync(rec)

    # ---- layout
    def _pm(self, row):
        # parity member of a row
        if self.level == RAID5:
            return self.n - 1 - row % self.n
        return self.n - 1

    def _dm(self, row, k):
        # member holding data unit k of a row (for mirrors: the first of its pair)
        lv = self.level
        if lv == RAID5:
            return (self.n - row % self.n + k) % self.n  # left-symmetric: after the parity unit
        if lv == RAID6:
            return 2 * k
        return k

    # ---- member states
    def _unit_at(self, pos, end):
        # the stripe unit holding block pos: (row, unit in the row, offset in it, blocks of it up
        # to end). The hot read and write paths inline this to avoid the tuple.
        row = pos // self.row_blocks
        w = pos - row * self.row_blocks
        k = w // self.unit
        off = w - k * self.unit
        return row, k, off, min(self.unit - off, end - pos)

    def _refresh(self):
        st = self._st
        bad = -1
        nbad = 0
        for i in range(self.n):
            s = self.iop.state(self.slots[i])
            st[i] = s
            if s != "online":
                bad = i
                nbad += 1
        self._bad = bad
        self._nbad = nbad

    def status(self):
        # every I/O asks (twice per host read): recomputed only when a slot state changed
        g = self.iop.gen
        if g != self._sgen:
            self._refresh()
            self._status = self._compute()
            self._sgen = g
        return self._status

    def _compute(self):
        nbad = self._nbad
        if not nbad:
            return ONLINE
        lv = self.level
        if lv == RAID1 or self.parity:
            return CRITICAL if nbad == 1 else OFFLINE
        if lv == RAID6:
            st = self._st
            for i in range(0, self.n, 2):
                if st[i] != "online" and st[i + 1] != "online":
                    return OFFLINE
            return CRITICAL
        return OFFLINE

    def _offline(self):
        return DriveError("offline", "system drive %d is OFFLINE (%s)" % (
            self.number, ", ".join(["slot %d %s" % (self.slots[i], self._st[i])
                                    for i in range(self.n) if self._st[i] != "online"])))

    def _need(self):
        if self.status() == OFFLINE:
            raise self._offline()

    def _range(self, lba, mv):
        nb = len(mv)
        if nb % SECTOR:
            raise ValueError("system drive %d: length %d is not whole sectors" % (self.number, nb))
        cnt = nb // SECTOR
        if lba < 0 or lba + cnt > self.blocks:
            raise ValueError("system drive %d: lba %d+%d beyond %d blocks" % (self.number, lba, cnt, self.blocks))
        return cnt

    # ---- member I/O
    def _get(self, m, lba, mv):
        self.io.read(self.slots[m], self.starts[m] + lba, mv)

    def _put(self, m, lba, mv):
        # writes go to online and rebuild members; a member that fails here just drops out
        s = self._st[m]
        if s == "online" or s == "rebuild":
            try:
                self.io.write(self.slots[m], self.starts[m] + lba, mv)
            except DiskError:
                self._refresh()  # the IOP marked it failed

    # ---- read
    def read(self, lba, mv):
        if self.iop.inflight and self.io is self.iop:
            # the I/O processor's thread first, where it moves data on these members
            self.iop.chains.wait_for(self.slots)
        cnt = len(mv) >> 9
        if len(mv) & 511 or lba < 0 or lba + cnt > self.blocks:
            self._range(lba, mv)
        if self._sgen != self.iop.gen or self._status == OFFLINE:
            self._need()
        if not self.striped:
            self._read_unit(0, 0, lba, mv)
            return
        U = self.unit
        RB = self.row_blocks
        row = lba // RB
        w = lba - row * RB
        k = w // U
        off = w - k * U
        if off + cnt <= U:   # inside one stripe unit (stripe-aligned host reads): one member read
            self._read_unit(row, k, off, mv)
            return
        pos = lba
        end = lba + cnt
        mo = 0
        # every member online and no mirror to choose from: each unit is one IOP read
        direct = self._bad < 0 and not self.mirror
        iop, slots, starts = self.io, self.slots, self.starts
        while pos < end:
            row = pos // RB
            w = pos - row * RB
            k = w // U
            off = w - k * U
            L = U - off
            if L > end - pos:
                L = end - pos
            seg = mv[mo:mo + L * SECTOR]
            if direct:
                m = self._dm(row, k)
                try:
                    iop.read(slots[m], starts[m] + row * U + off, seg)
                except DiskError:
                    self._read_unit(row, k, off, seg)     # reconstructs, or says OFFLINE
            else:
                self._read_unit(row, k, off, seg)
            pos += L
            mo += L * SECTOR

    def _read_unit(self, row, k, off, seg):
        st = self._st
        m = self._dm(row, k)
        lba = row * self.unit + off
        if self.mirror:
            for x in (m, m + 1):
                if st[x] == "online":
                    try:
                        self._get(x, lba, seg)
                        return
                    except DiskError:
                        st[x] = "failed"
            raise self._offline()
        if st[m] == "online":
            try:
                self.io.read(self.slots[m], self.starts[m] + lba, seg)
                return
            except DiskError:
                self._refresh()
                if not self.parity:
                    raise self._offline()
        if not self.parity:
            raise self._offline()
        self._reconstruct(row, m, lba, seg)

    def _reconstruct(self, row, m, lba, seg):
        # seg = XOR of the same sectors on every other member of the row
        st = self._st
        first = True
        nb = len(seg)
        T = self._tv[0:nb]
        try:
            for x in range(self.n):
                if x == m:
                    continue
                if st[x] != "online":
                    raise self._offline()
                if first:
                    self._get(x, lba, seg)
                    first = False
                else:
                    self._get(x, lba, T)
                    xor.xor_into(seg, T, nb)
        except DiskError:
            self._refresh()
            raise self._offline()

    # ---- write
    def write(self, lba, mv, old=None):
        if self.iop.inflight and self.io is self.iop:
            self.iop.drain()         # its scratch buffers may still be in use there
        self._write(lba, mv, old)

    def write_chained(self, lba, mv, note):
        """A host write handed whole to the I/O processor's thread (hw/chains.py) as one chain:
        its ticket (settle() gives `note`, lba and mv back), or 0 when the drive is not ONLINE or
        the chain does not fit (the caller then writes it with write())."""
        return chained(self.alone, note, self.write_m, lba, mv, None, lba, mv)

    def _write(self, lba, mv, old):
        cnt = len(mv) >> 9
        if len(mv) & 511 or lba < 0 or lba + cnt > self.blocks:
            self._range(lba, mv)             # raises, naming the problem
        if old is not None and len(old) != len(mv):
            raise ValueError("system drive %d: old data is %d bytes, new %d" % (self.number, len(old), len(mv)))
        if self._sgen != self.iop.gen or self._status == OFFLINE:
            self._need()                     # (the status is recomputed only when a slot changed)
        if self.mirror or (self.parity and self._bad < 0):
            # degraded parity drives record each row instead (_row_intent)
            self.io.intent(INTENT_RANGE, self.number, self.geo, lba, cnt)
        if not self.striped:
            # JBOD and RAID 1: block lba of the drive is block lba of each member's extent
            self._put(0, lba, mv)
            if self.mirror:
                self._put(1, lba, mv)
            if self._sgen != self.iop.gen:
                self._need()
            return
        U = self.unit
        RB = self.row_blocks
        pos = lba
        end = lba + cnt
        mo = 0
        if self.parity:
            while pos < end:
                row = pos // RB
                rend = (row + 1) * RB
                if rend > end:
                    rend = end
                nb = (rend - pos) * SECTOR
                if nb == len(mv):            # the usual host write: inside one row, no view made
                    self._write_row(row, pos - row * RB, rend - pos, mv, old)
                else:
                    self._write_row(row, pos - row * RB, rend - pos, mv[mo:mo + nb],
                                    None if old is None else old[mo:mo + nb])
                pos = rend
                mo += nb
        else:
            while pos < end:
                row = pos // RB
                w = pos - row * RB
                k = w // U
                off = w - k * U
                L = U - off
                if L > end - pos:
                    L = end - pos
                seg = mv if L == cnt else mv[mo:mo + L * SECTOR]
                m = self._dm(row, k)
                self._put(m, row * U + off, seg)
                if self.mirror:
                    self._put(m + 1, row * U + off, seg)
                pos += L
                mo += L * SECTOR
        if self._sgen != self.iop.gen:
            self._need()                     # a member failed under the write

    def _write_row(self, row, w0, nblk, src, old):
        U = self.unit
        k0 = w0 // U
        off0 = w0 - k0 * U
        wend = w0 + nblk
        k1 = (wend - 1) // U
        e1 = wend - k1 * U
        tries = 0
        while True:
            try:
                self._row_once(row, k0, off0, k1, e1, nblk, src, old)
                return
            except DiskError:
                # a read failed before anything was written: the member is now failed; go again degraded
                tries += 1
                if self.status() == OFFLINE or tries > self.n:
                    raise self._offline()

    def _view(self, which, a, b):
        # bytes a..b of P (which 0) or T (1): a host writes one size at aligned places, so a drive
        # sees few ranges, and each view is made once rather than per write (VIEWS at most)
        k = (a << 25 | b) << 1 | which
        v = self._views.get(k)
        if v is None:
            v = (self._tv if which else self._pv)[a:b]
            if len(self._views) >= VIEWS:
                self._views.clear()          # (ranges seen once do not hold the place for good)
            self._views[k] = v
        return v

    def _put_data(self, row, k0, off0, k1, e1, src):
        if k0 == k1:                         # one stripe unit: the whole of src, no view made
            self._put(self._dm(row, k0), row * self.unit + off0, src)
            return
        U = self.unit
        base = row * U
        so = 0
        for k in range(k0, k1 + 1):
            o = off0 if k == k0 else 0
            e = e1 if k == k1 else U
            nb = (e - o) * SECTOR
            self._put(self._dm(row, k), base + o, src[so:so + nb])
            so += nb

    def _row_once(self, row, k0, off0, k1, e1, nblk, src, old):
        U = self.unit
        nd = self.nd
        st = self._st
        pm = self._pm(row)
        base = row * U
        bad = self._bad
        P = self._pv
        if k0 == k1:
            lo = off0
            hi = e1
        else:
            lo = 0
            hi = U
        if bad >= 0:
            self._row_intent(row, k0, off0, k1, e1, src, lo, hi, pm, bad)
        xe = self.x
        if nblk == nd * U:
            # full stripe: parity from the new data alone, no reads
            ub = U * SECTOR
            xe.xor_of(P, src[0:ub], src[ub:2 * ub], ub)          # nd >= 2 for RAID 3/5
            k = 2
            while k + 1 < nd:                                   # the rest two at a time
                xe.xor_into2(P, src[k * ub:(k + 1) * ub], src[(k + 1) * ub:(k + 2) * ub], ub)
                k += 2
            if k < nd:
                xe.xor_into(P, src[k * ub:(k + 1) * ub], ub)
            self._put_data(row, k0, off0, k1, e1, src)
            self._put(pm, base, P[0:ub])
            return
        if bad == pm:
            if st[pm] == "rebuild":
                self._rcw(row, k0, off0, k1, e1, src, lo, hi, pm)
            else:
                self._put_data(row, k0, off0, k1, e1, src)
            return
        if bad < 0 and old is None and nd * (hi - lo) - nblk < nblk + (hi - lo):
            # reading the rest of the row is cheaper than reading what is overwritten
            self._rcw(row, k0, off0, k1, e1, src, lo, hi, pm)
            return
        # read-modify-write: P' = P ^ old ^ new over the touched sectors
        Pw = self._view(0, lo * SECTOR, hi * SECTOR)
        self._get(pm, base + lo, Pw)
        kb = -1
        if bad >= 0 and old is None:
            for k in range(k0, k1 + 1):
                if self._dm(row, k) == bad:
                    kb = k
            if kb >= 0:
                # the bad member's old data, from the parity as it was and the other members
                o = off0 if kb == k0 else 0
                e = e1 if kb == k1 else U
                nb = (e - o) * SECTOR
                O = self._ov[0:nb]
                T = self._tv[0:nb]
                O[0:nb] = P[o * SECTOR:e * SECTOR]
                for x in range(self.n):
                    if x != bad and x != pm:
                        self._get(x, base + o, T)
                        xor.xor_into(O, T, nb)
        so = 0
        one = k0 == k1                       # one stripe unit: P's range is Pw's, src is whole
        for k in range(k0, k1 + 1):
            o = off0 if k == k0 else 0
            e = e1 if k == k1 else U
            nb = (e - o) * SECTOR
            if old is not None:
                was = old if one else old[so:so + nb]
            elif k == kb:
                was = self._ov
            else:
                was = self._view(1, 0, nb)
                self._get(self._dm(row, k), base + o, was)
            xe.xor_into2(Pw if one else P[o * SECTOR:e * SECTOR], was, src if one else src[so:so + nb], nb)
            so += nb
        self._put_data(row, k0, off0, k1, e1, src)
        self._put(pm, base + lo, Pw)

    def _row_intent(self, row, k0, off0, k1, e1, src, lo, hi, pm, bad):
        # A degraded row: a torn write here would change what the lost member's sectors reconstruct
        # to (the write hole). Record the lost member's content after this write over [lo, hi), so
        # the boot resync can make the parity match it whatever reached the disks.
        iop = self.iop
        if not iop.intent_on:
            return
        if bad == pm:
            iop.intent(INTENT_ROW, self.number, self.geo, row, lo, hi, pm)
            return
        U = self.unit
        kb = 0
        while self._dm(row, kb) != bad:
            kb += 1
        o = e = 0
        if k0 <= kb <= k1:
            o = off0 if kb == k0 else 0
            e = e1 if kb == k1 else U
            so = 0 if kb == k0 else ((U - off0) + (kb - k0 - 1) * U) * SECTOR
            if o <= lo and e >= hi:
                # the write replaces all of it: the new data is the record
                iop.intent(INTENT_ROW, self.number, self.geo, row, lo, hi, bad,
                           src[so + (lo - o) * SECTOR:so + (hi - o) * SECTOR])
                return
        span = (hi - lo) * SECTOR
        O = self._ov[0:span]
        T = self._tv[0:span]
        first = True
        for x in range(self.n):
            if x != bad:
                if first:
                    self._get(x, row * U + lo, O)
                    first = False
                else:
                    self._get(x, row * U + lo, T)
                    xor.xor_into(O, T, span)
        if e > o:
            O[(o - lo) * SECTOR:(e - lo) * SECTOR] = src[so:so + (e - o) * SECTOR]
        iop.intent(INTENT_ROW, self.number, self.geo, row, lo, hi, bad, O)

    def _rcw(self, row, k0, off0, k1, e1, src, lo, hi, pm):
        # reconstruct-write: P' over [lo, hi) = XOR of every data unit's new content there
        U = self.unit
        base = row * U
        P = self._pv
        xe = self.x
        span = (hi - lo) * SECTOR
        Pw = P[lo * SECTOR:hi * SECTOR]
        xe.zero(Pw, span)
        so = 0
        for k in range(self.nd):
            m = self._dm(row, k)
            if k0 <= k <= k1:
                o = off0 if k == k0 else 0
                e = e1 if k == k1 else U
                nb = (e - o) * SECTOR
                xe.xor_into(P[o * SECTOR:e * SECTOR], src[so:so + nb], nb)
                so += nb
                if lo < o:
                    T = self._tv[0:(o - lo) * SECTOR]
                    self._get(m, base + lo, T)
                    xe.xor_into(P[lo * SECTOR:o * SECTOR], T, len(T))
                if e < hi:
                    T = self._tv[0:(hi - e) * SECTOR]
                    self._get(m, base + e, T)
                    xe.xor_into(P[e * SECTOR:hi * SECTOR], T, len(T))
            else:
                T = self._tv[0:span]
                self._get(m, base + lo, T)
                xe.xor_into(Pw, T, span)
        self._put_data(row, k0, off0, k1, e1, src)
        self._put(pm, base + lo, Pw)

    # ---- boot resync of the write a killed firmware left unfinished (storage/README.md "Crash consistency")
    def _resync(self, rec):
        kind, _, _, a, b, c, member, payload = rec
        self._refresh()
        U = self.unit
        try:
            if kind == INTENT_RANGE and b >= 1 and a + b <= self.blocks:
                what = "blocks %d+%d" % (a, b)
                if self.mirror:
                    why = self._mirror_sync(a, b)
                else:
                    why = None
                    for row in range(a // self.row_blocks, (a + b - 1) // self.row_blocks + 1):
                        why = self._parity_sync(row, 0, U, -1, None) or why
            elif (kind == INTENT_ROW and self.parity and a * self.row_blocks < self.blocks and b < c <= U
                  and 0 <= member < self.n and (payload is None or len(payload) == (c - b) * SECTOR)):
                what = "row %d" % a
                why = self._parity_sync(a, b, c, member, payload)
            else:
                self.resync_ok = False
                self.resync_note = "intent record (kind %d: %d %d %d) does not fit the drive: ignored" % (
                    kind, a, b, c)
                return
        except DiskError as e:
            self._refresh()
            why = "a member failed during the resync (%s)" % e
        if why:
            self.resync_ok = False
            self.resync_note = "%s, written when the firmware stopped, not resynced: %s" % (what, why)
        else:
            self.resync_note = "%s, written when the firmware stopped, resynced" % what

    def _parity_sync(self, row, lo, hi, lost, payload):
        # parity of [lo, hi) of a row from the data members; with a payload, the lost data member's
        # content stands in for it (and is written to it if it can take writes)
        st = self._st
        pm = self._pm(row)
        base = row * self.unit + lo
        span = (hi - lo) * SECTOR
        O = self._ov[0:span]
        T = self._tv[0:span]
        skip = -1
        if payload is not None and lost != pm:
            skip = lost
            O[0:span] = payload
        else:
            xor.zero(O, span)
        for x in range(self.n):
            if x == pm or x == skip:
                continue
            if st[x] != "online":
                return "slot %d is %s" % (self.slots[x], st[x])
            self._get(x, base, T)
            xor.xor_into(O, T, span)
        self._put(pm, base, O)  # _put skips a parity member that takes no writes
        if skip >= 0:
            self._put(skip, base, payload)
        return None

    def _mirror_sync(self, lba, count):
        # copy the first online member of each pair over the other one (if it takes writes)
        st = self._st
        U = self.unit
        S = 2 * self.stripe_blocks
        why = None
        pos = lba
        end = lba + count
        while pos < end:
            row, k, off, L = self._unit_at(pos, end)
            m = self._dm(row, k)
            src = m if st[m] == "online" else m + 1
            dst = m + 1 if src == m else m
            if st[src] != "online":
                why = "no online copy of blocks %d+%d" % (pos, L)
            elif st[dst] == "online" or st[dst] == "rebuild":
                a = row * U + off
                left = L
                while left:
                    c = S if left > S else left
                    T = self._tv[0:c * SECTOR]
                    self._get(src, a, T)
                    self._put(dst, a, T)
                    a += c
                    left -= c
            pos += L
        return why

    # ---- long-operation building blocks (ranges in drive LBAs; whole rows are processed)
    def _rows(self, lba, count):
        if count < 1 or lba < 0 or lba + count > self.blocks:
            raise ValueError("system drive %d: range %d+%d beyond %d blocks" % (self.number, lba, count, self.blocks))
        return lba // self.row_blocks, (lba + count - 1) // self.row_blocks

    def rebuild(self, lba, count):
        # Reconstruct every 'rebuild' member over the rows holding [lba, lba+count).
        # Answers the number of member rows (stripe units, or chunks for RAID 1) written; 0 when
        # no member needs it. Once the whole drive is done the caller sets the slots online.
        self.iop.drain()
        r0, r1 = self._rows(lba, count)
        self._need()
        st = self._st
        if "rebuild" not in st:
            return 0
        if not (self.parity or self.mirror):
            raise self._offline()
        U = self.unit
        done = 0
        if self.parity:
            m = self._bad
            O = self._ov
            for row in range(r0, r1 + 1):
                self._reconstruct(row, m, row * U, O)
                self._put(m, row * U, O)
                done += 1
            return done
        # mirrors: copy each unit from its online partner, in chunks of the scratch buffer
        S = self.stripe_blocks
        pos = lba
        end = lba + count
        while pos < end:
            row, k, off, L = self._unit_at(pos, end)
            m = self._dm(row, k)
            for x in (m, m + 1):
                if st[x] == "rebuild":
                    y = m + 1 if x == m else m
                    if st[y] != "online":
                        raise self._offline()
                    a = row * U + off
                    left = L
                    while left:
                        c = S if left > S else left
                        T = self._tv[0:c * SECTOR]
                        try:
                            self._get(y, a, T)
                        except DiskError:
                            self._refresh()
                            raise self._offline()
                        self._put(x, a, T)
                        a += c
                        left -= c
                        done += 1
            pos += L
        return done

    def check(self, lba, count, fix=False):
        # Consistency check over the rows holding [lba, lba+count). Parity levels answer the number
        # of rows whose parity is wrong (fix rewrites it from the data); mirrors answer the number
        # of sectors whose copies differ (fix copies the first member of the pair over the second).
        self.iop.drain()
        r0, r1 = self._rows(lba, count)
        s = self.status()
        if s != ONLINE:
            if s == OFFLINE:
                raise self._offline()
            raise DriveError("critical", "system drive %d is CRITICAL: rebuild it before a check" % self.number)
        if not (self.parity or self.mirror):
            return 0
        U = self.unit
        found = 0
        try:
            if self.parity:
                ub = U * SECTOR
                P = self._pv
                O = self._ov
                T = self._tv
                for row in range(r0, r1 + 1):
                    pm = self._pm(row)
                    self._get(pm, row * U, P)
                    O[0:ub] = P[0:ub]
                    for x in range(self.n):
                        if x != pm:
                            self._get(x, row * U, T)
                            xor.xor_into(O, T, ub)
                    if xor.nonzero_sectors(O, ub):
                        found += 1
                        if fix:
                            xor.xor_into(O, P, ub)  # now the XOR of the data alone
                            self._put(pm, row * U, O)
                return found
            S = self.stripe_blocks
            ub = S * SECTOR
            pos = lba
            end = lba + count
            while pos < end:
                row, k, off, L = self._unit_at(pos, end)
                m = self._dm(row, k)
                a = row * U + off
                left = L
                # compare in chunks of one stripe unit: first half of the scratch member m, second m+1
                while left:
                    c = S if left > S else left
                    nb = c * SECTOR
                    A = self._tv[0:nb]
                    B = self._tv[ub:ub + nb]
                    self._get(m, a, A)
                    self._get(m + 1, a, B)
                    d = xor.diff_sectors(A, B, nb)
                    if d:
                        found += d
                        if fix:
                            self._put(m + 1, a, A)
                    a += c
                    left -= c
                pos += L
            return found
        except DiskError:
            self._refresh()
            raise DriveError("critical", "system drive %d lost a member during the check" % self.number)
