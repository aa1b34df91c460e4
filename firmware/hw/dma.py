# The host ports' DMA engine: sends an answer's prepared bytes to its host beside the CPU. On the
# board the host interface chip moves the data of an answer by itself once the firmware has set up
# the transfer; here a thread of its own makes the socket writes, so the main loop reads and runs
# the next commands meanwhile (on loopback the write of a 64 KiB Data-In costs the main loop about
# as much as the rest of the command). endpoints/iscsi/README.md "Sends beside the main loop" has
# the rules for the connections that use it.
#
# A connection holds one channel while it lives, with at most one send in flight on it. The
# thread writes what each socket takes; a socket that takes nothing more (its peer is behind)
# keeps its send and is tried again less and less often (its passes skipped, the thread's naps
# doubled up to 1 ms) while the other channels go on: a slow host delays only its own connection
# and costs the thread little. The end of a send the main loop stopped waiting for is told
# through a datagram (rx). Like the I/O processor's thread (hw/chains.py) it runs under heap_lock
# and allocates nothing; it stores only small integers, and the main loop keeps the socket and
# buffer of a send referenced until the send has ended.
import _thread
import micropython
import time
from array import array
from micropython import const
from hw.doorbell import Doorbell

CHANNELS = const(64)     # connections that can use the engine at once (more send on the main loop)
NAP_US = const(50)       # the thread's first nap when no socket took anything in a pass
NAP_MAX_US = const(1000) # naps double up to this while peers stay behind (a new send ends one)
SKIP_MAX = const(15)     # a socket that took nothing is skipped for up to this many passes after

IDLE = const(0)          # a channel's state: no send
BUSY = const(1)          # a send the thread has: from `send` until it is written whole
FAILED = const(2)        # the socket failed under a send (the peer is gone)


class DMA:
    def __init__(self):
        self.st = bytearray(CHANNELS)
        self.cancel = bytearray(CHANNELS)
        # 1: the end of the send is to be told (its peer was behind, or the main loop stopped
        # waiting for it); set by either side, read by the thread before it ends the send
        self.tell = bytearray(CHANNELS)
        self.skip = bytearray(CHANNELS)    # passes to skip this socket, and how many the last time
        self.back = bytearray(CHANNELS)
        self.socks = [None] * CHANNELS
        self.bufs = [None] * CHANNELS
        self.pos = array("l", bytes(8 * CHANNELS))
        self.end = array("l", bytes(8 * CHANNELS))
        self.free = list(range(CHANNELS - 1, -1, -1))
        self.top = 0                       # channels ever handed out: the thread looks at these
        self.given = 0                     # sends handed over; the thread has ended `ended` of them
        self.ended = 0
        self.sends = 0                     # sends the thread made whole, and their bytes
        self.bytes = 0
        self.stopping = False
        # the end of a send that is to be told, or a failure, is rung (rx)
        self.bell = Doorbell(b"dma")
        self.rx = self.bell.rx
        self._fence = _thread.allocate_lock()
        _thread.start_new_thread(self._run, ())

    # ---- the main loop ---------------------------------------------------------------------------
    def open(self):
        """A channel for a connection, or -1: every channel is held (it sends on the main loop)."""
        if not self.free:
            return -1
        j = self.free.pop()
        if j >= self.top:
            self.top = j + 1
        return j

    def close(self, j):
        """Takes channel j back: a send still on it is given up. True once the thread has let go of
        its socket (it may then be closed); False if the thread never did (gone: the channel and
        the socket stay as they are, for good)."""
        if self.st[j] == BUSY:
            self.cancel[j] = 1
            self.bell.wake()
            n = 0
            while self.st[j] == BUSY:
                time.sleep_us(20)
                n += 1
                if n == 100000:        # (seconds: the thread is not coming)
                    return False
        self.cancel[j] = 0
        self.st[j] = IDLE
        self.socks[j] = self.bufs[j] = None
        self.free.append(j)
        return True

    def send(self, j, sock, buf, off, n):
        """Hands the thread buf[off:off + n] to write on sock."""
        if self.st[j] != IDLE:
            raise RuntimeError("DMA: channel %d is not idle" % j)   # (a send would cut into another)
        self.socks[j] = sock
        self.bufs[j] = buf
        self.pos[j] = off
        self.end[j] = off + n
        self.tell[j] = self.skip[j] = self.back[j] = 0
        self.given += 1
        self.st[j] = BUSY                  # (last: the thread takes the send from here)
        self.bell.wake()

    def wait(self, j, us):
        """Whether channel j's send has ended, waiting up to `us` microseconds for it unless its
        end is already to be told (its peer is behind). When it has not, its end is told (rx)."""
        st = self.st
        if st[j] == BUSY and not self.tell[j]:
            # a spin, not a nap: a nap of the unix port lasts 50 us or more, the usual wait less
            t0 = time.ticks_us()
            while st[j] == BUSY and time.ticks_diff(time.ticks_us(), t0) < us:
                pass
        if st[j] != BUSY:
            return True
        self.tell[j] = 1
        # the thread may have ended it meanwhile without seeing that: looked at again, past a
        # fence (a lock's acquire and release order the stores before the loads, on both sides)
        self._fence.acquire()
        self._fence.release()
        return st[j] != BUSY

    def woken(self):
        # the rings of the sends whose ends were to be told
        self.bell.answered()

    def stop(self):
        self.stopping = True
        self.bell.wake()
        self.bell.close_main()

    # ---- the thread --------------------------------------------------------------------------
    def _run(self):
        micropython.heap_lock()
        st = self.st                # locals: no lookup per send (one by one: a tuple would allocate)
        cancel = self.cancel
        tell = self.tell
        skip = self.skip
        back = self.back
        socks = self.socks
        bufs = self.bufs
        pos = self.pos
        end = self.end
        fence = self._fence
        nap = NAP_US
        while not self.stopping:
            if self.ended == self.given:
                self.bell.sleep()
                nap = NAP_US
                continue
            moved = False
            j = 0
            while j < self.top:
                if st[j] == BUSY:
                    if cancel[j]:
                        self.ended += 1
                        st[j] = IDLE
                    elif skip[j]:
                        skip[j] -= 1
                    else:
                        p = pos[j]
                        e = end[j]
                        try:
                            w = socks[j].write(bufs[j], p, e - p)
                        except Exception:   # (OSError: the peer is gone)
                            w = -1
                        if w is None:       # (EAGAIN: its send buffer is full)
                            w = 0
                        if w < 0:
                            self.ended += 1
                            st[j] = FAILED
                            self.bell.ring()
                        elif w == e - p:
                            moved = True
                            self.bytes += w
                            self.sends += 1
                            told = tell[j]
                            self.ended += 1
                            st[j] = IDLE
                            fence.acquire()     # (wait(): its tell, stored before it looks)
                            fence.release()
                            if told or tell[j]:   # (a ring for the next send is harmless)
                                self.bell.ring()
                        else:               # its peer is behind: tried again less often
                            tell[j] = 1
                            if w:
                                moved = True
                                pos[j] = p + w
                                self.bytes += w
                                back[j] = 0
                            else:
                                b = back[j] * 2 + 1
                                back[j] = b if b < SKIP_MAX else SKIP_MAX
                                skip[j] = back[j]
                j += 1
            if moved:
                nap = NAP_US
            elif self.ended != self.given:
                # in slices: a new send (another connection's) ends the nap
                g = self.given
                t = nap
                while t > 0 and self.given == g and not self.stopping:
                    time.sleep_us(NAP_US)
                    t -= NAP_US
                nap = nap * 2 if nap * 2 < NAP_MAX_US else NAP_MAX_US
        self.bell.close_thread()
