# The XOR engine (hw/xor.py), on micropython: each routine gives what a byte-by-byte XOR gives,
# for every length its callers may pass (multiples of 16 bytes, with and without a remainder past
# its 32-byte steps), and touches no byte past the length.
import os
from hw.xor import xor_of, xor_into2, xor_into

LENGTHS = (16, 32, 48, 496, 512, 4096 + 16, 65536)
GUARD = 64


def rnd(n):
    return bytearray(os.urandom(n))


def ref(*bufs):
    out = bytearray(bufs[0])
    for b in bufs[1:]:
        for i in range(len(out)):
            out[i] ^= b[i]
    return out


def test_each_routine_is_a_byte_xor_over_exactly_its_length():
    for n in LENGTHS:
        a, b, c = rnd(n + GUARD), rnd(n + GUARD), rnd(n + GUARD)
        want_tail = bytes(c[n:])
        d = bytearray(c)
        xor_of(d, a, b, n)
        assert d[:n] == ref(a[:n], b[:n]) and d[n:] == want_tail, n
        d = bytearray(c)
        xor_into2(d, a, b, n)
        assert d[:n] == ref(c[:n], a[:n], b[:n]) and d[n:] == want_tail, n
        d = bytearray(c)
        xor_into(d, a, n)
        assert d[:n] == ref(c[:n], a[:n]) and d[n:] == want_tail, n


def test_views_at_an_offset_xor_their_own_bytes():
    # the RAID code passes memoryview slices of its scratch and transfer buffers
    a, b, c = rnd(1024), rnd(1024), rnd(1024)
    d = bytearray(c)
    xor_into2(memoryview(d)[512:], memoryview(a)[256:768], memoryview(b)[16:528], 512)
    assert d[:512] == c[:512]
    assert d[512:] == ref(c[512:], a[256:768], b[16:528])
