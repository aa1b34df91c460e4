"""Client of the console line protocol (firmware/endpoints/console/lineproto.md) over pyserial.

One `Link` is one open serial console in line mode. It works the same over a TCP console
(`socket://127.0.0.1:PORT`) and a pty (`/dev/pts/N`), because both go through
`serial.serial_for_url`. The board answers one request at a time; asynchronous `* EVENT` lines
may arrive between responses and are queued in `Link.events`.
"""
import collections
import fcntl
import hashlib
import hmac
import itertools
import json
import os
import random
import re
import select
import socket
import stat
import termios
import time

import serial

HELLO = b"#RB1"
BUSY = {b"ERR CONSOLE_IN_USE": "close the other client, e.g. a `raidboard console`, and try again",
        b"ERR MANAGEMENT_BUSY": "try again when one of them is done"}    # the board's last words, and what to do
BUSY_TRIES = 5   # a pair's command answered PARTNER_BUSY is sent this many times in all (request())
_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,16}$")


class LinkError(Exception):
    """The board cannot be reached, or stopped answering (exit code 3)."""


class ProtocolError(Exception):
    """The board answered something that is not the line protocol (exit code 5)."""


class BoardError(Exception):
    """The board refused a request: `<id> ERR <CODE> {...}` (exit code 1)."""

    def __init__(self, code, message, detail=None):
        super().__init__("%s: %s" % (code, message))
        self.code = code
        self.message = message
        self.detail = detail or {}


def password_key(password):
    """What the board keeps of a password (SHA-1), the key of every proof (endpoints/console/lineproto.md "Access")."""
    return hashlib.sha1(password.encode()).digest()


def proof(key, nonce_hex, what):
    """HMAC-SHA256(key, nonce + what): shows the board the password without sending it."""
    return hmac.new(key, bytes.fromhex(nonce_hex) + what, hashlib.sha256).digest()


def normalize_url(port):
    """Accept socket://H:P, tcp:H:P, H:P or a device path; return a pyserial URL."""
    port = port.strip()
    if port.startswith("tcp:"):
        return "socket://" + port[4:]
    if "://" in port or port.startswith("/"):
        return port
    if re.match(r"^[\w.-]+:\d+$", port):
        return "socket://" + port
    return port


class Link:
    """An open serial console switched to line mode."""

    def __init__(self, url, timeout=30.0, connect_timeout=5.0):
        self.url = normalize_url(url)
        self.timeout = timeout
        self.events = collections.deque(maxlen=1000)
        self.hello = {}
        self._buf = bytearray()
        self._ids = itertools.count(1)
        self.busy_retries = 0           # requests sent again after PARTNER_BUSY (request())
        # pyserial's socket handler has no connect timeout of its own: it uses `timeout`
        self.ser = open_console(self.url, connect_timeout, timeout)
        self.ser.timeout = 0  # reads return what is there; waiting is done by select below
        try:
            self._enter(connect_timeout)
        except BaseException:
            self._close_port()
            raise

    # -- framing ---------------------------------------------------------------------------------
    def _read_some(self, wait=0.2):
        """Wait up to `wait` seconds for input and append what arrived to the buffer."""
        try:
            ready, _, _ = select.select([self.ser.fileno()], [], [], max(0.0, wait))
            data = read_available(self.ser) if ready else None
        except (serial.SerialException, OSError, ValueError) as e:
            busy = self._busy_message()
            if busy:
                raise LinkError("console %s: %s" % (self.url, busy))
            raise LinkError("console %s closed: %s" % (self.url, reason(e)))
        if data is None:
            return b""
        if not data:
            raise LinkError("console %s: %s" % (self.url, self._busy_message() or "closed by the board"))
        self._buf += data
        return data

    def _busy_message(self):
        """The board's whole `- ERR CONSOLE_IN_USE {...}` (or MANAGEMENT_BUSY) line, if that is why it
        hung up: its message and what to do."""
        for code, hint in BUSY.items():
            i = self._buf.find(code)
            j = self._buf.find(b"\n", i)
            if i >= 0 and j >= 0:
                d = _json_tail(bytes(self._buf[i + len(code):j]).decode("utf-8", "replace")) or {}
                return "%s (%s)" % (d.get("message", "in use by other clients"), hint)
        return None

    def _readline(self, deadline):
        """Next complete line (without the line end), or None at the deadline."""
        while True:
            i = self._buf.find(b"\n")
            if i >= 0:
                line = bytes(self._buf[:i])
                del self._buf[: i + 1]
                return line.rstrip(b"\r")
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self._read_some(min(left, 1.0))

    def _write(self, data):
        try:
            self.ser.write(data)
            self.ser.flush()
        except (serial.SerialException, OSError) as e:
            raise LinkError("console %s: write failed: %s" % (self.url, reason(e)))

    def _enter(self, wait):
        """Switch the console to line mode; the VT-100 screen output before it is skipped."""
        deadline = time.monotonic() + wait
        next_hello = 0.0
        while True:
            now = time.monotonic()
            if now >= next_hello:
                # resend now and then: a pty may hold a half-typed line of an earlier client
                self._write(HELLO + b"\n")
                next_hello = now + 1.5
            busy = self._busy_message()
            if busy:
                raise LinkError("console %s: %s" % (self.url, busy))
            i = self._buf.find(HELLO + b" OK")
            if i >= 0:
                del self._buf[:i]
                j = self._buf.find(b"\n")
                if j >= 0:
                    line = bytes(self._buf[:j]).rstrip(b"\r").decode("utf-8", "replace")
                    del self._buf[: j + 1]
                    self.hello = _json_tail(line[len("#RB1 OK"):]) or {}
                    return
            else:
                # keep only a tail that could hold the start of the greeting
                if len(self._buf) > 4096:
                    del self._buf[:-16]
            if now >= deadline:
                raise LinkError(
                    "console %s did not answer #RB1 within %.0fs (is this a raidboard console? "
                    "is another client attached?)" % (self.url, wait))
            self._read_some(min(0.2, max(0.0, deadline - now)))

    # -- access (endpoints/console/lineproto.md "Access") -----------------------------------------------------------
    def login(self, password):
        """Log in by challenge-response; raises BoardError WRONG_PASSWORD / LOGIN_LOCKED."""
        nonce = self.request("challenge")["nonce"]
        self.request("login", {"proof": proof(password_key(password), nonce, b"login").hex()})

    def set_password(self, current, new):
        """Set the console password to `new` ("" clears it); `current` is the password set now (None:
        there is none). The new password travels as its digest, masked with a key made from the
        current password and a fresh challenge."""
        dig = password_key(new) if new else b""
        if current is None:
            return self.request("password_set", {"new": dig.hex()})
        key = password_key(current)
        nonce = self.request("challenge")["nonce"]
        if dig:
            dig = bytes(a ^ b for a, b in zip(dig, proof(key, nonce, b"new")))
        return self.request("password_set", {"new": dig.hex(),
                                             "proof": proof(key, nonce, b"password_set").hex()})

    # -- requests --------------------------------------------------------------------------------
    def request(self, command, args=None, timeout=None):
        """Send one request and return the result dict; raises BoardError on ERR. A command of a
        pair answered PARTNER_BUSY (it crossed one of the partner's own and nothing of it ran:
        firmware/control/pair.md "Requests that cross") is sent again, up to BUSY_TRIES times in
        all, after a short random pause (each send with the whole `timeout`)."""
        for tries in range(1, BUSY_TRIES + 1):
            try:
                return self._request_once(command, args, timeout)
            except BoardError as e:
                if e.code != "PARTNER_BUSY" or tries == BUSY_TRIES:
                    raise
                self.busy_retries += 1
                time.sleep(random.uniform(0.005, 0.05))

    def _request_once(self, command, args, timeout):
        rid = "h%d" % next(self._ids)
        if not re.match(r"^[a-z_][a-z0-9_]*$", command):
            raise ValueError("bad command name %r" % command)
        # text as UTF-8, not as \u escapes: MicroPython's JSON turns an escaped surrogate pair into
        # two surrogates, which are not UTF-8 (a lone surrogate goes as it is, and the board refuses
        # it); DEL stays escaped, the line protocol takes no control characters
        body = json.dumps(args if args is not None else {}, separators=(",", ":"),
                          ensure_ascii=False).replace("\x7f", "\\u007f")
        self._write(("%s %s %s\n" % (rid, command, body)).encode("utf-8", "surrogatepass"))
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            line = self._readline(deadline)
            if line is None:
                raise LinkError("board did not answer %r within %.0fs" % (command, timeout or self.timeout))
            text = line.decode("utf-8", "replace")
            if not text:
                continue
            if text.startswith("* EVENT"):
                ev = _json_tail(text[len("* EVENT"):])
                if isinstance(ev, dict):
                    self.events.append(ev)
                continue
            head, _, rest = text.partition(" ")
            if head == "-":
                # the board could not even parse our request line
                code, _, tail = rest.partition(" ")
                if code == "OK":
                    continue
                d = _json_tail(tail) or {}
                raise ProtocolError("board rejected the request line: %s %s" % (code, d.get("message", "")))
            if head != rid:
                continue  # stale answer of an earlier client, or screen noise
            kind, _, tail = rest.partition(" ")
            if kind == "OK":
                d = _json_tail(tail)
                if not isinstance(d, dict):
                    raise ProtocolError("board answered %r with bad JSON: %r" % (command, tail[:200]))
                return d
            if kind == "ERR":
                code, _, tail = tail.partition(" ")
                d = _json_tail(tail)
                d = d if isinstance(d, dict) else {}
                raise BoardError(code or "ERROR", d.get("message", tail.strip() or "refused"), d)
            raise ProtocolError("unexpected answer to %r: %r" % (command, text[:200]))

    def wait_event(self, timeout):
        """Return the next queued or arriving event, or None after `timeout` seconds."""
        if self.events:
            return self.events.popleft()
        deadline = time.monotonic() + timeout
        while True:
            line = self._readline(deadline)
            if line is None:
                return None
            text = line.decode("utf-8", "replace")
            if text.startswith("* EVENT"):
                ev = _json_tail(text[len("* EVENT"):])
                if isinstance(ev, dict):
                    return ev

    def close(self):
        """Leave line mode (the VT-100 screen comes back) and close the port."""
        if getattr(self, "ser", None) is None:
            return
        try:
            rid = "h%d" % next(self._ids)
            self._write(("%s bye {}\n" % rid).encode())
            deadline = time.monotonic() + 2.0
            while True:
                line = self._readline(deadline)
                if line is None or line.startswith(rid.encode() + b" "):
                    break
        except (LinkError, OSError):
            pass
        self._close_port()

    def _close_port(self):
        try:
            sock = getattr(self.ser, "_socket", None)
            if sock is not None:
                # pyserial's socket close sleeps 0.3 s "for quick reconnects"; the board needs no such pause
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
                self.ser._socket = None  # pyserial names the socket of a socket:// port nothing public
                self.ser.is_open = False
                return
            close_console(self.ser)
        except Exception:
            pass
        self.ser = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_available(ser):
    """What the port has now, without waiting: bytes, b"" at end of connection, None for nothing yet.

    pyserial's socket read drops the bytes it already has when the peer closes within the same
    call, and the board's last words ("console in use") matter, so sockets are read directly."""
    sock = getattr(ser, "_socket", None)
    if sock is not None:
        try:
            return sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return None
    n = ser.in_waiting
    return ser.read(n) if n else b""


def _json_tail(s):
    s = s.strip()
    if not s:
        return {}
    try:
        return json.loads(s)
    except ValueError:
        return None


def open_console(url, timeout, write_timeout):
    """Open the console at `url` (pyserial). One console, one owner: a device (a pty) is locked
    with flock (as picocom locks it) and TIOCEXCL (later opens fail with EBUSY, except for root),
    and if another program has it open already it is closed again and that program named."""
    device = url.startswith("/")
    try:
        ser = serial.serial_for_url(url, timeout=timeout, write_timeout=write_timeout,
                                    **({"exclusive": True} if device else {}))
    except (serial.SerialException, OSError, ValueError) as e:
        holders = device_holders(url) if device else []
        busy = holders or "busy" in str(e) or "lock" in str(e)   # EBUSY (TIOCEXCL) or another's flock
        raise LinkError(held_message(url, holders) if busy else "cannot open console %s: %s" % (url, reason(e)))
    if device:
        try:
            fcntl.ioctl(ser.fileno(), termios.TIOCEXCL)
        except OSError:
            pass                                   # not a terminal: the holder check still applies
        holders = device_holders(url)
        if holders:
            close_console(ser)
            raise LinkError(held_message(url, holders))
    return ser


def close_console(ser):
    """Close what open_console opened; a device's TIOCEXCL is cleared first, since the board keeps
    the pty open and the flag would otherwise shut out the next client."""
    if ser.port and ser.port.startswith("/"):
        try:
            fcntl.ioctl(ser.fileno(), termios.TIOCNXCL)
        except (OSError, serial.SerialException):
            pass
    ser.close()


def device_holders(path):
    """Other programs holding the terminal device `path` open, as "name (pid N)": every process
    with it open but this one, the board (it holds the pty's master: /proc/PID/fdinfo tty-index)
    and the process that booted the board (it keeps the line open so the master sees no hang-up)."""
    try:
        rdev = os.stat(path).st_rdev
    except OSError:
        return []
    m = re.match(r"^/dev/pts/(\d+)$", path)
    index = m.group(1) if m else None
    held = {pid: holds(pid, rdev, index) for pid in filter(str.isdigit, os.listdir("/proc"))}
    board = {pid for pid, (_, master) in held.items() if master}
    board |= {parent_pid(pid) for pid in board}
    return ["%s (pid %s)" % (process_name(pid), pid) for pid, (slave, _) in sorted(held.items())
            if slave and pid not in board and int(pid) != os.getpid()]


def holds(pid, rdev, index):
    """(holds the device, holds its pty master) for process `pid`; unreadable processes hold nothing."""
    slave = master = False
    base = "/proc/%s/fd" % pid
    try:
        fds = os.listdir(base)
    except OSError:
        return False, False
    for fd in fds:
        try:
            st = os.stat("%s/%s" % (base, fd))
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == rdev:
                slave = True
            elif index is not None and os.readlink("%s/%s" % (base, fd)).endswith("ptmx"):
                with open("/proc/%s/fdinfo/%s" % (pid, fd)) as f:
                    master = master or ("tty-index:\t%s\n" % index) in f.read()
        except OSError:
            continue
    return slave, master


def parent_pid(pid):
    try:
        with open("/proc/%s/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[1]
    except (OSError, IndexError):
        return None


def process_name(pid):
    try:
        with open("/proc/%s/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return "a process"


def held_message(path, holders):
    return ("console %s is in use by %s: quit it (or detach it from the line) and try again; "
            "one program at a time owns a serial console" % (path, ", ".join(holders) or "another program"))


def reason(e):
    msg = str(e)
    if "Connection refused" in msg or "ConnectionRefused" in msg or "[Errno 111]" in msg:
        return "connection refused (is the board running? start it with `raidboard boot`)"
    return msg
