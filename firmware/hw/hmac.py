# HMAC-SHA256 (RFC 2104; MicroPython's hashlib has SHA-256 but no hmac) and a comparison that
# takes the same time whatever the first difference: the proofs of the console password and of
# the pair's back-end link (control/pair.md "Who is on the link").
import hashlib
from micropython import const

_BLOCK = const(64)          # SHA-256 block size
_IPAD = bytes(0x36 for _ in range(_BLOCK))
_OPAD = bytes(0x5C for _ in range(_BLOCK))


def xor_bytes(a, b):
    return bytes(x ^ y for x, y in zip(a, b))


def hmac_sha256(key, msg):
    # keys here are at most a block long (20-byte password digests, 32-byte pair keys)
    k = key + bytes(_BLOCK - len(key))
    inner = hashlib.sha256(xor_bytes(k, _IPAD) + msg).digest()
    return hashlib.sha256(xor_bytes(k, _OPAD) + inner).digest()


def same(a, b):
    # compares every byte whatever the first difference is
    if len(a) != len(b):
        return False
    d = 0
    for x, y in zip(a, b):
        d |= x ^ y
    return d == 0
