# CHAP (RFC 1994 with MD5, as RFC 7143 12.1.3 uses it) on the login of one connection, and the
# throttle on guessing the secret from one source address.
import binascii
import hashlib
import os
import time
from micropython import const

from endpoints.listen import show

# CHAP guessing: after n failed responses in a row from one source address, the next response from
# it is checked only once CHAP_FIRST_MS * 2^(n-1) (at most CHAP_MAX_MS) have passed since the last
CHAP_FIRST_MS = const(1000)
CHAP_MAX_MS = const(300000)
CHAP_FORGET_MS = const(3600000)   # an address quiet this long starts afresh
CHAP_WARN = const(5)         # failures in a row that make an event (then 8, 16, 32, ...)
CHAP_TABLE = const(64)       # source addresses remembered


def creds(cfg, initiator):
    """The CHAP user and secret `initiator` must prove, or None when it logs in without
    authentication (README "Login"): a mask's own secret, under the masked name, replaces the
    board-wide credential for that name, so knowing the board's secret does not let a host log in
    as a masked initiator."""
    own = cfg.mask_secrets.get(initiator)
    if own:
        return {"user": initiator, "secret": own}
    if cfg.chap_user and cfg.chap_secret:
        return {"user": cfg.chap_user, "secret": cfg.chap_secret}
    return None


class Chap:
    """One connection's CHAP exchange: the challenge issued and the check of its response, which
    the guard of the board hears of."""

    def __init__(self, guard, peer):
        self.secret = None           # creds(): user and secret, from the AuthMethod key
        self.guard = guard
        self.peer = peer
        self.ident = 0
        self.challenge = None

    def step(self, ck, reply, who):
        """One step with the CHAP keys ck of initiator `who`'s login request, answering into
        reply: True = authenticated, None = continue, False = failed."""
        if "CHAP_A" in ck:
            if "5" not in ck["CHAP_A"].split(","):
                reply.append(("CHAP_A", "Reject"))
                return False
            self.ident = os.urandom(1)[0]
            self.challenge = os.urandom(16)
            reply.append(("CHAP_A", "5"))
            reply.append(("CHAP_I", str(self.ident)))
            reply.append(("CHAP_C", "0x" + self.challenge.hex()))
            return None
        if "CHAP_N" in ck or "CHAP_R" in ck:
            if self.challenge is None or "CHAP_I" in ck or "CHAP_C" in ck:
                return False   # no challenge issued yet, or mutual CHAP (no target secret here)
            r = ck.get("CHAP_R", "")
            try:
                if r[:2] in ("0x", "0X"):
                    resp = bytes.fromhex(r[2:])
                elif r[:2] in ("0b", "0B"):
                    resp = binascii.a2b_base64(r[2:])
                else:
                    return False
            except Exception:
                return False
            want = hashlib.md5(bytes([self.ident]) + self.secret["secret"].encode()
                               + self.challenge).digest()
            self.challenge = None
            ok = ck.get("CHAP_N") == self.secret["user"] and resp == want
            self.guard.result(self.peer, ok, who)
            return ok
        return None


class ChapGuard:
    """Failed CHAP responses per source address (see CHAP_FIRST_MS): a response that comes before
    the address's delay has passed is refused unchecked, so guesses cannot be made faster than the
    delay allows however many connections carry them. A success forgets the address.

    The table holds CHAP_TABLE addresses; an entry leaves it only by a success or by an hour without
    failures, never for a newcomer. While it is full, the addresses it does not hold share one
    board-wide entry, `common`: guessing from more addresses than it holds is slowed as one
    address more, and an address it does not hold is checked once that entry's delay has passed."""

    def __init__(self, clock, log):
        self.clock = clock
        self.log = log
        self.seen = {}          # address -> [failures in a row, ticks of the last failure]
        self.common = [0, 0]    # the same, for every address the full table does not hold

    def _entry(self, addr, now):
        """The live entry that counts addr's failures (its own, else `common`; None: neither has
        any), and the ms since its last failure."""
        e = self.seen.get(addr)
        if e is not None and not self._live(e, now):
            del self.seen[addr]
            e = None
        if e is None:
            e = self.common
            if not (e[0] and self._live(e, now)):
                return None, 0
        return e, time.ticks_diff(now, e[1])

    def _live(self, e, now):
        return 0 <= time.ticks_diff(now, e[1]) < CHAP_FORGET_MS

    def _room(self, now):
        """Whether the table can take one more address, once the entries forgotten have left."""
        if len(self.seen) < CHAP_TABLE:
            return True
        for a in [a for a, e in self.seen.items() if not self._live(e, now)]:
            del self.seen[a]
        return len(self.seen) < CHAP_TABLE

    def wait_ms(self, addr):
        """How long before a response from addr is checked (0: now)."""
        e, age = self._entry(addr, self.clock())
        if e is None:
            return 0
        return max(0, min(CHAP_FIRST_MS << min(e[0] - 1, 20), CHAP_MAX_MS) - age)

    def result(self, addr, ok, who):
        if ok:
            self.seen.pop(addr, None)
            return
        now = self.clock()
        e = self.seen.get(addr)
        if e is None or not self._live(e, now):
            self.seen.pop(addr, None)
            if self._room(now):
                e = self.seen[addr] = [0, now]
            else:
                e = self.common
                if not self._live(e, now):
                    e[0] = 0
        e[0] += 1
        e[1] = now
        n = e[0]
        if n == CHAP_WARN or (n > CHAP_WARN and not n & (n - 1)):
            self.log("warn", "iSCSI: %d failed CHAP logins in a row from %s (last as %s); next "
                     "check in %d s" % (n, self._whom(addr, e), who, self.wait_ms(addr) // 1000))

    def _whom(self, addr, e):
        if e is self.common:
            return "addresses beyond the %d remembered (last %s)" % (CHAP_TABLE, show(addr))
        return show(addr)
