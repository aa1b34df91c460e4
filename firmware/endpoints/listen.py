# Listening TCP sockets, the loop that accepts on them and the peers' addresses: the one home of
# this for the console port and the iSCSI portals.
import asyncio
import errno
import os
import socket
from endpoints import ioready

EAGAIN = (errno.EAGAIN, getattr(errno, "EWOULDBLOCK", errno.EAGAIN))



def tcp_spec(spec):
    """(host, port) of an endpoint written "tcp:HOST:PORT" (port 0: any), or None."""
    p = spec.split(":") if isinstance(spec, str) else ()
    if len(p) != 3 or p[0] != "tcp" or not p[1] or not p[2].isdigit() or int(p[2]) > 65535:
        return None
    return p[1], int(p[2])


def bind(host, port, backlog):
    """A non-blocking socket listening on host:port, and the TCP port it got (port 0: any)."""
    ai = socket.getaddrinfo(host, port)[0]
    s = socket.socket(ai[0], socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(ai[-1])
        s.listen(backlog)
        s.setblocking(False)
        return s, bound_port(s) if port == 0 else port
    except OSError:
        s.close()
        raise


def bound_port(sock):
    # the unix port has no getsockname(): find our socket's inode in /proc/net/tcp
    ino = str(os.stat("/proc/self/fd/%d" % sock.fileno())[1])
    for fn in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(fn) as f:
                for line in f:
                    p = line.split()
                    if len(p) > 9 and p[9] == ino:
                        return int(p[1].rsplit(":", 1)[1], 16)
        except OSError:
            pass
    raise OSError("cannot find bound port")


async def accept(ls, take):
    """Hands each connection made to listening socket ls to take(sock, addr), non-blocking."""
    waits = ioready.Waits(ls)
    while True:
        waits.readable()
        yield                   # to the scheduler until then (endpoints/ioready.py)
        try:
            s, addr = ls.accept()
        except OSError as e:
            if e.errno not in EAGAIN:   # out of descriptors or the like: do not spin on it
                await asyncio.sleep_ms(100)
            continue
        s.setblocking(False)
        take(s, addr)


def peer(addr):
    # the source address of a peer, without what its sender may vary (port, IPv6 flow label):
    # family + IPv4 address, or family + IPv6 address, from the unix port's sockaddr bytes
    if isinstance(addr, tuple):
        return addr[0]
    if addr[0] == 10:   # AF_INET6
        return bytes(addr[0:2]) + bytes(addr[8:24])
    return bytes(addr[0:2]) + bytes(addr[4:8])


def show(peer):
    """A peer's address for the event log."""
    if isinstance(peer, bytes) and len(peer) >= 6 and peer[0] == 2:   # AF_INET
        return "%d.%d.%d.%d" % tuple(peer[2:6])
    return repr(peer)
