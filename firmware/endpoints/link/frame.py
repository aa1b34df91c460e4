# Frames of the back-end link between the two controllers of a pair (linkproto.md): the codec and
# a parser that finds frames in the received byte stream, reports damaged ones and finds its way
# back to the next good frame. Nothing here knows sockets or the pair: link.py brings the bytes.
import binascii
import struct
import micropython
from micropython import const

VERSION = const(2)
HDR = const(24)                  # magic 2, version 1, kind 1, seq 4, ack 4, length 4, check 4, crc32 4
MAX_PAYLOAD = const(0x101000)    # 1 MiB of data and 4 KiB of what describes it
MAX_FRAME = const(HDR + MAX_PAYLOAD)
CHUNK = const(65536)             # room kept free for one read from the socket
_FIELDS = "<2sBBIII"             # the header up to the payload's check (byte 16) and the header's CRC (20)
_R = const(0x52)
_L = const(0x4C)

# the link's own kinds; the pair logic uses FIRST_PAIR_KIND and up
HELLO = const(1)
HB = const(2)
ACK = const(3)
NAK = const(4)
REPLY = const(5)
BYE = const(6)
LAST_LINK_KIND = const(6)
FIRST_PAIR_KIND = const(16)

NEED = const(0)                  # Parser.next(): no complete frame yet
BAD = const(-1)                  # Parser.next(): a damaged frame was skipped (and reported)


def size(payload):
    """Bytes of a payload given as one bytes-like or a list/tuple of parts."""
    if isinstance(payload, (list, tuple)):
        n = 0
        for p in payload:
            n += len(p)
        return n
    return len(payload)


def encode(buf, kind, seq, ack, payload=b""):
    """Writes the frame into buf (bytearray or memoryview, at least HDR + payload long) and returns
    its length. payload: a bytes-like, or a list/tuple of them sent back to back (no joining)."""
    n = size(payload)
    if n > MAX_PAYLOAD:
        raise ValueError("link payload of %d bytes over %d" % (n, MAX_PAYLOAD))
    mv = memoryview(buf)
    struct.pack_into(_FIELDS, mv, 0, b"RL", VERSION, kind, seq, ack, n)
    at = HDR
    for part in (payload if isinstance(payload, (list, tuple)) else (payload,)):
        k = len(part)
        if k:
            mv[at:at + k] = part
            at += k
    struct.pack_into("<I", mv, 16, check(mv[HDR:at], n))
    struct.pack_into("<I", mv, 20, binascii.crc32(mv[0:20]))
    return at


@micropython.viper
def _sums(buf: ptr8, n: int) -> int:
    # the payload's check (linkproto.md "Frame"): over its little-endian 32-bit words, the last
    # one padded with zero bytes, s1 += word and s2 += s1 (mod 2**32); s1 XOR s2 rotated by 16.
    # Words a quarter of the time a CRC32 takes: a CRC over 64 KiB on each end was most of a
    # mirrored write's cost, and the header's CRC already guards the length
    w = ptr32(buf)
    s1 = uint(0)
    s2 = uint(0)
    nw = n >> 2
    i = 0
    while i + 4 <= nw:
        s1 += uint(w[i])
        s2 += s1
        s1 += uint(w[i + 1])
        s2 += s1
        s1 += uint(w[i + 2])
        s2 += s1
        s1 += uint(w[i + 3])
        s2 += s1
        i += 4
    while i < nw:
        s1 += uint(w[i])
        s2 += s1
        i += 1
    t = n & 3
    if t:
        last = uint(0)
        j = 0
        while j < t:
            last |= uint(buf[(nw << 2) + j]) << (j << 3)
            j += 1
        s1 += last
        s2 += s1
    # the sums run in machine words: their low 32 bits are the sums mod 2**32
    s1 &= 0xFFFFFFFF
    s2 &= 0xFFFFFFFF
    return int(s1 ^ (((s2 << 16) | (s2 >> 16)) & 0xFFFFFFFF))


def check(payload, n):
    """The payload's check word (n: its length)."""
    return _sums(payload, n) if n else 0


@micropython.viper
def _find_magic(buf: ptr8, i: int, end: int) -> int:
    # position of the next b"RL" in buf[i:end]; a lone "R" as the last byte may begin one (it is
    # kept: the "L" may come with the next read); end when there is none
    while i < end:
        if buf[i] == _R and (i + 1 == end or buf[i + 1] == _L):
            return i
        i += 1
    return end


def _kind_ok(kind):
    return 1 <= kind <= LAST_LINK_KIND or kind >= FIRST_PAIR_KIND


class Parser:
    """Frames out of a byte stream. Bytes go in through space()/fed(n) (a socket's readinto fills
    space() directly); next() then gives the kind of each complete good frame, with its fields in
    `seq`, `ack` and `payload` (a memoryview into the receive buffer, valid until the next space()).
    A damaged frame (bad magic, version, kind, header CRC or length, a payload that fails its check)
    is skipped by scanning for
    the next magic; the bytes it took are searched again, so a good frame that followed a cut-off
    one is found. The start of a damaged stretch, and each frame in it that looked whole but failed
    its CRC, is counted in `errors` and reported as on_error(reason, offset) (offset: its first
    byte in the stream). The buffer is allocated once and always holds the largest frame."""

    def __init__(self, on_error):
        self.buf = bytearray(MAX_FRAME + CHUNK)
        self.mv = memoryview(self.buf)
        self.on_error = on_error
        self.errors = 0
        self.resyncs = 0              # good frames found after damaged ones
        self.lends = 0                # payloads a user still holds: space() must wait (link.py)
        self.reset()

    def reset(self):
        """A new stream (a new connection)."""
        self.start = 0                # unparsed bytes are buf[start:end]
        self.end = 0
        self.base = 0                 # stream offset of buf[0]
        self.lost = False             # skipping a damaged stretch: bytes without magic are not reported again
        self.kind = 0
        self.seq = 0
        self.ack = 0
        self.payload = self.mv[0:0]

    def space(self):
        """Where the next received bytes go (at least CHUNK bytes). Moves the unparsed bytes to the
        front when the room after them is short, which ends the life of payloads handed out."""
        s, e = self.start, self.end
        if s == e:
            self.base += s
            self.start = self.end = 0
        elif len(self.buf) - e < CHUNK:
            self.buf[0:e - s] = self.mv[s:e]    # an overlapping move is safe (memmove)
            self.base += s
            self.start, self.end = 0, e - s
        return self.mv[self.end:]

    def fed(self, n):
        """n bytes were put at space()."""
        self.end += n

    def feed(self, data):
        """Copies data in (tests; the link reads into space()). data must fit in one space()."""
        n = len(data)
        self.space()[0:n] = data
        self.fed(n)

    def take_over(self, other):
        """Continue the stream `other` was parsing: its unparsed bytes move here and it is left
        empty, so a payload it handed out stays valid while this parser reads on."""
        k = other.end - other.start
        self.reset()
        self.mv[0:k] = other.mv[other.start:other.end]
        self.end = k
        self.base = other.base + other.start
        self.lost = other.lost
        other.base += other.end
        other.start = other.end = 0

    def next(self):
        """The kind of the next good frame (its fields set), NEED when more bytes are needed, BAD
        when a damaged frame was skipped (call again)."""
        s = self.start
        avail = self.end - s
        if avail < 2:
            return NEED
        b = self.buf
        if b[s] != _R or b[s + 1] != _L:
            return self.skip(s, "bad magic")
        if avail < 4:
            return NEED
        if b[s + 2] != VERSION:
            return self.skip(s, "bad version %d" % b[s + 2])
        if not _kind_ok(b[s + 3]):
            return self.skip(s, "bad kind %d" % b[s + 3])
        if avail < HDR:
            return NEED
        mv = self.mv
        seq, ack, n, chk, crc = struct.unpack_from("<IIIII", b, s + 4)
        if crc != binascii.crc32(mv[s:s + 20]):
            return self.skip(s, "header CRC mismatch", True)
        if n > MAX_PAYLOAD:
            return self.skip(s, "length %d over %d" % (n, MAX_PAYLOAD))
        if avail < HDR + n:
            return NEED
        if chk != check(mv[s + HDR:s + HDR + n], n):
            return self.skip(s, "payload check mismatch", True)
        kind = b[s + 3]
        if self.lost:
            self.lost = False
            self.resyncs += 1
        self.start = s + HDR + n
        self.kind, self.seq, self.ack = kind, seq, ack
        self.payload = mv[s + HDR:s + HDR + n]
        return kind

    def skip(self, s, reason, whole=False):
        # report where a damaged stretch begins, and inside it each frame that looked whole but
        # failed its CRC (not every false "RL" in noise or in a damaged frame's payload); then move
        # to the next magic after this frame's first byte
        if whole or not self.lost:
            self.errors += 1
            self.on_error(reason, self.base + s)
        self.lost = True
        self.start = _find_magic(self.buf, s + 1, self.end)
        return BAD
