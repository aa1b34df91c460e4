# The console line protocol (endpoints/console/lineproto.md): requests "<id> <command> [json]" in, "<id> OK json" /
# "<id> ERR CODE json" out, "* EVENT json" between responses. Bytes arrive in chunks of any size;
# a request line is collected in one preallocated buffer and a line that does not fit is discarded
# up to its newline and answered with LINE_TOO_LONG, so no input grows memory. One LineProto per
# client: the console's (uart.py) and each management client's (mgmt.py); each answers the access
# commands (challenge, login, password_set) and bye itself, with its own login state and challenge,
# under the one Access the board's console endpoints share.
import json
import sys
import micropython
from micropython import const
from endpoints.console import jsontext

LINE_MAX = const(266240)    # room for a 128 KiB data-out in hex plus the request around it
ID_MAX = const(16)
CMD_MAX = const(32)
EVQ = const(64)             # events kept for a line-mode client between two flushes
HELLO = "#RB1"
FIRMWARE = "raidboard-fw 0.1"       # the version; also read by the host CLI (raidboard --version)
OPEN = ("challenge", "login", "bye")    # what a client may send before it logged in


@micropython.viper
def _bad_byte(buf: ptr8, n: int) -> int:
    # index of the first control character (TAB allowed), or -1
    i = 0
    while i < n:
        c = buf[i]
        if (c < 32 and c != 9) or c == 127:
            return i
        i += 1
    return -1


def _ok_id(s):
    if not 0 < len(s) <= ID_MAX:
        return False
    for c in s:
        if not (("a" <= c <= "z") or ("A" <= c <= "Z") or ("0" <= c <= "9") or c == "_" or c == "-"):
            return False
    return True


def _ok_cmd(s):
    if not 0 < len(s) <= CMD_MAX:
        return False
    for c in s:
        if not (("a" <= c <= "z") or ("0" <= c <= "9") or c == "_"):
            return False
    return True


def err(rid, code, message, **extra):
    d = {"message": message}
    for k in extra:
        d[k] = extra[k]
    return "%s ERR %s %s\n" % (rid, code, jsontext.dumps(d))


def event_line(ev):
    return "* EVENT %s\n" % jsontext.dumps(ev)


class EventQueue:
    """The events waiting for one line-mode client between two flushes: EVQ of them, the rest
    counted and told in one `* EVENTS_LOST` line."""

    def __init__(self):
        self.q = [None] * EVQ
        self.n = 0
        self.lost = 0

    def put(self, ev):
        if self.n < EVQ:
            self.q[self.n] = ev
            self.n += 1
        else:
            self.lost += 1

    def clear(self):
        for k in range(self.n):
            self.q[k] = None
        self.n = 0
        self.lost = 0

    async def flush(self, port):
        # put() may add while a write waits: the loop reads n afresh after each one
        k = 0
        while k < self.n:
            ev = self.q[k]
            self.q[k] = None
            await port.write(event_line(ev).encode())
            k += 1
        self.n = 0
        if self.lost:
            lost, self.lost = self.lost, 0
            await port.write(("* EVENTS_LOST %s\n" % json.dumps({"count": lost})).encode())


class LineProto:
    def __init__(self, ctl, local, access, endpoint="console"):
        self.ctl = ctl
        self.access = access    # access.py: whether a login is needed, the count of wrong passwords
        self.endpoint = endpoint    # "console" or "management", told in the greeting
        self.local = {"bye": self._bye, "challenge": self._challenge, "login": self._login,
                      "password_set": self._password_set}
        for k in local:         # name -> fn(args) -> dict: commands the endpoint answers itself
            self.local[k] = local[k]
        self.buf = bytearray(LINE_MAX)
        self.mv = memoryview(self.buf)
        self.reset()

    def reset(self):
        self.n = 0
        self.over = False
        self.left = False       # set by `bye`: the console goes back to VT-100 mode
        self.authed = False     # logged in (or set the password) since entering line mode
        self.nonce = None       # this client's challenge (access.py), good for one answer

    def greeting(self):
        # login: whether requests need a login first (a password is set)
        return "%s OK %s\n" % (HELLO, json.dumps({"model": self.ctl.board["model"], "firmware": FIRMWARE,
                                                   "iqn": self.ctl.iqn, "login": self.access.required(),
                                                   "endpoint": self.endpoint}))

    # -- the commands every line-protocol client has (lineproto.md "Access") --
    def _bye(self, args):
        self.left = True
        return {}

    def _challenge(self, args):
        return self.access.challenge(self)

    def _login(self, args):
        r = self.access.login(self, args)
        self.authed = True
        return r

    def _password_set(self, args):
        r = self.access.set_password(self, args)
        self.authed = True    # it proved the old password, or there was none
        return r

    async def feed(self, port, src, i, n, lines):
        """Consume src[i:n] (src a bytearray), answering each complete line on port, at most
        `lines` of them. Returns the index after the last line answered when that was the
        `lines`th or ended line mode (`bye`), else n."""
        while i < n:
            j = src.find(b"\n", i, n)
            end = n if j < 0 else j
            k = end - i
            if not self.over:
                if self.n + k > LINE_MAX:
                    self.over = True
                else:
                    self.mv[self.n:self.n + k] = memoryview(src)[i:end]
                    self.n += k
            if j < 0:
                return n
            i = j + 1
            if self.over:
                resp = err("-", "LINE_TOO_LONG", "line longer than %d bytes; discarded" % LINE_MAX, limit=LINE_MAX)
            else:
                resp = self.line(self.n)
            self.n = 0
            self.over = False
            if resp:
                await port.write(resp.encode())
            lines -= 1
            if self.left or lines == 0:
                return i
        return n

    def line(self, n):
        """The response (str) to the request in buf[:n], or None for an empty line."""
        if n and self.buf[n - 1] == 13:
            n -= 1
        if n == 0:
            return None
        mv = self.mv[:n]
        bad = _bad_byte(self.buf, n)
        if bad >= 0:
            return err("-", "BAD_REQUEST", "control character 0x%02x at column %d" % (self.buf[bad], bad + 1))
        try:
            text = str(mv, "utf-8")
        except Exception:
            return err("-", "BAD_REQUEST", "line is not UTF-8 text")
        mv = None
        if text.strip() == HELLO:
            return self.greeting()
        parts = text.split(" ", 2)
        if len(parts) < 2 or not _ok_id(parts[0]) or not _ok_cmd(parts[1]):
            return err("-", "BAD_REQUEST",
                       "expected '<id> <command> [json-object]': id 1-16 of [A-Za-z0-9_-], command [a-z0-9_]")
        rid, cmd = parts[0], parts[1]
        args = {}
        raw = parts[2].strip() if len(parts) > 2 else ""
        text = parts = None     # a long request is not kept alive while the command runs
        if raw:
            try:
                args = json.loads(raw)
            except Exception:
                return err(rid, "BAD_JSON", "argument is not valid JSON")
            if not isinstance(args, dict):
                return err(rid, "BAD_JSON", "argument must be a JSON object")
        raw = None
        return self.call(rid, cmd, args)

    def call(self, rid, cmd, args):
        if not self.authed and cmd not in OPEN and self.access.required():
            return err(rid, "PASSWORD_REQUIRED", "a password is set: log in first (challenge, then login)")
        try:
            fn = self.local.get(cmd)
            res = fn(args) if fn else self.ctl.command(cmd, args)
            if res is None:
                res = {}
            return "%s OK %s\n" % (rid, jsontext.dumps(res))
        except Exception as e:
            code = getattr(e, "code", None)
            if isinstance(code, str):
                return err(rid, code, str(getattr(e, "message", "") or code))
            # a fault inside the firmware: reported, logged, and the console carries on
            sys.print_exception(e, sys.stderr)
            return err(rid, "INTERNAL", "%s: %s" % (type(e).__name__, e))
