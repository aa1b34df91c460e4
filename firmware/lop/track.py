# Change tracking for incremental re-sync (claim 22): which chunks of a primary system drive P
# changed since its backup system drive D last received a complete snapshot copy, so the next copy
# moves only those. Memory is bounded: three bitmaps of at most MAX_BITS bits.
#
# The invariant (see lop/README.md): every chunk NOT in cum|dstd holds on D exactly what P held at the
# point-in-time of snapshot `seen`; `cur` holds the chunks of P written since that point.
#   write to P        -> bit in cur (before the data is written; persisted first)
#   write to D        -> bit in dstd (D no longer equals the image there)
#   new snapshot of P -> cum |= cur, cur = 0, seen = its id ("rotation", lazy: at the first write
#                        or copy start after the initiate, when nothing has changed yet)
#   copy completes    -> cum = dstd = 0, full = 0
# The tracker hears of host writes as a listener of the snapshot engine (Engine.listeners, told
# before the data is written); a listener raises no SCSI error (whether a write may happen at all
# is decided before it is told).
# File `lop.track` in the state dir (a pair's one file, written by the primary's owner): a 512-byte header (CRC'd, written in one write) then cum, cur
# and dstd. Every file update keeps the invariant at any kill point: bits are only ever cleared
# after what they stand for is on disk, and a torn or missing header means "full copy". The file
# is unbuffered, so each write(2) is done when write() returns, which a killed firmware keeps; no
# flush(): on this port that is an fsync (about 110 us each here), which only a power loss of the host
# would need, and the board's disks are not synced either (storage/README.md "Not covered").
import struct
import binascii
import micropython
from micropython import const
from snapshot.engine import ACTIVE

MAGIC = b"RBTRACK1"
HDR = "<8siiiiiIII"       # magic, P, D, chunk blocks, nchunks, full, seen snap id, sig P, sig D
HDR_CRC = const(44)
MIN_CHUNK = const(128)    # 64 KiB
MAX_BITS = const(32768)   # 4 KiB per bitmap


@micropython.viper
def _or_into(dst: ptr8, src: ptr8, n: int):
    i = 0
    while i < n:
        dst[i] |= src[i]
        i += 1


@micropython.viper
def _popcount(p: ptr8, n: int) -> int:
    c = 0
    i = 0
    while i < n:
        v = int(p[i])
        while v:
            v &= v - 1
            c += 1
        i += 1
    return c


def chunk_for(blocks):
    cb = MIN_CHUNK
    while (blocks + cb - 1) // cb > MAX_BITS:
        cb *= 2
    return cb


class Tracker:
    def __init__(self, path, engine):
        self.path = path
        self.engine = engine       # the snapshot engine: its snapshot of P is the point-in-time
        self.p = self.d = -1
        self.cb = MIN_CHUNK
        self.nchunks = 0
        self.full = 1
        self.seen = 0
        self.sigp = self.sigd = 0
        self.nb = 0
        self._hdr = bytearray(512)
        self._one = bytearray(1)
        self.cum = self.cur = self.dstd = self.todo = None
        self.problem = None
        self._f = None
        self._load()

    # ---- file ------------------------------------------------------------------------------
    def _file(self):
        if self._f is None:
            try:
                self._f = open(self.path, "r+b")
            except OSError:
                self._f = open(self.path, "w+b")
        return self._f

    def _load(self):
        try:
            f = open(self.path, "rb")
        except OSError:
            return
        try:
            h = f.read(512)
            if len(h) < 48 or h[:8] != MAGIC:
                self.problem = "no valid header"
                return
            if binascii.crc32(h[:HDR_CRC]) != struct.unpack_from("<I", h, HDR_CRC)[0]:
                self.problem = "header checksum wrong"
                return
            _, p, d, cb, n, full, seen, sp, sd = struct.unpack_from(HDR, h, 0)
            if p < 0 or d < 0 or not 0 < n <= MAX_BITS or cb < MIN_CHUNK:
                return
            self._alloc(p, d, cb, n)
            self.full, self.seen, self.sigp, self.sigd = full, seen, sp, sd
            for bm in (self.cum, self.cur, self.dstd):
                got = f.readinto(bm)
                if got != len(bm):
                    # bitmaps cut short: nothing is known about the pair any more
                    self.full = 1
                    self.problem = "bitmaps truncated"
                    break
        finally:
            f.close()

    def _alloc(self, p, d, cb, n):
        self.p, self.d, self.cb, self.nchunks = p, d, cb, n
        nb = ((n + 7) // 8 + 511) // 512 * 512
        if nb != self.nb:
            self.cum = self.cur = self.dstd = self.todo = None
            self.cum, self.cur, self.dstd, self.todo = (bytearray(nb), bytearray(nb),
                                                        bytearray(nb), bytearray(nb))
            self.nb = nb
        else:
            for bm in (self.cum, self.cur, self.dstd):
                _zero(bm)

    def _put_header(self):
        h = self._hdr
        _zero(h)
        struct.pack_into(HDR, h, 0, MAGIC, self.p, self.d, self.cb, self.nchunks, self.full,
                         self.seen, self.sigp, self.sigd)
        struct.pack_into("<I", h, HDR_CRC, binascii.crc32(memoryview(h)[:HDR_CRC]))
        f = self._file()
        f.seek(0)
        f.write(h)

    def _put_map(self, k):
        # k: 0 cum, 1 cur, 2 dstd
        f = self._file()
        f.seek(512 + k * self.nb)
        f.write((self.cum, self.cur, self.dstd)[k])

    def close(self):
        if self._f is not None:
            self._f.close()
            self._f = None

    def reload(self):
        # of a dual-active pair the file is the pair's, written by the primary's owner: a
        # controller that becomes the owner reads what the other one left
        self.close()
        self.p = self.d = -1
        self.full = 1
        self._load()

    # ---- the pair ----------------------------------------------------------------------------
    def tracking(self, p, d, sigp, sigd):
        # True when D is a known (maybe partly stale) image of P and the bitmaps say where
        return (self.p == p and self.d == d and self.sigp == sigp and self.sigd == sigd
                and not self.full and self.cum is not None)

    def setup(self, p, d, p_blocks, sigp, sigd, snap_id):
        # a new pair: everything must be copied once (full) before anything is known
        cb = chunk_for(p_blocks)
        self.full = 1
        self.p, self.d = p, d          # header first: a kill from here on means "full copy"
        self.cb, self.nchunks = cb, (p_blocks + cb - 1) // cb
        self.seen, self.sigp, self.sigd = snap_id, sigp, sigd
        self._alloc(p, d, cb, self.nchunks)
        self._put_header()
        for k in range(3):
            self._put_map(k)

    def rotate(self, snap_id):
        # a new snapshot of P began and nothing has been written since: its point-in-time is now
        _or_into(self.cum, self.cur, self.nb)
        self._put_map(0)
        self.seen = snap_id
        self._put_header()
        _zero(self.cur)
        self._put_map(1)

    def writing(self, sd, lba, n):
        # blocks lba..lba+n-1 of system drive `sd` are about to be written (the write listener)
        if sd == self.p:
            e = self.engine
            if e.primary_sd == sd and e.state == ACTIVE and e.snap_id != self.seen:
                self.rotate(e.snap_id)
            self.mark(1, lba, n)
        if sd == self.d:
            self.mark(2, lba, n)

    def mark(self, k, lba, n):
        # k: 1 = P written, 2 = D written; persist each newly set byte before the data is written
        bm = self.cur if k == 1 else self.dstd
        cb = self.cb
        c = lba // cb
        last = (lba + n - 1) // cb
        if last >= self.nchunks:
            last = self.nchunks - 1
        base = 512 + k * self.nb
        one = self._one
        while c <= last:
            i = c >> 3
            bit = 1 << (c & 7)
            if not bm[i] & bit:
                bm[i] |= bit
                one[0] = bm[i]
                f = self._file()
                f.seek(base + i)
                f.write(one)
            c += 1

    def add_exceptions(self, engine):
        # chunks of P copied-on-write by the running snapshot = written since its point-in-time
        scb = engine.chunk_blocks
        for c in engine.index.chunks():
            self.mark(1, c * scb, scb)

    def plan(self):
        # the chunks the next copy must move, in self.todo; answers how many
        t = self.todo
        _zero(t)
        if self.full:
            for i in range(self.nchunks >> 3):
                t[i] = 0xFF
            for c in range(self.nchunks & ~7, self.nchunks):
                t[c >> 3] |= 1 << (c & 7)
            return self.nchunks
        _or_into(t, self.cum, self.nb)
        _or_into(t, self.dstd, self.nb)
        return _popcount(t, self.nb)

    def commit(self):
        # the copy is complete: D now is exactly the image of snapshot `seen`
        _zero(self.cum)
        self._put_map(0)
        _zero(self.dstd)
        self._put_map(2)
        self.full = 0
        self._put_header()

    def drop(self):
        # forget the pair (a drive of it was deleted or changed)
        self.p = self.d = -1
        self.full = 1
        self._put_header()

    def counts(self):
        if self.cum is None:
            return {}
        return {"cum": _popcount(self.cum, self.nb), "cur": _popcount(self.cur, self.nb),
                "dstd": _popcount(self.dstd, self.nb)}


def _zero(b):
    _fill0(b, len(b))


@micropython.viper
def _fill0(p: ptr8, n: int):
    i = 0
    while i < n:
        p[i] = 0
        i += 1
