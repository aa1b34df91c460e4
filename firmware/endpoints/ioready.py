# Waiting, inside asyncio, for a socket or file descriptor to become readable or writable: what
# the console port, the pty, the link and the iSCSI connections need between non-blocking reads
# and writes. MicroPython's asyncio has no public call for a raw object (its streams buffer and
# allocate on every call); its I/O queue is what those streams use underneath, and this module is
# the one place that reaches it (tests/test_layers_firmware.py allows it here and nowhere else).
#
# A wait allocates as little as MicroPython allows, because a host's every command waits once:
#
#     waits.readable()      # queue the running task until the object is readable ...
#     yield                 # ... and hand it to the scheduler
#
# A bare `yield` inside a coroutine is what asyncio's own awaitables end in; MicroPython allows it
# in an `async def` and it costs nothing, where an awaitable costs a generator or a StopIteration's
# traceback (64-190 bytes a wait, measured). `Waits` is made once per object and brings its own
# entry for the I/O queue's map, which asyncio would make anew each time.
#
# The poller makes a record (32 bytes) each time an object is registered, and asyncio drops the
# registration after every wait. A `Waits(obj, keep=True)` (an iSCSI connection's socket) stays
# registered between its waits with an empty event mask instead, so its waits cost nothing at
# all. Its owner calls drop() before the object is closed: the descriptor of a closed socket may
# be given at once to the next connection accepted, and a registration left behind would then
# poll the new connection's descriptor for the old object until it hangs up. An event nobody
# waits for (a peer that reset, poll(2) reports POLLHUP and POLLERR whatever the mask; a closed
# descriptor, POLLNVAL) takes the registration off altogether, so the scheduler never spins on
# it; the next wait registers it again.
import asyncio
import select
import time
from micropython import const

_core = asyncio.core
_queue = asyncio.core._io_queue      # no public name for it: see above
_MASKS = (select.POLLIN, select.POLLOUT)   # by index of asyncio's map entry [reader, writer, obj]
_BOTH = const(5)         # select.POLLIN | select.POLLOUT
_kept = {}               # id(obj) -> its Waits, for the objects that stay registered
POLL_US = const(200)     # how long the scheduler polls after an endpoint's wait before it sleeps
_armed = bytearray(1)    # 1: an endpoint began to wait since the last window of polling opened


class Waits:
    """Queues the running task on one object: one task at a time each way, as asyncio allows.
    Cancelling a waiting task takes the object's waiters off asyncio's queue, a task waiting
    the other way with it (asyncio's IOQueue.remove): the link cancels its reader and writer
    together, and no other object has two."""

    def __init__(self, obj, keep=False):
        self.obj = obj
        self.entry = [None, None, obj]
        self.keep = keep
        self.armed = False       # (kept) a task waits on the object: its mask is not empty

    def readable(self):
        self._queue(0)

    def writable(self):
        self._queue(1)

    def _queue(self, i):
        _armed[0] = 1
        q, obj, t = _queue, self.obj, _core.cur_task
        sm = q.map.get(id(obj))
        if sm is None:
            sm = self.entry
            sm[0] = sm[1] = None             # what a cancelled waiter may have left here
            sm[i] = t
            q.map[id(obj)] = sm
            q.poller.register(obj, _MASKS[i])
            if self.keep:
                _kept[id(obj)] = self
        else:                                # kept, or a task waits the other way
            if sm[i] is not None:
                raise RuntimeError("two tasks wait on one object the same way")
            sm[i] = t
            q.poller.modify(obj, _MASKS[i] if sm[1 - i] is None else _BOTH)
        self.armed = True
        t.data = q                          # so cancelling the task takes it off the queue

    def drop(self):
        """Before the object is closed: its registration, kept or not, is taken off."""
        obj = self.obj
        _kept.pop(id(obj), None)
        sm = self.entry
        if _queue.map.get(id(obj)) is sm:
            del _queue.map[id(obj)]
            _queue.poller.unregister(obj)
        sm[0] = sm[1] = None                 # (no task kept alive by it)
        self.armed = False


def _dequeue(s, drop=type(_queue)._dequeue):   # (asyncio's own, for the others)
    # asyncio's, after the last waiter of s was woken or cancelled: a kept object stays
    # registered with an empty mask, unless this came with nobody waiting (an error or hang-up)
    w = _kept.get(id(s))
    if w is None:
        drop(_queue, s)
    elif w.armed:
        w.armed = False
        sm = w.entry
        sm[0] = sm[1] = None
        _queue.poller.modify(s, 0)
    else:
        del _kept[id(s)]
        drop(_queue, s)


_queue._dequeue = _dequeue   # asyncio calls it after a wait and on a cancel


# The awaitable form, for waits off the command path (the console's keystrokes) and for coroutines
# that return a value: a bare yield would make them async generators to CPython's compiler, which
# the project's tools read the firmware with. Each wait allocates a generator and an entry.
def readable(obj):
    _armed[0] = 1
    yield _queue.queue_read(obj)


def writable(obj):
    _armed[0] = 1
    yield _queue.queue_write(obj)


# Polling before sleeping. Between a host's commands the firmware sleeps in poll(2) when no task
# is ready, and a host at queue depth 1 has nothing in flight while the board answers, so each of
# its commands began with the kernel waking an idle CPU: on a virtual machine, milliseconds at
# times (firmware/README.md "Polling"). So once an endpoint has begun to wait, the scheduler polls
# without sleeping for a window of POLL_US before it sleeps, as a board's processor would poll its
# host ports. A board with only timers to wait for (the reaper, the long operations' scheduler)
# opens no window.
def poll_before_sleep(us=POLL_US, ticks_us=time.ticks_us):
    """Installs the polling in front of asyncio's sleep in poll(2) (call before asyncio.run). The
    microsecond clock is a parameter so that a test can drive it."""
    global _wait, _us, _ticks_us, _peek
    w = _queue.wait_io_event
    if w is not _wait_io_event:
        _wait = w
    _us = us
    _ticks_us = ticks_us
    _peek = asyncio.core._task_queue.peek     # no public name: see above
    _window[0] = 0
    _queue.wait_io_event = _wait_io_event


# (module globals rather than a closure's cells: a call of a closure over this many values puts
# its arguments and its frame on the heap, and the scheduler calls this between every two tasks)
_wait = None
_us = POLL_US
_ticks_us = time.ticks_us
_ticks_ms = time.ticks_ms
_diff = time.ticks_diff
_peek = None
_window = [0, 0]         # open, and since when: a timer's task may run in the middle of it


def _wait_io_event(dt):
    if dt:
        if _armed[0]:
            _armed[0] = 0
            _window[0] = 1
            _window[1] = _ticks_us()
        if _window[0]:
            t0 = _window[1]
            while _diff(_ticks_us(), t0) < _us:
                _wait(0)
                t = _peek()
                if t is not None and _diff(t.ph_key, _ticks_ms()) <= 0:
                    return          # a task is ready: it runs without the scheduler sleeping
            _window[0] = 0
            if dt > 0:
                return              # asyncio works out the time to its next timer afresh
    _wait(dt)
