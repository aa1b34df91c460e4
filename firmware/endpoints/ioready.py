# Waiting, inside asyncio, for a socket or file descriptor to become readable or writable: what
# the console port, the pty and the iSCSI connections need between non-blocking reads and writes.
# MicroPython's asyncio has no public call for a raw object (its streams buffer and allocate on
# every call); its I/O queue is what those streams use underneath, and this module is the one place
# that reaches it (tests/test_layers_firmware.py allows it here and nowhere else).
import asyncio

_queue = asyncio.core._io_queue      # no public name for it: see above


def readable(obj):
    yield _queue.queue_read(obj)


def writable(obj):
    yield _queue.queue_write(obj)
