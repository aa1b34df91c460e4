# The XOR engine of the board, as viper loops over 32-bit words (about 1.5 GB/s on the unix port;
# a byte loop is ~100x slower). All lengths are in bytes and must be multiples of 16 — RAID works
# in 512-byte sectors, so every caller's lengths are.
import micropython


@micropython.viper
def xor_of(dst: ptr32, a: ptr32, b: ptr32, nbytes: int):
    # dst = a ^ b over nbytes (one pass: no copy of a first)
    n = nbytes >> 2
    i = 0
    while i < n:
        dst[i] = a[i] ^ b[i]
        dst[i + 1] = a[i + 1] ^ b[i + 1]
        dst[i + 2] = a[i + 2] ^ b[i + 2]
        dst[i + 3] = a[i + 3] ^ b[i + 3]
        i += 4


@micropython.viper
def xor_into2(dst: ptr32, a: ptr32, b: ptr32, nbytes: int):
    # dst ^= a ^ b over nbytes: two sources in one pass over dst
    n = nbytes >> 2
    i = 0
    while i < n:
        dst[i] ^= a[i] ^ b[i]
        dst[i + 1] ^= a[i + 1] ^ b[i + 1]
        dst[i + 2] ^= a[i + 2] ^ b[i + 2]
        dst[i + 3] ^= a[i + 3] ^ b[i + 3]
        i += 4


@micropython.viper
def xor_into(dst: ptr32, src: ptr32, nbytes: int):
    # dst ^= src over nbytes
    n = nbytes >> 2
    i = 0
    while i < n:
        dst[i] ^= src[i]
        dst[i + 1] ^= src[i + 1]
        dst[i + 2] ^= src[i + 2]
        dst[i + 3] ^= src[i + 3]
        i += 4


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
