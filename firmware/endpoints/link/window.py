# The send window of the link: the sequenced frames sent (or about to be) and not yet
# acknowledged, encoded once into one ring of bytes. A frame leaves when the partner acknowledges
# it; after a NAK the window is written again from its oldest frame. Frames are kept in the order
# they were numbered and released in that order, so the ring never fragments.
from array import array

from endpoints.link import frame as F


class Window:
    """Up to `frames` frames and `nbytes` bytes (at least one largest frame). Slots are numbered
    from `head`, the oldest; `sent` slots are fully written to the socket, the next one `part` bytes."""

    def __init__(self, frames, nbytes):
        if nbytes < F.MAX_FRAME:
            raise ValueError("link window of %d bytes cannot hold a %d-byte frame" % (nbytes, F.MAX_FRAME))
        self.ring = bytearray(nbytes)
        self.mv = memoryview(self.ring)
        self.cap = frames
        self.seqs = array("I", bytes(4 * frames))
        self.acks = array("I", bytes(4 * frames))     # the ack each frame carries
        self.offs = array("I", bytes(4 * frames))
        self.lens = array("I", bytes(4 * frames))
        self.reset()

    def reset(self):
        self.head = 0
        self.count = 0
        self.sent = 0
        self.part = 0
        self.rewind = False           # write again from the oldest frame at the next frame boundary
        self.resent = 0

    def slot(self, i):
        return (self.head + i) % self.cap

    def room(self, n):
        """Offset where an n-byte frame can be put, -1 when the window is full."""
        if self.count == self.cap:
            return -1
        if not self.count:
            return 0
        h = self.offs[self.head]
        last = self.slot(self.count - 1)
        t = self.offs[last] + self.lens[last]
        if h < t:                      # in use: h..t; free: t..end and 0..h
            if len(self.ring) - t >= n:
                return t
            return 0 if h >= n else -1
        return t if h - t >= n else -1   # wrapped: in use t.. and ..h; free: t..h

    def add(self, off, n, seq, ack):
        i = self.slot(self.count)
        self.offs[i] = off
        self.lens[i] = n
        self.seqs[i] = seq
        self.acks[i] = ack
        self.count += 1

    def release(self, ack):
        """Drops the written frames numbered up to ack; returns how many."""
        k = 0
        while self.sent and self.seqs[self.head] <= ack:
            self.head = self.slot(1)
            self.count -= 1
            self.sent -= 1
            k += 1
        return k

    def next_out(self):
        """The bytes of the next frame still to write (None: all written). A pending rewind takes
        effect here, between two frames; `resent` then counts the frames written again."""
        self.resent = 0
        if self.rewind and not self.part:
            self.rewind = False
            self.resent = self.sent
            self.sent = 0
        if self.sent == self.count:
            return None
        i = self.slot(self.sent)
        o = self.offs[i]
        return self.mv[o + self.part:o + self.lens[i]]

    def wrote(self, k):
        """k bytes of the frame next_out() gave went out; the slot when it is now complete, else -1."""
        i = self.slot(self.sent)
        self.part += k
        if self.part < self.lens[i]:
            return -1
        self.part = 0
        self.sent += 1
        return i
