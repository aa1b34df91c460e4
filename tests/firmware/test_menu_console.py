# The console's input path on MicroPython with a real controller: keystrokes and line-protocol
# bytes go through Console._input as the UART delivers them; what the console sends is collected.
# Checks the framing and that neither keystrokes nor requests make the heap grow.
import gc
import json
import asyncio
import fw
from endpoints.console import uart as console
from endpoints.console import lineproto


Collect = fw.UartEnd


def setup():
    c = console.Console(fw.boot())
    port = Collect()
    c.model.reset()
    c.line = False
    c.bol = True
    c.magic = 0
    c.alive = True
    return c, port


def feed(c, port, data):
    async def go():
        i = 0
        while i < len(data):
            k = min(console.IN_SIZE, len(data) - i)
            c.inbuf[:k] = data[i:i + k]
            await c._input(port, k)
            i += k
    asyncio.run(go())


def test_hello_requests_and_bye_in_one_chunk():
    c, port = setup()
    feed(c, port, b'#RB1\n1 lun_list\n2 lcd\n3 bye\n\x1b[B')
    out = bytes(port.data)
    i = out.index(b"#RB1 OK ")
    rest = out[i:].split(b"\n")
    assert json.loads(rest[0][8:])["model"] == "DAC960SX"
    assert rest[1].startswith(b"1 OK ") and json.loads(rest[1][5:])["map"]
    assert rest[2].startswith(b"2 OK ") and json.loads(rest[2][5:])["lines"][0].startswith("SD0 RAID5")
    assert rest[3] == b"3 OK {}"
    assert not c.line
    # the Down arrow after bye went to the menus: the LCD in the redrawn screen shows SD1
    assert b"SD1 RAID1 ONLINE LOG" in rest[4], rest[4]


def test_partial_and_overlong_lines():
    c, port = setup()
    feed(c, port, b"#RB1\n")
    for part in (b"a", b"b sta", b"tus", b" {}", b"\r\n"):
        feed(c, port, part)
    assert port.lines()[-2].startswith("ab OK {"), port.lines()[-2][:40]
    big = b"x status " + b"0" * (lineproto.LINE_MAX + 10) + b"\n"
    feed(c, port, big + b"y snapshot_status\n")
    ls = port.lines()
    assert ls[-3].startswith("- ERR LINE_TOO_LONG "), ls[-3][:80]
    assert ls[-2].startswith("y OK "), ls[-2][:80]
    # exactly at the limit (with its newline) is accepted as a line
    n = lineproto.LINE_MAX - 1 - len(b"z status ")
    feed(c, port, b"z status " + b" " * n + b"\n")
    assert port.lines()[-2].startswith("z OK "), port.lines()[-2][:80]


def test_keystrokes_do_not_grow_the_heap():
    c, port = setup()
    keys = b"\r\x1b[B\x1b[B\x1b[A\x1b\x1b[D" * 4
    feed(c, port, keys)            # warm: every screen built once
    gc.collect()
    before = gc.mem_alloc()
    for _ in range(150):
        feed(c, port, keys)
    port.data = bytearray()
    gc.collect()
    grown = gc.mem_alloc() - before
    assert grown < 16384, grown
    print("keystrokes: %d bytes in, heap grew %d bytes" % (150 * len(keys), grown))


def test_requests_do_not_grow_the_heap():
    c, port = setup()
    feed(c, port, b"#RB1\n")
    reqs = b"1 status\n2 bad json {\n\xff\xfe\n3 lcd\n" + b"4 status " + b"x" * 300000 + b"\n"
    feed(c, port, reqs)
    gc.collect()
    before = gc.mem_alloc()
    for _ in range(20):
        feed(c, port, reqs)
    port.data = bytearray()
    gc.collect()
    grown = gc.mem_alloc() - before
    assert grown < 16384, grown


def interleaving(c, port, data, count):
    # Feeds data as the UART delivers it while a host-port task runs whenever it is scheduled;
    # returns, for each time the host task ran, how much console work (count()) was done since
    # the previous time.
    done = [False]
    gaps = []

    async def host_port():
        last = count()
        while not done[0]:
            await asyncio.sleep_ms(0)
            gaps.append(count() - last)
            last = count()

    async def go():
        t = asyncio.create_task(host_port())
        i = 0
        while i < len(data):
            k = min(console.IN_SIZE, len(data) - i)
            c.inbuf[:k] = data[i:i + k]
            await c._input(port, k)
            i += k
        done[0] = True
        await t
    asyncio.run(go())
    return gaps


def counting(obj, name):
    # obj.name replaced by a wrapper that counts its calls; the count is [n]
    n = [0]
    f = getattr(obj, name)

    def counted(*args):
        n[0] += 1
        return f(*args)
    setattr(obj, name, counted)
    return n


def test_a_keystroke_flood_yields_to_the_host_ports_between_slices():
    c, port = setup()
    keys = counting(c.model, "key")
    gaps = interleaving(c, port, b"\r" * 5000, lambda: keys[0])
    assert keys[0] == 5000                      # every CR was a key (Enter)
    assert max(gaps) <= console.KEYS_PER_SLICE, max(gaps)
    assert len(gaps) >= 5000 // console.KEYS_PER_SLICE, len(gaps)
    print("5000 CRs: the host port ran %d times, at most %d keys apart" % (len(gaps), max(gaps)))


def test_a_request_flood_yields_to_the_host_ports_between_slices():
    c, port = setup()
    feed(c, port, b"#RB1\n")
    lines = counting(c.proto, "line")
    flood = b"1 lcd\n\n\r\n" * 1000                # answered and empty lines alike
    gaps = interleaving(c, port, flood, lambda: lines[0])
    assert lines[0] == 3000
    assert max(gaps) <= console.LINES_PER_SLICE, max(gaps)
    assert port.lines()[-2].startswith("1 OK "), port.lines()[-2]
    print("3000 lines: the host port ran %d times, at most %d lines apart" % (len(gaps), max(gaps)))


def test_input_of_a_client_that_went_away_is_dropped_at_the_next_slice():
    # the client sent a flood and closed: the console stops at the next slice instead of
    # handling (minutes of) keystrokes nobody will see, and the session ends
    c, port = setup()
    keys = counting(c.model, "key")
    slices = [0]

    def gone():
        slices[0] += 1
        return slices[0] > 1
    port.gone = gone
    c.inbuf[:4096] = b"\r" * 4096
    try:
        asyncio.run(c._input(port, 4096))
        raise AssertionError("the input of a client that went away was handled to the end")
    except console.Disconnected:
        pass
    assert keys[0] == console.KEYS_PER_SLICE, keys[0]


def test_a_long_run_of_input_that_writes_nothing_is_probed():
    # a client that closed is heard of only when it answers our output with a reset: input that
    # makes no output (Enter on a view that does not change, empty lines) still makes a probe
    # byte every PROBE_SLICES slices, one terminals and clients ignore
    c, port = setup()
    feed(c, port, b"\r\r")                      # the STATUS view: Enter there changes nothing
    probes = []
    port.probe = lambda b: probes.append(bytes(b))
    slices = 4096 // console.KEYS_PER_SLICE
    feed(c, port, b"\r" * 4096)
    assert probes.count(b"\x00") == slices // console.PROBE_SLICES, probes
    feed(c, port, b"#RB1\n")
    del probes[:]
    feed(c, port, b"\n" * 4096)
    assert probes.count(b"\n") == 4096 // console.LINES_PER_SLICE // console.PROBE_SLICES, len(probes)
    assert len(probes) == probes.count(b"\n")  # nothing else: empty lines are not answered


class Line:
    # a pty's line settings as a terminal program changes them: one value per look (settings()),
    # from a script; marks the board makes are counted
    def __init__(self, script):
        self.script = list(script)
        self.looks = 0
        self.marks = 0
        self.done = asyncio.Event()

    def settings(self):
        self.looks += 1
        if len(self.script) > 1:
            return self.script.pop(0)
        self.done.set()
        return self.script[0]

    def mark(self):
        self.marks += 1


def watch(c, script):
    # the console's watch of the line, for as many looks as the script has
    line = Line(script)

    async def go():
        t = asyncio.create_task(c._watch_line(line))
        await line.done.wait()
        t.cancel()
    asyncio.run(go())
    return line


def test_a_terminal_program_setting_the_line_gets_the_monitor_drawn_once_it_settles():
    c, port = setup()
    c.model.key(console.menu.ENTER)          # someone left the menus open
    c.screen.full = False
    c.wake.clear()
    # quiet, then picocom: sets the line, flushes it, sets it again; then quiet again
    line = watch(c, ["raw", "raw", "raw", "115200", "115200+clocal", "115200+clocal", "marked", "marked"])
    assert c.model.mode == "monitor" and c.screen.full and c.wake.is_set()
    assert line.marks == 2, line.marks       # at start, and after the program came


def test_a_program_in_line_mode_is_not_drawn_on():
    c, port = setup()
    c.line = True                             # the CLI sent #RB1 before its settings were noticed
    c.screen.full = False
    c.wake.clear()
    watch(c, ["raw", "9600", "9600", "marked", "marked"])
    assert not c.screen.full and not c.wake.is_set()
