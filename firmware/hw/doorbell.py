# A doorbell between the main loop and one of the board's threads (the I/O processor's, the host
# ports' DMA engine's): the main loop wakes the thread from its sleep, the thread rings when
# something the main loop waits for has ended. The ring is a datagram on a socket pair, so the main
# loop's scheduler waits for it as for any socket (`rx`); the pair has an abstract name unique to
# this process, so there is no file to leave behind.
import _thread
import binascii
import os
import socket
import struct


class Doorbell:
    def __init__(self, name):
        self._lock = _thread.allocate_lock()
        self._lock.acquire()
        addr = struct.pack("<H", socket.AF_UNIX) + b"\0raidboard-" + name + b"-" + binascii.hexlify(os.urandom(8))
        self.rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.rx.bind(addr)
        self._tx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._tx.connect(addr)
        self.rx.setblocking(False)
        self._tx.setblocking(False)
        self._one = b"\x01"
        self._sink = bytearray(256)

    # ---- the main loop
    def wake(self):
        """Wakes the thread if it sleeps (else its next sleep returns at once)."""
        if self._lock.locked():
            self._lock.release()

    def answered(self):
        """Takes the rings so far off the socket (how many does not matter)."""
        try:
            while self.rx.readinto(self._sink):
                pass
        except OSError:
            pass

    def close_main(self):
        self.rx.close()

    # ---- the thread (allocates nothing)
    def sleep(self):
        self._lock.acquire()

    def ring(self):
        try:
            self._tx.send(self._one)
        except OSError:
            pass                 # the main loop has rings to read already

    def close_thread(self):
        # by the thread as it ends: the descriptor must not be reused while the thread may ring
        self._tx.close()
