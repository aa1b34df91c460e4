# The board's serial console (UART endpoint): a TCP listener or the pty master on fd 0/1.
# One client at a time drives it; it starts in VT-100 mode (menus + LCD, menu.py/vt100.py/lcd.py)
# and switches to the line protocol (lineproto.py) when the client sends "#RB1" at the start of a
# line. A second TCP client gets one "console in use" line and is disconnected.
#
#   desc = await console.start(ctl, "tcp:127.0.0.1:0")   # -> "tcp:127.0.0.1:40123"
#   desc = await console.start(ctl, "stdio")             # -> "stdio" (fd 0/1, blocking)
#   desc = await console.start(ctl, "pty")               # -> "pty" (fd 0/1: a non-blocking pty master)
import sys
import time
import select
import termios
import asyncio
import micropython
from micropython import const

from control.errors import CmdError
from endpoints.console import access
from endpoints.console import menu
from endpoints.console import lcd
from endpoints.console import vt100
from endpoints.console import lineproto
from endpoints import listen
from endpoints import ioready

IN_SIZE = const(4096)
ESC_WAIT_MS = const(80)     # a lone Esc is a key when nothing follows it this soon
FIRST_DRAW_MS = const(150)  # a program that sends "#RB1" at once never sees the menus
MENU_IDLE_MS = const(300000)   # menus fall back to (locked) monitor mode after 5 min without a key
IN_USE_GRACE_MS = const(500)   # how long a new client waits for the previous one to be gone
SB_MAX = const(64)          # longest telnet subnegotiation we wait out
PTY_CHUNK = const(512)      # bytes per write once the pty says it has room
LINE_POLL_MS = const(250)   # how often the pty's line settings are looked at (draw on connect)
PROBE_SLICES = const(16)    # slices without output after which a probe byte goes out: a client
                            # that closed answers it with a reset, which ends the session
PROBE_KEYS = b"\x00"        # VT-100 mode: NUL, which terminals ignore
PROBE_LINES = b"\n"         # line mode: an empty line, which clients skip
KEYS_PER_SLICE = const(8)   # console work runs in slices that yield to the host ports: a menu key
LINES_PER_SLICE = const(4)  # may fetch the whole status, a request run any command
IN_USE = b'- ERR CONSOLE_IN_USE {"message": "console in use by another client; try again when it disconnects"}\r\n'
_MAGIC = b"#RB1"


@micropython.viper
def _find_iac(buf: ptr8, n: int) -> int:
    # index of the first telnet IAC (255) in buf[:n], or -1: most reads have none
    i = 0
    while i < n:
        if buf[i] == 255:
            return i
        i += 1
    return -1


class Disconnected(Exception):
    pass


def log(*a):
    print("console:", *a, file=sys.stderr)


# ---- ports: where the bytes go ---------------------------------------------------------------

class Port:
    # Several tasks write to a port (the session's reader answers requests and telnet options, the
    # ticker sends events and redraws). asyncio's I/O queue keeps one writer per stream: a second
    # task waiting to write replaces the first, which is then never woken — its session could never
    # end and the console stayed in use. So writers take turns here; _send does the writing.
    def __init__(self):
        self.wl = asyncio.Lock()
        self.writes = 0

    async def write(self, b):
        await self.wl.acquire()
        self.writes += 1
        try:
            await self._send(b)
        finally:
            self.wl.release()

    def probe(self, b):
        # TCP: see _input. A pty says at once when its terminal program closed (gone()).
        pass

    def settings(self):
        # the line settings a terminal program makes when it opens the line (pty only)
        return None


class TcpPort(Port):
    # a client socket; telnet IAC negotiation is removed from the input and answered (we will
    # echo and suppress go-ahead when asked, refuse the rest) so telnet can run in character mode
    def __init__(self, s):
        Port.__init__(self)
        self.s = s
        self.iac = 0            # 0 data, 1 after IAC, 2 after IAC WILL/WONT/DO/DONT, 3 in SB, 4 SB+IAC
        self.verb = 0
        self.sb = 0             # bytes in the current subnegotiation
        self.agreed = bytearray(3)   # agreed: WILL ECHO, WILL SGA, DO SGA
        self.reply = bytearray(3)
        self.hup = select.poll()
        self.hup.register(s, 0)     # poll reports errors and hang-ups whatever the mask

    def gone(self):
        # the connection was reset (the client closed, and answered our output with a reset)
        return bool(self.hup.poll(0))

    def probe(self, b):
        # b (one byte the client ignores) if it can go at once and between two writes: a client
        # whose window is full has not closed (it would have sent a reset), so it is not waited for
        if self.wl.locked():
            return
        try:
            self.s.write(b)
        except OSError:
            pass        # EAGAIN: the window is full; a reset shows in gone()

    async def read(self, mv):
        while True:
            await ioready.readable(self.s)
            try:
                n = self.s.readinto(mv)
            except OSError:
                raise Disconnected()
            if n is None:
                continue
            if n == 0:
                raise Disconnected()
            n = await self._strip(mv, n)
            if n:
                return n

    async def _strip(self, mv, n):
        if self.iac == 0 and _find_iac(mv, n) < 0:
            return n
        w = 0
        for i in range(n):
            b = mv[i]
            st = self.iac
            if st == 0:
                if b == 255:
                    self.iac = 1
                else:
                    mv[w] = b
                    w += 1
            elif st == 1:
                if b == 255:
                    mv[w] = 255
                    w += 1
                    self.iac = 0
                elif 251 <= b <= 254:
                    self.verb = b
                    self.iac = 2
                elif b == 250:
                    self.iac = 3
                    self.sb = 0
                else:
                    self.iac = 0
            elif st == 2:
                self.iac = 0
                await self._negotiate(self.verb, b)
            elif st == 3:
                self.sb += 1
                if b == 255:
                    self.iac = 4
                elif self.sb > SB_MAX:
                    self.iac = 0    # not telnet after all: stop swallowing input
            else:
                self.iac = 0 if b == 240 else 3
        return w

    async def _negotiate(self, verb, opt):
        # agree once to WILL ECHO / WILL SGA / DO SGA (character mode), refuse every other option;
        # an option already agreed is not answered again, so negotiation cannot loop
        r = self.reply
        r[0] = 255
        r[2] = opt
        a = self.agreed
        if verb == 253:             # DO opt
            k = 0 if opt == 1 else (1 if opt == 3 else -1)
            if k >= 0 and a[k]:
                return
            if k >= 0:
                a[k] = 1
            r[1] = 251 if k >= 0 else 252       # WILL / WONT
        elif verb == 251:           # WILL opt
            if opt == 3:
                if a[2]:
                    return
                a[2] = 1
            r[1] = 253 if opt == 3 else 254     # DO / DONT
        else:                       # WONT / DONT: nothing to answer
            return
        await self.write(r)

    async def _send(self, b):
        mv = memoryview(b)
        i, n = 0, len(mv)
        while i < n:
            await ioready.writable(self.s)
            try:
                k = self.s.write(mv[i:])
            except OSError:
                raise Disconnected()
            if k:
                i += k

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


class PtyPort(Port):
    # fd 0/1 are the master side of a pty. The host's `raidboard boot --console pty` hands them
    # over non-blocking (spec "pty"): a read then takes whatever is waiting, up to the buffer,
    # and a write what fits. On blocking descriptors (spec "stdio", e.g. a terminal started by
    # hand) MicroPython's reads wait for the whole count, so reads take one byte at a time while
    # poll says more is waiting.
    def __init__(self, nonblocking=False):
        Port.__init__(self)
        self.nb = nonblocking
        self.i = sys.stdin.buffer
        self.o = sys.stdout.buffer
        self.pin = select.poll()
        self.pin.register(self.i, select.POLLIN)
        self.pout = select.poll()
        self.pout.register(self.o, select.POLLOUT)
        self.one = bytearray(1)
        self.up = False
        try:
            termios.setraw(0)   # on a pty master this sets the slave: no echo of our output
        except Exception as e:
            log("stdio is not a tty (%r); using it as is" % (e,))

    def settings(self):
        # termios of a pty master are its slave's: a terminal program opening /dev/pts/N sets
        # them (picocom: speed, CLOCAL), and flushes the line as it does, so a change is the
        # sign it came and that what was drawn before it is gone
        try:
            return termios.tcgetattr(0)[:6]
        except OSError:
            return None     # not a terminal: nothing to watch

    def mark(self):
        # a speed no terminal program asks for (a pty has none): the next program's settings
        # then always differ, even when it asks for what the last one had
        try:
            a = termios.tcgetattr(0)
            a[4] = a[5] = termios.B1152000
            termios.tcsetattr(0, termios.TCSANOW, a)
        except OSError:
            pass

    def gone(self):
        # the terminal program closed the slave
        for _, ev in self.pin.poll(0):
            if ev & (select.POLLHUP | select.POLLERR):
                return True
        return False

    async def read(self, mv):
        while True:
            await ioready.readable(self.i)
            n = 0
            try:
                if self.nb:
                    n = self.i.readinto(mv) or 0      # None: nothing waiting after all
                else:
                    n = self._read_bytes(mv)
            except OSError:
                n = -1      # EIO: nobody has the slave side open
            if n > 0:
                self.up = True
                return n
            if self.up:
                self.up = False
                raise Disconnected()
            await asyncio.sleep_ms(250)

    def _read_bytes(self, mv):
        n = 0
        while n < len(mv):
            ev = self.pin.poll(0)
            if not ev or not (ev[0][1] & select.POLLIN):
                break
            if self.i.readinto(self.one) != 1:
                break
            mv[n] = self.one[0]
            n += 1
        return n

    async def _send(self, b):
        mv = memoryview(b)
        i, n = 0, len(mv)
        while i < n:
            await ioready.writable(self.o)
            for _, ev in self.pout.poll(0):
                if ev & (select.POLLHUP | select.POLLERR):
                    raise Disconnected()
            try:
                k = self.o.write(mv[i:i + min(PTY_CHUNK, n - i)])
            except OSError:
                raise Disconnected()
            if k:
                i += k          # (None: a non-blocking pty had no room after all)

    def close(self):
        pass


# ---- the console ----------------------------------------------------------------------------

class Console:
    def __init__(self, ctl, acc=None):
        self.ctl = ctl
        self.access = acc or access.Access(ctl)     # shared with the management endpoint (mgmt.py)
        self.model = menu.Model(ctl, self.access)
        self.screen = vt100.Screen()
        self.keys = vt100.KeyDecoder(self._key)
        self.proto = lineproto.LineProto(ctl, {"lcd": self._lcd, "button": self._button,
                                               "screen": self._screen}, self.access)
        self.inbuf = bytearray(IN_SIZE)
        self.inmv = memoryview(self.inbuf)
        self.events = lineproto.EventQueue()
        self.wake = asyncio.Event()
        self.lock = asyncio.Lock()
        self.busy = False
        self.alive = False
        self.line = False           # line protocol mode
        ctl.events.subscribe(self._on_event)

    # -- events: called by the controller, synchronously, from whatever task logged them --
    def _on_event(self, ev):
        if not self.alive:
            return
        if self.line:
            self.events.put(ev)
        self.wake.set()

    # -- commands the console answers itself in line mode (lineproto.py answers bye and access) --
    def _lcd(self, args):
        l1, l2 = lcd.render(self.model)
        return {"lines": [l1, l2], "mode": self.model.mode}

    def _button(self, args):
        k = lcd.BUTTONS.get(args.get("key"))
        if k is None:
            raise CmdError("BAD_ARGUMENT", "key must be one of up, down, enter, esc")
        self.model.key(k)
        return self._lcd(args)

    def _screen(self, args):
        lines, attrs, cur = vt100.compose(self.model)
        return {"lines": lines}

    # -- a session: one client from connect to disconnect --
    async def session(self, port):
        self.model.reset()
        self.screen.invalidate()
        self.proto.reset()          # also forgets a challenge an earlier session asked for
        self.keys.state = 0
        self.line = False
        self.bol = True
        self.magic = 0
        self.events.clear()
        self.alive = True
        self.last_key = time.ticks_ms()
        self.wake.clear()       # set by the previous session's end: the first draw must wait
        ticker = asyncio.create_task(self._ticker(port))
        try:
            while True:
                n = await port.read(self.inmv)
                await self.lock.acquire()
                try:
                    await self._input(port, n)
                except Disconnected:
                    raise
                except Exception as e:
                    # a fault while handling this input (a bug, MemoryError): say so, carry on
                    log("input fault, session continues:")
                    sys.print_exception(e, sys.stderr)
                    self.proto.reset()
                    self.screen.invalidate()
                finally:
                    self.lock.release()
        except Disconnected:
            pass
        except Exception as e:
            log("session ended by a fault:")
            sys.print_exception(e, sys.stderr)
        finally:
            self.alive = False
            self.line = False
            self.proto.reset()
            self.wake.set()
            try:
                ticker.cancel()
            except Exception:
                pass

    async def _input(self, port, n):
        # in slices of KEYS_PER_SLICE keystrokes or LINES_PER_SLICE requests, yielding between
        # them: a flood on the console may slow the console, never the host ports. A client that
        # closed is not served the rest of what it sent: TCP tells of its close only after all
        # its data, or when we write to it, so a long run of input that writes nothing is probed.
        i = 0
        quiet = 0
        w = port.writes
        while i < n:
            await asyncio.sleep_ms(0)
            if port.gone():
                raise Disconnected()
            quiet = 0 if port.writes != w else quiet + 1
            if quiet == PROBE_SLICES:
                port.probe(PROBE_LINES if self.line else PROBE_KEYS)
                quiet = 0
            w = port.writes
            if self.line:
                i = await self.proto.feed(port, self.inbuf, i, n, LINES_PER_SLICE)
                if self.proto.left:
                    self.proto.reset()
                    self.line = False
                    self.bol = True
                    self.model.reset()
                    self.screen.invalidate()
            else:
                i = self._keys_in(i, min(n, i + KEYS_PER_SLICE))
                if self.line:
                    self.events.clear()
                    await port.write(self.proto.greeting().encode())
        if not self.line:
            await self._draw(port)
        if self.keys.state == 1:
            self.wake.set()     # the ticker decides whether this Esc stands alone

    def _keys_in(self, i, n):
        # VT-100 mode: each byte is a keystroke byte, and "#RB1" + newline at the start of a
        # line switches to line mode; returns where line-mode input starts, or n
        buf = self.inbuf
        while i < n:
            b = buf[i]
            i += 1
            m = self.magic
            if m == 4 and (b == 10 or b == 13):
                self.magic = 0
                self.line = True
                self.proto.reset()
                if b == 13 and i < n and buf[i] == 10:
                    i += 1
                return i
            if m < 4 and b == _MAGIC[m] and (m > 0 or self.bol):
                self.magic = m + 1
            else:
                self.magic = 0
            self.keys.feed(b)   # _key() tells whether a line may start here
        return n

    def _key(self, k, b):
        # "#RB1" counts at the start of a line: after connecting or after any key but a character
        self.bol = k != vt100.CHAR
        self.last_key = time.ticks_ms()
        m = self.model
        if k == vt100.CHAR:
            m.char(chr(b))
        elif k == vt100.BACKSPACE:
            m.backspace()
        elif k == vt100.REDRAW:
            self.screen.invalidate()
        else:
            m.key(k)

    async def _draw(self, port):
        lines, attrs, cur = vt100.compose(self.model)
        out = self.screen.frame(lines, attrs, cur)
        if len(out):
            await port.write(out)

    async def _ticker(self, port):
        # redraws live screens, sends events in line mode, times out a lone Esc
        first = True
        while self.alive:
            if first:
                ms = FIRST_DRAW_MS
            elif not self.line and self.keys.state == 1:
                ms = ESC_WAIT_MS
            elif self.line:
                ms = 10000
            else:
                ms = self.model.refresh_interval_ms() or 10000
            timed_out = False
            try:
                await asyncio.wait_for_ms(self.wake.wait(), ms)
            except asyncio.TimeoutError:
                timed_out = True
            self.wake.clear()
            if not self.alive:
                return
            await self.lock.acquire()
            try:
                if self.line:
                    await self.events.flush(port)
                elif timed_out and self.keys.state == 1:
                    self.keys.flush()
                    await self._draw(port)
                else:
                    if self.model.mode == "menu" and time.ticks_diff(time.ticks_ms(), self.last_key) > MENU_IDLE_MS:
                        self.model.reset()  # a pty outlives its users: do not leave the menus unlocked
                    self.model.refresh()
                    await self._draw(port)
            except Disconnected:
                self.screen.invalidate()    # the reader ends the session; a pty may come back
            except Exception as e:
                log("ticker fault:")
                sys.print_exception(e, sys.stderr)
            finally:
                self.lock.release()
            if not timed_out and not self.line:
                await asyncio.sleep_ms(50)  # a burst of events costs one redraw
            first = False

    # -- draw on connect (pty): the firmware holds the slave open, so no hang-up tells it that a
    # terminal program came; the line settings that program makes do --
    async def _watch_line(self, port):
        port.mark()
        last = port.settings()
        while True:
            await asyncio.sleep_ms(LINE_POLL_MS)
            now = port.settings()
            if now == last:
                continue
            while True:     # settled: picocom sets the line, flushes it, sets it again
                await asyncio.sleep_ms(LINE_POLL_MS)
                last = port.settings()
                if last == now:
                    break
                now = last
            port.mark()
            last = port.settings()
            await self.lock.acquire()
            try:
                self.arrived()
            finally:
                self.lock.release()

    def arrived(self):
        # a terminal program opened the console: it sees the monitor at once, drawn in full and
        # locked, as a new TCP client does. A program already in line mode (the CLI sends #RB1
        # at once) is left alone.
        if self.alive and not self.line:
            self.model.reset()
            self.screen.invalidate()
            self.wake.set()

    # -- endpoints --
    def serve_tcp(self, ls):
        return listen.accept(ls, lambda s, addr: asyncio.create_task(self._tcp_client(TcpPort(s))))

    async def _tcp_client(self, port):
        # a client that closed a moment ago may not be noticed yet (its EOF is still queued):
        # give it IN_USE_GRACE_MS to go before telling the newcomer the console is in use
        waited = 0
        while self.busy and waited < IN_USE_GRACE_MS:
            await asyncio.sleep_ms(20)
            waited += 20
        if self.busy:
            try:
                await asyncio.wait_for_ms(port.write(IN_USE), 1000)
            except Exception:
                pass
            port.close()
            return
        self.busy = True
        try:
            await self.session(port)
        finally:
            port.close()
            self.busy = False

    async def serve_pty(self, port):
        # the pty never goes away: a closed terminal program is a disconnect, the next one a new session
        asyncio.create_task(self._watch_line(port))
        while True:
            self.busy = True
            await self.session(port)
            await asyncio.sleep_ms(100)




async def start(ctl, spec, acc=None):
    """Start the console endpoint; returns its description ("tcp:HOST:PORT" with the real port,
    "stdio" or "pty"). Raises ValueError for a bad spec and OSError when it cannot listen. `acc`:
    the Access (password, count of wrong passwords) it shares with the management endpoint."""
    c = Console(ctl, acc)
    if spec == "stdio" or spec == "pty":
        asyncio.create_task(c.serve_pty(PtyPort(nonblocking=spec == "pty")))
        return spec
    hp = listen.tcp_spec(spec)
    if hp is None:
        raise ValueError("console must be 'tcp:HOST:PORT', 'stdio' or 'pty', not %r" % (spec,))
    host, port = hp
    s, port = listen.bind(host, port, 2)
    asyncio.create_task(c.serve_tcp(s))
    return "tcp:%s:%d" % (host, port)
