# Where the heap's allocator starts looking (firmware/README.md "The allocator's starting point").
# MicroPython puts the frame of a call with more than 11 locals and stack slots on the heap, 20-25
# of them for one 4 KiB read, and looks for each from its lowest free block onwards. That start
# moves up only when a single block is allocated; a freed frame or buffer, and every garbage
# collection, put it back down. When the commands allocate nothing that outlives them, nothing
# fills the small holes low in the heap, and every frame's search walks past them, and past the
# live objects between them, to the first run of free blocks it fits in: 36 % of the CPU at 4 KiB
# reads at queue depth 1, measured. `Plug.run` fills those holes with one-block objects nobody
# keeps (the next collection frees them), so the search starts where the free space begins.
from micropython import const

BLOCK = const(32)        # bytes of a heap block on the pinned 64-bit build; a float takes exactly
                         # one (tests/firmware/test_heap.py proves both on it)
RUN = const(8)           # free blocks in a row that end a run: the holes commands leave are smaller
MANY = const(64)         # more blocks than this in a run: a collection's holes, of every size ...
WIDE = const(512)        # ... so the run goes on to this many in a row (16 KiB)
STEP = const(2000)       # blocks allocated at most in one run: the rest next time


class Plug:
    """Fills the heap's holes from its lowest free block up to the first run of more than RUN
    free blocks in a row, or more than WIDE once it met MANY. `holes`: blocks filled in all
    beyond the runs themselves; `runs`: times it ran; `wide`: a wide run is not finished yet."""

    def __init__(self):
        self.holes = 0
        self.runs = 0
        self.wide = False

    def run(self, step=STEP):
        """Returns the blocks it allocated: the run it ended in and the holes below it, at most
        `step` (the rest is filled next time)."""
        want = WIDE if self.wide else RUN
        n = 0
        k = 0
        last = 0
        while k < want and n < step:
            a = id(n * 0.5)              # (a float: one new block, the lowest free one)
            k = k + 1 if a == last + BLOCK else 0
            last = a
            n += 1
            if n == MANY:
                want = WIDE
        self.runs += 1
        self.wide = k < want
        if n > k + 1:
            self.holes += n - k - 1
        return n
