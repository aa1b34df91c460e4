"""Helpers for the console tests: a VT-100 terminal (pyte) and a line-protocol client on the board's
serial console (the board itself comes from the `board` fixture of tests/conftest.py)."""
import json
import socket
import time

import pyte

UP, DOWN, ENTER, ESC = b"\x1b[A", b"\x1b[B", b"\r", b"\x1b"


class Term:
    """A person at a VT-100 terminal on the console socket; the screen is pyte's."""

    def __init__(self, addr, timeout=10.0):
        self.s = socket.create_connection(addr, timeout=timeout)
        self.s.settimeout(0.05)
        self.screen = pyte.Screen(80, 24)
        self.stream = pyte.ByteStream(self.screen)
        self.received = 0
        self.raw = b""
        self.timeout = timeout

    def close(self):
        self.s.close()

    def pump(self, seconds=0.05):
        end = time.monotonic() + seconds
        while True:
            try:
                d = self.s.recv(65536)
                if not d:
                    raise EOFError("console closed the connection")
                self.received += len(d)
                self.raw = (self.raw + d)[-200000:]
                self.stream.feed(d)
            except socket.timeout:
                pass
            if time.monotonic() >= end:
                return

    def text(self):
        return "\n".join(self.screen.display)

    def lcd(self):
        d = self.screen.display
        return d[1][1:21].rstrip(), d[2][1:21].rstrip()

    def wait(self, what, timeout=None):
        """Pump until `what` (text, or a predicate on the terminal) shows; fail with the screen."""
        end = time.monotonic() + (timeout or self.timeout)
        pred = what if callable(what) else (lambda t: what in t.text())
        while time.monotonic() < end:
            self.pump(0.05)
            if pred(self):
                return
        raise AssertionError("%r not on the screen:\n%s\nlast bytes: %r" % (what, self.text(), self.raw[-300:]))

    def wait_lcd(self, l1, l2=None):
        self.wait(lambda t: t.lcd()[0] == l1 and (l2 is None or t.lcd()[1] == l2))

    def key(self, k):
        self.s.sendall(k)

    def selected(self):
        """The body row shown in reverse video (the menu cursor), stripped."""
        for y in range(5, 22):
            row = self.screen.buffer[y]
            if row[3].reverse:
                return "".join(row[x].data for x in range(80)).strip()
        return None

    def select(self, label):
        """Move the cursor with the arrow keys to the item starting with label (as a person reads it)."""
        for _ in range(30):
            self.wait(lambda t: t.selected() is not None)
            if self.selected().startswith(label):
                return
            before = self.selected()
            self.key(DOWN)
            self.wait(lambda t: t.selected() != before)
        raise AssertionError("no item %r:\n%s" % (label, self.text()))

    def choose(self, *labels):
        for label in labels:
            self.select(label)
            title = self.screen.display[4]
            self.key(ENTER)
            self.wait(lambda t: t.screen.display[4] != title or t.screen.display[22].strip())

    def home(self):
        for _ in range(8):
            if "MONITOR MODE" in self.screen.display[1]:
                return
            self.key(ESC)
            self.pump(0.2)
        self.wait("MONITOR MODE")


class Line:
    """A program on the console speaking the line protocol (as the host CLI does)."""

    def __init__(self, addr=None, sock=None, timeout=10.0):
        self.s = sock or socket.create_connection(addr, timeout=timeout)
        self.s.settimeout(timeout)
        self.buf = b""
        self.events = []
        self.n = 0

    def readline(self):
        while b"\n" not in self.buf:
            d = self.s.recv(65536)
            if not d:
                raise EOFError("console closed the connection")
            self.buf += d
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode("utf-8", "replace")

    def hello(self):
        self.s.sendall(b"#RB1\n")
        while True:
            line = self.readline()
            if "#RB1 OK " in line:      # screen output before it has no newlines: skip it
                return json.loads(line[line.index("#RB1 OK ") + 8:])

    def response(self, rid):
        while True:
            line = self.readline()
            if line.startswith("* EVENT "):
                self.events.append(json.loads(line[8:]))
                continue
            parts = line.split(" ", 2)
            if parts[0] == rid or parts[0] == "-":
                return line

    def exchange(self, cmd, args=None):
        """Send one request; its answer line (events that come first are kept in `events`)."""
        self.n += 1
        rid = "r%d" % self.n
        self.s.sendall(("%s %s %s\n" % (rid, cmd, json.dumps(args or {}))).encode())
        return self.response(rid)

    def request(self, cmd, args=None):
        """(code, result): "OK" and the result, or the error code and its details."""
        _, kind, rest = self.exchange(cmd, args).split(" ", 2)
        if kind == "OK":
            return "OK", json.loads(rest)
        code, rest = rest.split(" ", 1)
        return code, json.loads(rest)

    def call(self, cmd, args=None):
        line = self.exchange(cmd, args)
        _, kind, rest = line.split(" ", 2)
        if kind == "OK":
            return json.loads(rest)
        raise RuntimeError(line)

    def close(self):
        self.s.close()
