# The management endpoint (lineproto.md "The management endpoint"): a TCP listener beside the
# console that speaks only the line protocol, to several clients at once, so that scripts reach the
# board while a person holds the console (in the menus, or with a shell open on it). Each client
# has its own LineProto — login state, challenge, line buffer — under the console's Access: the
# same password, the same count of wrong passwords and lock-out. At most CLIENTS clients, their
# buffers made at start; one more is told MANAGEMENT_BUSY and disconnected. Input is handled in
# slices of LINES_PER_SLICE requests, as on the console, so no client stalls the others, the
# console or the host ports.
#
#   desc = await mgmt.start(ctl, "tcp:127.0.0.1:0", acc)   # -> "tcp:127.0.0.1:40124"
import sys
import asyncio
from micropython import const

from control.errors import CmdError
from endpoints.console import lineproto
from endpoints.console import uart
from endpoints import listen

CLIENTS = const(4)          # clients served at once; their line buffers take CLIENTS x 260 KiB
IN_SIZE = const(4096)
BUSY = ('- ERR MANAGEMENT_BUSY {"message": "%d management clients are connected, the most the board '
        'serves; try again when one disconnects", "limit": %d}\r\n' % (CLIENTS, CLIENTS)).encode()
FRONT_PANEL = ("lcd", "button", "screen")
REFUSE_MS = const(1000)
REFUSING_MAX = const(8)     # refusals told at once; past them a newcomer is closed at once
_SCRATCH = memoryview(bytearray(64))    # what refused clients send, dropped


def _front_panel(args):
    raise CmdError("CONSOLE_ONLY", "the front panel (lcd, button, screen) is on the console, not here")


class Client:
    """One of the CLIENTS places: a client's line protocol, input buffer and waiting events."""

    def __init__(self, ctl, acc):
        self.proto = lineproto.LineProto(ctl, {k: _front_panel for k in FRONT_PANEL}, acc, "management")
        self.inbuf = bytearray(IN_SIZE)
        self.inmv = memoryview(self.inbuf)
        self.events = lineproto.EventQueue()
        self.wake = asyncio.Event()
        self.port = None            # the client's connection, None while the place is free

    def event(self, ev):
        if self.port is not None:
            self.events.put(ev)
            self.wake.set()

    async def serve(self, port):
        self.proto.reset()
        self.events.clear()
        sender = asyncio.create_task(self._send_events(port))
        try:
            while not self.proto.left:
                n = await port.read(self.inmv)
                i = 0
                while i < n and not self.proto.left:
                    await asyncio.sleep_ms(0)
                    i = await self.proto.feed(port, self.inbuf, i, n, uart.LINES_PER_SLICE)
        except uart.Disconnected:
            pass
        except Exception as e:
            print("management: client ended by a fault:", file=sys.stderr)
            sys.print_exception(e, sys.stderr)
        finally:
            self.port = None
            self.wake.set()
            sender.cancel()
            self.proto.reset()          # forgets its login and challenge
            self.events.clear()
            port.close()

    async def _send_events(self, port):
        # events go out as they come, between two answers (the port's writers take turns)
        try:
            while self.port is port:
                await self.wake.wait()
                self.wake.clear()
                if self.port is port:
                    await self.events.flush(port)
        except uart.Disconnected:
            pass


class Management:
    def __init__(self, ctl, acc):
        self.clients = [Client(ctl, acc) for _ in range(CLIENTS)]
        self.refusing = 0           # refused clients still being told so
        ctl.events.subscribe(self._on_event)

    def _on_event(self, ev):
        for c in self.clients:
            c.event(ev)

    def take(self, s, addr):
        port = uart.TcpPort(s)
        for c in self.clients:
            if c.port is None:
                c.port = port
                asyncio.create_task(c.serve(port))
                return
        if self.refusing >= REFUSING_MAX:
            port.close()            # a flood of connections is not told, so it holds no descriptors
            return
        self.refusing += 1
        asyncio.create_task(self._refuse(port))

    async def _refuse(self, port):
        # BUSY goes out once the client has said something (its #RB1) or after REFUSE_MS: a client
        # library may drop what arrives before it sent anything (pyserial's socket:// does). Then
        # what it sends is read and dropped until it closes, for at most REFUSE_MS: closing on
        # unread input would be a reset, which can destroy our line on its way.
        try:
            try:
                await asyncio.wait_for_ms(port.read(_SCRATCH), REFUSE_MS)
            except asyncio.TimeoutError:
                pass                    # one that says nothing (nc, telnet) is told all the same
            await asyncio.wait_for_ms(port.write(BUSY), REFUSE_MS)
            await asyncio.wait_for_ms(_drain(port), REFUSE_MS)
        except Exception:
            pass
        finally:
            port.close()
            self.refusing -= 1


async def _drain(port):
    while True:
        await port.read(_SCRATCH)       # Disconnected at the client's close


async def start(ctl, spec, acc):
    """Start the management endpoint at "tcp:HOST:PORT" (port 0: any) under the console's Access
    `acc`; returns "tcp:HOST:PORT" with the real port. ValueError for a bad spec, OSError when it
    cannot listen."""
    hp = listen.tcp_spec(spec)
    if hp is None:
        raise ValueError("management must be 'tcp:HOST:PORT', not %r" % (spec,))
    m = Management(ctl, acc)
    s, port = listen.bind(hp[0], hp[1], CLIENTS)
    asyncio.create_task(listen.accept(s, m.take))
    return "tcp:%s:%d" % (hp[0], port)
