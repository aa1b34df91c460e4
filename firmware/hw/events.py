# Event log: a bounded ring of the board's recent events, with subscribers (console, line protocol)
# that are told of each new one. Events also go to stderr, the board's debug port.
import sys
import time


class EventLog:
    def __init__(self, size=64):
        self._ring = [None] * size
        self._seq = 0
        self._subs = []

    def log(self, level, text):
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
