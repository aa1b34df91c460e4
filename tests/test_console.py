"""The serial console of a booted board over TCP: VT-100 menus read through pyte, the LCD drawn at
the top of the screen, the line protocol, one client at a time, telnet negotiation, reconnects."""
import json
import socket
import subprocess
import time

import serial

from harness import need_tool
from console_term import DOWN, ENTER, ESC, UP, Line, Term


def write10(lba, blocks):
    return "2a00%08x00%04x00" % (lba, blocks)


def test_snapshot_cycle_through_the_menus(board):
    t = Term(board.console)
    t.wait("MONITOR MODE")
    t.wait_lcd("SD0 RAID5 ONLINE", "SNAP IDLE")
    assert "SD1  RAID1" in t.text() and "LOG" in t.text()
    # SD1 is the factory LOG drive: turn it into an ordinary drive first (unmap, clear LOG)
    t.key(ENTER)
    t.wait("MAIN MENU")
    t.choose("CONFIGURATION", "CLEAR LOG DRIVE", "SD1")
    t.wait("REFUSED: LUN IN USE")                 # its backup LUNs are mapped: said why
    t.wait_lcd("LUNS IN USE", "UNMAP THEM FIRST")  # the panel's 20-column form
    t.select("UNMAP LUN")
    for m in ("P0 LUN 1", "P1 LUN 1"):
        t.choose("UNMAP LUN", m, "YES")
        t.wait("DONE: LUN UNMAPPED")
    t.choose("CLEAR LOG DRIVE", "SD1")
    t.wait("DONE: LOG CLEARED")
    t.wait_lcd("DONE", "LOG CLEARED")
    t.key(ESC)
    t.wait(lambda t: t.selected() == "CONFIGURATION")
    # no LOG drive: the snapshot is refused with the reason, on the screen and on the LCD
    t.choose("ADMINISTRATION", "START SNAPSHOT", "SD0")
    t.wait("REFUSED: NO LOG DEFINED")
    t.wait_lcd("NO LOG DRIVE", "SET ONE FIRST")
    t.key(ESC)
    t.wait(lambda t: t.selected() == "ADMINISTRATION")
    t.choose("CONFIGURATION", "SET LOG DRIVE", "SD1", "YES")
    t.wait_lcd("DONE", "LOG SET")
    t.key(ESC)
    t.wait(lambda t: t.selected() == "CONFIGURATION")
    t.choose("ADMINISTRATION", "START SNAPSHOT", "SD0")
    t.wait_lcd("DONE", "SNAPSHOT STARTED")
    t.home()
    t.wait_lcd("SD0 RAID5 ONLINE", "SNAP ACTIVE LOG 0%")
    t.wait("ACTIVE   primary SD0   log SD1")
    # write to the primary through the line protocol on the same console, then back to the menus
    t.key(b"#RB1\n")
    t.wait(lambda t: b"#RB1 OK" in t.raw)
    blocks = 256
    t.key(b'w cdb {"port":0,"lun":0,"cdb":"%s","data":"%s"}\n' % (write10(0, blocks).encode(), b"ab" * 512 * blocks))
    t.wait(lambda t: b'w OK {' in t.raw)
    t.key(b"x bye\n")
    t.wait("MONITOR MODE")
    # copy-on-write happened: the map of the primary shows the first region shaded
    t.key(ENTER)
    t.choose("SNAPSHOT MAP")
    t.wait("Primary drive, one cell per region")
    row = [r for r in t.screen.display if r.startswith("  |")][0]
    assert row[3] != " " and row[4:67].strip() == "", row
    t.home()
    t.key(ENTER)
    t.choose("ADMINISTRATION", "END SNAPSHOT", "YES")
    t.wait_lcd("DONE", "SNAPSHOT ENDED")
    t.home()
    t.wait_lcd("SD0 RAID5 ONLINE", "SNAP TERMINATED 0%")      # how it ended, until the next start
    t.close()
    assert board.alive()


def test_lcd_buttons_over_the_line_protocol(board):
    c = Line(board.console)
    c.hello()
    assert c.call("lcd")["lines"] == ["SD0 RAID5 ONLINE    ", "SNAP IDLE           "]
    assert c.call("button", {"key": "down"})["lines"][0].rstrip() == "SD1 RAID1 ONLINE LOG"
    assert c.call("button", {"key": "enter"})["lines"] == ["MAIN MENU           ", ">STATUS             "]
    for _ in range(4):
        c.call("button", {"key": "down"})
    assert c.call("button", {"key": "enter"})["lines"][0].rstrip() == "ADMINISTRATION"
    lines = c.call("button", {"key": "enter"})["lines"]      # START SNAPSHOT: choose the primary
    assert [x.rstrip() for x in lines] == ["PRIMARY DRIVE", ">SD0 RAID5 ONLINE"], lines
    assert c.call("lcd")["lines"] == lines
    assert c.call("button", {"key": "enter"})["lines"] == ["DONE                ", "SNAPSHOT STARTED    "]
    for _ in range(3):
        c.call("button", {"key": "esc"})
    assert c.call("lcd")["lines"][1] == "SNAP ACTIVE LOG 0%  "
    assert c.call("snapshot_status")["state"] == "ACTIVE"
    try:
        c.call("button", {"key": "left"})
        raise AssertionError("bad key accepted")
    except RuntimeError as e:
        assert " ERR BAD_ARGUMENT " in str(e)
    c.close()


def test_line_protocol_framing_and_errors(board):
    c = Line(board.console)
    info = c.hello()
    assert info["model"] == "DAC960SX" and info["iqn"].startswith("iqn.") and info["firmware"]
    st = c.call("status")
    assert [d["level"] for d in st["drives"]] == ["RAID5", "RAID1"]
    s = c.s
    cases = [
        (b"junk\n", "- ERR BAD_REQUEST"),
        (b"\x00\x01\xff\xfe binary\n", "- ERR BAD_REQUEST"),
        (b"\xc3\x28 not utf-8\n", "- ERR BAD_REQUEST"),
        (b"bad!id status\n", "- ERR BAD_REQUEST"),
        (b"aaaaaaaaaaaaaaaaa status\n", "- ERR BAD_REQUEST"),          # 17-character id
        (b"7 status {nope\n", "7 ERR BAD_JSON"),
        (b"8 status [1,2]\n", "8 ERR BAD_JSON"),
        (b"9 no_such_thing {}\n", "9 ERR UNKNOWN_COMMAND"),
        (b'10 log_clear {"sd":1}\r\n', "10 ERR LUN_IN_USE"),
        (b'11 snapshot_stop\n', "11 ERR NO_SNAPSHOT"),
        (b'12 lun_map {"port":0,"lun":"x","sd":0}\n', "12 ERR BAD_ARGUMENT"),
    ]
    for req, want in cases:
        s.sendall(req)
        line = c.readline()
        assert line.startswith(want), (req, line)
        body = json.loads(line.split(" ", 3)[3])
        assert body["message"], line
    # a request in fragments, split anywhere, is one request
    for part in (b"fr", b"ag s", b"tat", b"us {", b"}", b"\n"):
        s.sendall(part)
        time.sleep(0.02)
    assert c.readline().startswith("frag OK {")
    # an overlong line is refused once, whole, and the next request works
    s.sendall(b"big status " + b"x" * 300000 + b"\n")
    line = c.readline()
    assert line.startswith("- ERR LINE_TOO_LONG"), line[:100]
    assert json.loads(line.split(" ", 3)[3])["limit"] >= 262144
    assert c.call("lun_list")["map"]
    # empty lines are ignored, "#RB1" again answers hello
    s.sendall(b"\n\r\n")
    assert c.hello()["model"] == "DAC960SX"
    c.close()
    assert board.alive()


def test_cdb_pass_through_inquiry_and_sense(board):
    c = Line(board.console)
    c.hello()
    r = c.call("cdb", {"port": 0, "lun": 0, "cdb": "120000006000"})
    assert r["status"] == 0 and r["sense"] == ""
    inq = bytes.fromhex(r["data"])
    assert len(inq) >= 36 and inq[0] == 0
    r = c.call("cdb", {"port": 0, "lun": 7, "cdb": "00000000000000"[:12]})     # TEST UNIT READY, no LUN 7
    assert r["status"] == 2 and len(bytes.fromhex(r["sense"])) == 18
    data = bytes(range(256)) * 512                          # 128 KiB data-out fits a request line
    r = c.call("cdb", {"port": 0, "lun": 0, "cdb": write10(8, 256), "data": data.hex()})
    assert r["status"] == 0, r
    r = c.call("cdb", {"port": 0, "lun": 0, "cdb": "2800%08x00%04x00" % (8, 256)})
    assert bytes.fromhex(r["data"]) == data
    c.close()


def test_events_arrive_between_responses(board):
    c = Line(board.console)
    c.hello()
    c.call("disk_fail", {"slot": 5})
    c.call("disk_replace", {"slot": 5})
    deadline = time.time() + 5
    c.s.settimeout(0.5)
    while len(c.events) < 2 and time.time() < deadline:
        try:
            c.call("lun_list")
        except socket.timeout:
            pass
    texts = [e["text"] for e in c.events]
    assert any("1:1" in x and "FAIL" in x for x in texts), texts
    assert all(set(e) >= {"seq", "time", "level", "text"} for e in c.events)
    c.close()


def test_second_client_is_refused_and_reconnect_works(board):
    t = Term(board.console)
    t.wait("MONITOR MODE")
    s2 = socket.create_connection(board.console, timeout=5)
    got = b""
    while not got.endswith(b"\n"):
        d = s2.recv(1000)
        if not d:
            break
        got += d
    assert got.startswith(b"- ERR CONSOLE_IN_USE "), got
    assert s2.recv(100) == b""          # and it is disconnected
    s2.close()
    t.key(ENTER)                        # the first client is undisturbed
    t.wait("MAIN MENU")
    t.close()
    # after the first client leaves, the next one gets a fresh session (monitor mode, redrawn)
    for _ in range(3):
        t = Term(board.console)
        t.wait("MONITOR MODE")
        t.wait_lcd("SD0 RAID5 ONLINE", "SNAP IDLE")
        t.key(ENTER)
        t.wait("MAIN MENU")
        t.s.shutdown(socket.SHUT_RDWR)      # drop mid-session
        t.close()
    c = Line(board.console)
    c.hello()
    c.call("bye")
    c.close()


def test_pyserial_socket_url(board):
    port = serial.serial_for_url("socket://%s:%d" % board.console, timeout=5)
    port.write(b"#RB1\n")
    # sent at once after connecting: no screen output comes before the answer
    line = port.readline()
    assert line.startswith(b"#RB1 OK "), line[:80]
    port.write(b"q1 snapshot_status\n")
    line = port.readline()
    assert line.startswith(b"q1 OK ") and json.loads(line[6:])["state"] == "IDLE"
    port.write(b"q2 bye\n")
    assert port.readline() == b"q2 OK {}\n"
    port.close()
    # again right after the previous client left (its session may still be ending)
    for i in range(5):
        port = serial.serial_for_url("socket://%s:%d" % board.console, timeout=5)
        port.write(b"#RB1\n")
        line = port.readline()
        assert line.startswith(b"#RB1 OK "), (i, line[:80])
        port.close()


def test_telnet_negotiation_is_stripped_and_answered(board):
    s = socket.create_connection(board.console, timeout=5)
    IAC, DO, WILL, SB, SE = 255, 253, 251, 250, 240
    # what a telnet client in character mode sends, interleaved with keys (Enter, Down)
    s.sendall(bytes([IAC, DO, 1, IAC, DO, 3, IAC, WILL, 24, IAC, SB, 24, 0, 65, IAC, SE]) + b"\r\x00")
    s.sendall(bytes([IAC, DO, 1]) + b"\x1b[B")     # already agreed: not answered again
    scr = Term.__new__(Term)
    import pyte
    scr.screen = pyte.Screen(80, 24)
    stream = pyte.ByteStream(scr.screen)
    got = b""
    s.settimeout(30)
    # the board handles input in order: once the Down key shows, every answer has been sent
    while scr.selected() != "SNAPSHOT MAP":
        d = s.recv(65536)
        assert d, got[-300:]
        got += d
        stream.feed(d.replace(bytes([IAC, WILL, 1]), b"").replace(bytes([IAC, WILL, 3]), b"")
                    .replace(bytes([IAC, 254, 24]), b""))
    assert got.count(bytes([IAC, WILL, 1])) == 1 and got.count(bytes([IAC, WILL, 3])) == 1, got[:40]
    assert bytes([IAC, 254, 24]) in got                # DONT terminal-type
    assert "MAIN MENU" in "\n".join(scr.screen.display)
    s.close()


def test_real_telnet_and_nc(board):
    need_tool("nc", "netcat-openbsd")
    host, port = board.console
    p = subprocess.run(["nc", "-q", "2", host, str(port)], input=b"#RB1\nn1 lcd\nn2 bye\n",
                       capture_output=True, timeout=20)
    out = p.stdout.decode("utf-8", "replace")
    assert "#RB1 OK " in out and "n1 OK {" in out and "SD0 RAID5 ONLINE" in out and "n2 OK {}" in out, out
    need_tool("telnet", "telnet")
    need_tool("tmux", "tmux")
    sess = "rbtelnet%d" % port
    subprocess.run(["tmux", "new-session", "-d", "-s", sess, "-x", "80", "-y", "26",
                    "telnet %s %d" % (host, port)], check=True)
    try:
        def screen():
            return subprocess.run(["tmux", "capture-pane", "-p", "-t", sess], capture_output=True,
                                  text=True).stdout
        end = time.time() + 15
        while "MONITOR MODE" not in screen() and time.time() < end:
            time.sleep(0.2)
        assert "MONITOR MODE" in screen(), screen()
        assert "SD0 RAID5 ONLINE" in screen()
        subprocess.run(["tmux", "send-keys", "-t", sess, "Enter"], check=True)
        while "MAIN MENU" not in screen() and time.time() < end:
            time.sleep(0.2)
        assert "== MAIN MENU" in screen(), screen()
        # character mode (telnet negotiates SGA/ECHO with the board): arrow keys go through at once
        subprocess.run(["tmux", "send-keys", "-t", sess, "C-]"], check=True)
        time.sleep(0.3)
        subprocess.run(["tmux", "send-keys", "-t", sess, "mode character", "Enter"], check=True)
        time.sleep(0.5)
        subprocess.run(["tmux", "send-keys", "-t", sess, "Down"], check=True)
        while "|>SNAPSHOT MAP" not in screen() and time.time() < end + 5:
            time.sleep(0.2)
        assert "|>SNAPSHOT MAP" in screen(), screen()
    finally:
        subprocess.run(["tmux", "kill-session", "-t", sess])


def test_idle_screen_sends_only_changes(board):
    t = Term(board.console)
    t.wait("MONITOR MODE")
    t.pump(1.5)
    n = t.received
    t.pump(2.5)             # live refreshes happen each second; nothing changed, nothing sent
    assert t.received - n < 64, t.received - n
    t.key(ENTER)
    t.wait("MAIN MENU")
    n = t.received
    t.key(DOWN)
    t.wait(lambda t: t.selected() == "SNAPSHOT MAP")
    t.pump(0.3)
    assert t.received - n < 400, t.received - n     # two rows and the LCD line, not a screen
    t.key(UP)
    t.wait(lambda t: t.selected() == "STATUS")
    t.raw = b""
    t.key(b"\x0c")                                   # Ctrl-L: full redraw
    t.wait(lambda t: b"\x1b[2J" in t.raw and b"DISKS" in t.raw)
    t.close()


def console_free(board, polls=100):
    """Connect until the console takes the client (hello answered) instead of CONSOLE_IN_USE; at most
    `polls` tries, 0.1 s apart. Returns whether it did."""
    for _ in range(polls):
        c = Line(board.console, timeout=5)
        try:
            c.s.sendall(b"#RB1\n")
            line = c.readline()
            while "#RB1 OK" not in line and "CONSOLE_IN_USE" not in line:
                line = c.readline()
            if "#RB1 OK" in line:
                return True
        except (EOFError, OSError):
            pass
        finally:
            c.close()
        time.sleep(0.1)
    return False


def test_a_client_that_stops_reading_and_closes_frees_the_console(board):
    # The client sends telnet options the console refuses (each answered with IAC WONT) and reads
    # nothing, until the console's answers back up and it waits to write one. Then an event gives
    # the event sender something to write to the same socket. Two tasks waiting to write to one
    # socket left the first one never woken: the session never ended and every later client got
    # CONSOLE_IN_USE until a reboot. Now one writer at a time waits on a port.
    from test_iscsi_initiator import Initiator
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(board.console)
    s.sendall(b"#RB1\n")
    s.settimeout(2)
    flood = b"\xff\xfd\x63" * 20000          # IAC DO 99: refused, 3 bytes answered for 3 sent
    try:
        for _ in range(400):                 # 24 MB at most; the board stops reading long before
            s.sendall(flood)
    except socket.timeout:
        pass                                # the board no longer reads: it waits to write
    else:
        raise AssertionError("the board kept reading 24 MB without its answers being read")
    for _ in range(3):                      # events: the console has them to send too
        c = Initiator(*board.portals[0])
        c.login()
        c.logout()
        time.sleep(0.3)
    s.close()
    assert console_free(board), "the console stayed in use after its client closed"
    assert board.alive()


def test_a_client_that_floods_and_closes_frees_the_console(board):
    # Input that makes no output (Enter on the STATUS view, empty lines in line mode), as much as
    # the connection holds (megabytes), then the client closes. TCP tells the board of the close only after the last byte, or as a
    # reset when the board writes to the closed connection: the console's probes draw that reset
    # and it stops there, instead of working through minutes of input.
    for flood in (b"\r" * (4 << 20), b"#RB1\n" + b"\n" * (4 << 20)):
        s = socket.create_connection(board.console)
        s.setblocking(False)
        sent = 0
        try:
            while sent < len(flood):        # as much as the connection holds
                sent += s.send(flood[sent:sent + 65536])
        except BlockingIOError:
            pass
        s.close()
        assert console_free(board, polls=15), "the console stayed with a client that had closed"
    assert board.alive()
