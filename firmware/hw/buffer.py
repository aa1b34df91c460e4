# Controller buffer (FIG. 3): the board's fixed memory, cut into equal slots at boot. It never
# grows: take() answers -1 when every slot is in use and the caller must wait (wait_take) or make
# room (the write-back cache destages). One bytearray backs all slots; a byte per slot says
# whether it is taken, scanned by viper code so a take or a span costs about a microsecond.
import asyncio
import micropython


@micropython.viper
def _find(used: ptr8, slots: int, n: int) -> int:
    # the first longest run of free slots, at most n long: first << 24 | length (0: none free)
    best = 0
    size = 0
    i = 0
    while i < slots and size < n:
        if used[i]:
            i += 1
            continue
        j = i
        while j < slots and not used[j] and j - i < n:
            j += 1
        if j - i > size:
            best = i
            size = j - i
        i = j
    return (best << 24) | size


@micropython.viper
def _taken(used: ptr8, first: int, count: int) -> int:
    n = 0
    for k in range(first, first + count):
        n += used[k]
    return n


@micropython.viper
def _fill(used: ptr8, first: int, count: int, v: int):
    for k in range(first, first + count):
        used[k] = v


class Buffer:
    def __init__(self, total_bytes, slot_bytes):
        if slot_bytes < 512 or slot_bytes % 512:
            raise ValueError("buffer: slot size %r is not a positive multiple of 512" % (slot_bytes,))
        if total_bytes < slot_bytes:
            raise ValueError("buffer: %r bytes cannot hold one slot of %d" % (total_bytes, slot_bytes))
        self.slots = min(total_bytes // slot_bytes, 1 << 24)
        self.slot_bytes = slot_bytes
        self._mem = bytearray(self.slots * slot_bytes)
        self._mv = memoryview(self._mem)
        self._views = [self._mv[i * slot_bytes:(i + 1) * slot_bytes] for i in range(self.slots)]
        self._used = bytearray(self.slots)
        self.free = self.slots
        self._event = asyncio.Event()

    def take(self):
        # the lowest free slot (a few low slots, reused, stay warm in the CPU's cache)
        if not self.free:
            return -1
        i = _find(self._used, self.slots, 1) >> 24
        self._used[i] = 1
        self.free -= 1
        return i

    def give(self, i):
        if not 0 <= i < self.slots or not self._used[i]:
            raise ValueError("buffer: slot %r is not taken" % (i,))
        self._used[i] = 0
        self.free += 1
        self._event.set()

    def take_span(self, n):
        # up to n adjacent free slots (at least one), for work that wants one long buffer (the
        # snapshot copies a run of chunks with one read and one write): -> (first, count), or
        # (-1, 0) when every slot is in use
        if not self.free:
            return -1, 0
        r = _find(self._used, self.slots, n)
        first, size = r >> 24, r & 0xFFFFFF
        _fill(self._used, first, size, 1)
        self.free -= size
        return first, size

    def give_span(self, first, count):
        if first < 0 or count < 0 or first + count > self.slots \
                or _taken(self._used, first, count) != count:
            raise ValueError("buffer: slots %r+%r are not all taken" % (first, count))
        _fill(self._used, first, count, 0)
        self.free += count
        self._event.set()

    def span(self, first, count, nbytes=-1):
        # the memory of slots first..first+count-1, or its first nbytes
        o = first * self.slot_bytes
        return self._mv[o:o + (count * self.slot_bytes if nbytes < 0 else nbytes)]

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
