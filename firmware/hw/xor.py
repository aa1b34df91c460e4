# The XOR engine of the board, as viper loops over 32-bit words. All lengths are in bytes and must
# be multiples of 16 — RAID works in 512-byte sectors, so every caller's lengths are.
# The loops move pointers 32 bytes (8 words) at a time, then 16 bytes for a remainder: indexing
# every word from one base took about a quarter longer (64 KiB of xor_into2: 1.23x the time, the
# median of nine side-by-side runs, 46-75 us against 50-92), and on a RAID 5 write the XOR is a
# large part of what the I/O processor's thread does.
import micropython


@micropython.viper
def xor_of(dst: ptr32, a: ptr32, b: ptr32, nbytes: int):
    # dst = a ^ b over nbytes (one pass: no copy of a first)
    d = uint(dst)
    x = uint(a)
    y = uint(b)
    e = d + uint(nbytes)
    while d + 32 <= e:
        p = ptr32(d)
        q = ptr32(x)
        r = ptr32(y)
        p[0] = q[0] ^ r[0]
        p[1] = q[1] ^ r[1]
        p[2] = q[2] ^ r[2]
        p[3] = q[3] ^ r[3]
        p[4] = q[4] ^ r[4]
        p[5] = q[5] ^ r[5]
        p[6] = q[6] ^ r[6]
        p[7] = q[7] ^ r[7]
        d += 32
        x += 32
        y += 32
    if d < e:
        p = ptr32(d)
        q = ptr32(x)
        r = ptr32(y)
        p[0] = q[0] ^ r[0]
        p[1] = q[1] ^ r[1]
        p[2] = q[2] ^ r[2]
        p[3] = q[3] ^ r[3]


@micropython.viper
def xor_into2(dst: ptr32, a: ptr32, b: ptr32, nbytes: int):
    # dst ^= a ^ b over nbytes: two sources in one pass over dst
    d = uint(dst)
    x = uint(a)
    y = uint(b)
    e = d + uint(nbytes)
    while d + 32 <= e:
        p = ptr32(d)
        q = ptr32(x)
        r = ptr32(y)
        p[0] ^= q[0] ^ r[0]
        p[1] ^= q[1] ^ r[1]
        p[2] ^= q[2] ^ r[2]
        p[3] ^= q[3] ^ r[3]
        p[4] ^= q[4] ^ r[4]
        p[5] ^= q[5] ^ r[5]
        p[6] ^= q[6] ^ r[6]
        p[7] ^= q[7] ^ r[7]
        d += 32
        x += 32
        y += 32
    if d < e:
        p = ptr32(d)
        q = ptr32(x)
        r = ptr32(y)
        p[0] ^= q[0] ^ r[0]
        p[1] ^= q[1] ^ r[1]
        p[2] ^= q[2] ^ r[2]
        p[3] ^= q[3] ^ r[3]


@micropython.viper
def xor_into(dst: ptr32, src: ptr32, nbytes: int):
    # dst ^= src over nbytes
    d = uint(dst)
    x = uint(src)
    e = d + uint(nbytes)
    while d + 32 <= e:
        p = ptr32(d)
        q = ptr32(x)
        p[0] ^= q[0]
        p[1] ^= q[1]
        p[2] ^= q[2]
        p[3] ^= q[3]
        p[4] ^= q[4]
        p[5] ^= q[5]
        p[6] ^= q[6]
        p[7] ^= q[7]
        d += 32
        x += 32
    if d < e:
        p = ptr32(d)
        q = ptr32(x)
        p[0] ^= q[0]
        p[1] ^= q[1]
        p[2] ^= q[2]
        p[3] ^= q[3]


@micropython.viper
def zero(dst: ptr32, nbytes: int):
    n = nbytes >> 2
    i = 0
    while i < n:
        dst[i] = 0
        dst[i + 1] = 0
        dst[i + 2] = 0
        dst[i + 3] = 0
        i += 4


@micropython.viper
def nonzero_sectors(buf: ptr32, nbytes: int) -> int:
    # how many 512-byte sectors of buf hold a non-zero byte
    count = 0
    n = nbytes >> 2
    i = 0
    while i < n:
        e = i + 128
        while i < e:
            if buf[i] != 0 or buf[i + 1] != 0 or buf[i + 2] != 0 or buf[i + 3] != 0:
                count += 1
                break
            i += 4
        i = e
    return count


@micropython.viper
def diff_sectors(a: ptr32, b: ptr32, nbytes: int) -> int:
    # how many 512-byte sectors differ between a and b
    count = 0
    n = nbytes >> 2
    i = 0
    while i < n:
        e = i + 128
        while i < e:
            if a[i] != b[i] or a[i + 1] != b[i + 1] or a[i + 2] != b[i + 2] or a[i + 3] != b[i + 3]:
                count += 1
                break
            i += 4
        i = e
    return count
