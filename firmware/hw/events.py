# Event log: a bounded ring of the board's recent events, with subscribers (console, line protocol)
# that are told of each new one. Events also go to stderr, the board's debug port.
#
# Event text is made safe once, here, for every place that shows it (the console's screens and
# LCD, the line protocol, the host CLI, the debug port): much of it comes from outside — an iSCSI
# InitiatorName or login key, any host-supplied string — and may hold escape sequences meant for
# the operator's terminal. Control characters (C0, DEL, C1) are shown as \uXXXX and the text is
# cut to TEXT_MAX characters.
import sys
import json
import time
import micropython
from micropython import const

TEXT_MAX = const(320)       # the longest iSCSI name (223 bytes) fits whole in a message about it
_CUT = "..."


@micropython.viper
def _has_control(buf: ptr8, n: int) -> bool:
    # whether UTF-8 buf[:n] holds a C0 control, DEL or a C1 control (U+0080-U+009F: C2 80-C2 9F)
    i = 0
    while i < n:
        c = buf[i]
        if c < 32 or c == 127 or (c == 0xC2 and i + 1 < n and buf[i + 1] < 0xA0):
            return True
        i += 1
    return False


def _escaped(c):
    o = ord(c)
    return ("\\u%04x" % o) if o < 32 or 127 <= o < 160 else c


def safe_text(text):
    """`text` as any terminal or display may show it: control characters as \\uXXXX, at most
    TEXT_MAX characters (a longer text is cut and ends in "..."). Plain short text is kept as is."""
    text = str(text)
    if _has_control(text, len(memoryview(text))):
        text = "".join(_escaped(c) for c in text)
    if len(text) > TEXT_MAX:
        text = text[:TEXT_MAX - len(_CUT)] + _CUT
    return text


VALUE_MAX = const(40)       # a value echoed in a refusal: enough to recognise what was sent


def value_text(v):
    """A value a request sent, as a refusal shows it: its JSON (null, true, "x", [1, 2]), never a
    Python repr (None, True, 'x'), made safe and cut to VALUE_MAX characters."""
    try:
        s = json.dumps(v)
    except Exception:       # not JSON-able, or nested too deep to write
        s = "a value JSON cannot hold"
    if len(s) > VALUE_MAX:
        s = s[:VALUE_MAX - len(_CUT)] + _CUT
    return safe_text(s)


class EventLog:
    def __init__(self, size=64):
        self._ring = [None] * size
        self._seq = 0
        self._subs = []

    def log(self, level, text):
        text = safe_text(text)
        self._seq += 1
        ev = {"seq": self._seq, "time": time.time(), "level": level, "text": text}
        self._ring[self._seq % len(self._ring)] = ev
        print("event %d %s: %s" % (self._seq, level, text), file=sys.stderr)
        for fn in list(self._subs):
            try:
                fn(ev)
            except Exception as e:   # a broken subscriber must not stop the firmware
                self.unsubscribe(fn)
                print("event subscriber dropped: %r" % e, file=sys.stderr)
        return ev

    def recent(self, n=10):
        n = min(n, len(self._ring), self._seq)
        out = []
        for s in range(self._seq - n + 1, self._seq + 1):
            out.append(self._ring[s % len(self._ring)])
        return out

    def subscribe(self, fn):
        self._subs.append(fn)

    def unsubscribe(self, fn):
        if fn in self._subs:
            self._subs.remove(fn)
