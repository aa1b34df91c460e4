# Who may use the console (endpoints/console/lineproto.md "Access"). With no password in NV memory the console is
# open. With one, the menus that change anything ask for it, and the line protocol answers nothing
# but #RB1, challenge, login and bye until the client proves it knows the password by
# challenge-response — the password never crosses the line. One Access per console: the menus and
# the line protocol share its count of wrong passwords, which outlives the sessions; a challenge
# does not: it is kept by the client that asked for it (`client.nonce`: each line-protocol client,
# on the console or the management endpoint, has its own, forgotten when its session ends).
import os
import time
import hashlib
from micropython import const
from control.errors import CmdError
from hw.hmac import hmac_sha256, same, xor_bytes

NONCE_LEN = const(16)
FAILS_MAX = const(5)        # wrong passwords in a row before the console stops trying them
LOCK_MS = const(30000)      # ... for this long (by the clock given to Access)
def digest(password):
    """What NV memory keeps of a password: its SHA-1 (the key of every proof)."""
    return hashlib.sha1(password.encode()).digest()


def _hex(args, key, n):
    v = args.get(key, "")
    try:
        b = bytes.fromhex(v) if isinstance(v, str) else None
    except ValueError:
        b = None
    if b is None or len(b) != n:
        raise CmdError("BAD_ARGUMENT", "'%s' must be %d bytes in hex" % (key, n))
    return b


class Access:
    def __init__(self, ctl, clock=time.ticks_ms):
        self.ctl = ctl
        self.clock = clock
        self.fails = 0
        self.since = 0          # clock when the FAILS_MAX-th wrong password came

    def required(self):
        return self.ctl.cfg.password is not None

    def _ready(self):
        # refuses every try while locked out; the first try after the lock-out gets a fresh count
        if self.fails < FAILS_MAX:
            return
        left = LOCK_MS - time.ticks_diff(self.clock(), self.since)
        if left > 0:
            raise CmdError("LOGIN_LOCKED", "%d wrong passwords in a row: try again in %d s"
                           % (FAILS_MAX, (left + 999) // 1000))
        self.fails = 0

    def _judge(self, ok):
        if ok:
            self.fails = 0
            return True
        self.fails += 1
        if self.fails == FAILS_MAX:
            self.since = self.clock()
        return False

    def check(self, password):
        """A password typed in the menus (on the front panel or the terminal)."""
        self._ready()
        return self._judge(not self.required() or same(digest(password), self.ctl.cfg.password))

    def challenge(self, client):
        """A fresh nonce for `client` (anything with a `nonce` attribute: lineproto.LineProto). A
        challenge belongs to the client and session that asked for it: the client drops it when a
        session begins and ends, so a proof made for another session's nonce is NO_CHALLENGE."""
        client.nonce = os.urandom(NONCE_LEN)
        return {"nonce": client.nonce.hex()}

    def _proof(self, client, args, what):
        # a proof is good for one challenge, right or wrong
        self._ready()
        nonce, client.nonce = client.nonce, None
        if nonce is None:
            raise CmdError("NO_CHALLENGE", "ask for a challenge first; each one is good for one answer")
        got = _hex(args, "proof", 32)
        if not self._judge(same(got, hmac_sha256(self.ctl.cfg.password, nonce + what))):
            raise CmdError("WRONG_PASSWORD", "the proof does not match the password in NV memory")
        return nonce

    def login(self, client, args):
        """`login {"proof"}`: proof = HMAC-SHA256(SHA-1(password), nonce + "login")."""
        if self.required():
            self._proof(client, args, b"login")
        return {}

    def set_password(self, client, args):
        """`password_set {"new", "proof"}` over the line (endpoints/console/lineproto.md): with a password set, the
        proof of it over a fresh challenge, and the new digest masked with a key only the holder of
        the current password can make; with none, the new digest as it is. "new": "" clears it."""
        new = args.get("new", "")
        if not isinstance(new, str):
            raise CmdError("BAD_ARGUMENT", "'new' must be 20 bytes in hex, or \"\" to clear the password")
        if self.required():
            nonce = self._proof(client, args, b"password_set")
            if new:
                new = xor_bytes(_hex(args, "new", 20),
                           hmac_sha256(self.ctl.cfg.password, nonce + b"new")[:20])
        elif new:
            new = _hex(args, "new", 20)
        self.store(new or None)
        return {"password_set": bool(new)}

    def store(self, dig):
        self.ctl.cfg.password = dig
        self.ctl.save()
