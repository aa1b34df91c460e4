# Controller buffer (FIG. 3): the board's fixed memory, cut into equal slots at boot. It never
# grows: take() answers -1 when every slot is in use and the caller must wait (wait_take) or make
# room (the write-back cache destages). One bytearray backs all slots.
import asyncio


class Buffer:
    def __init__(self, total_bytes, slot_bytes):
        if slot_bytes < 512 or slot_bytes % 512:
            raise ValueError("buffer: slot size %r is not a positive multiple of 512" % (slot_bytes,))
        if total_bytes < slot_bytes:
            raise ValueError("buffer: %r bytes cannot hold one slot of %d" % (total_bytes, slot_bytes))
        self.slots = total_bytes // slot_bytes
        self.slot_bytes = slot_bytes
        self._mem = bytearray(self.slots * slot_bytes)
        self._mv = memoryview(self._mem)
        self._views = [self._mv[i * slot_bytes:(i + 1) * slot_bytes] for i in range(self.slots)]
        self._used = bytearray(self.slots)
        # free slots as a stack of fixed length (entries [0, free) are free)
        self._stack = [self.slots - 1 - i for i in range(self.slots)]
        self.free = self.slots
        self._event = asyncio.Event()

    def take(self):
        if not self.free:
            return -1
        self.free -= 1
        i = self._stack[self.free]
        self._used[i] = 1
        return i

    def give(self, i):
        if not 0 <= i < self.slots or not self._used[i]:
            raise ValueError("buffer: slot %r is not taken" % (i,))
        self._used[i] = 0
        self._stack[self.free] = i
        self.free += 1
        self._event.set()

    def take_span(self, n):
        # up to n adjacent free slots (at least one), for work that wants one long buffer (the
        # snapshot copies a run of chunks with one read and one write): -> (first, count), or
        # (-1, 0) when every slot is in use
        used = self._used
        best, size = -1, 0
        i = 0
        while i < self.slots and size < n:
            if used[i]:
                i += 1
                continue
            j = i
            while j < self.slots and not used[j] and j - i < n:
                j += 1
            if j - i > size:
                best, size = i, j - i
            i = j
        if best < 0:
            return -1, 0
        for k in range(best, best + size):
            used[k] = 1
        self._restack()
        return best, size

    def give_span(self, first, count):
        for k in range(first, first + count):
            if not self._used[k]:
                raise ValueError("buffer: slot %r is not taken" % (k,))
            self._used[k] = 0
        self._restack()
        self._event.set()

    def span(self, first, count):
        return self._mv[first * self.slot_bytes:(first + count) * self.slot_bytes]

    def _restack(self):
        # the free stack again from the used flags (spans take slots out of its middle)
        n = 0
        for k in range(self.slots - 1, -1, -1):
            if not self._used[k]:
                self._stack[n] = k
                n += 1
        self.free = n

    def view(self, i):
        if not 0 <= i < self.slots or not self._used[i]:
            raise ValueError("buffer: slot %r is not taken" % (i,))
        return self._views[i]

    async def wait_take(self):
        while True:
            i = self.take()
            if i >= 0:
                return i
            self._event.clear()
            await self._event.wait()
