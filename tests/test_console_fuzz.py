"""Fuzz of the serial console of a booted board: the line protocol (random bytes, binary noise, long
and partial lines, random requests with random JSON) and the VT-100 keystroke handler (random bytes
and escape-sequence fragments). After every batch the console must still answer; at the end the
firmware process must be alive. Each test prints how many inputs it tried."""
import json
import random
import socket
import time

from console_term import Line, Term

COMMANDS = ["status", "sd_list", "sd_delete", "sd_policy", "log_set", "log_clear", "lun_list", "lun_map",
            "lun_unmap", "snapshot_start", "snapshot_stop", "snapshot_status", "snapshot_map", "disk_list",
            "disk_fail", "disk_replace", "events", "cdb", "password_set", "challenge", "login", "mask_list", "nvram_dump",
            "lcd", "button", "screen", "no_such", "BYE", "sd_create", "params_get", "params_set", "lop_start",
            "lop_status", "lop_stop"]
KEYS = ["sd", "port", "lun", "slot", "cells", "n", "cdb", "data", "key", "raid", "slots", "wb", "password",
        "auto_rebuild", "op", "rate", "id", "standby", "fix"]


def rand_value(r, depth=0):
    k = r.randrange(9 if depth < 2 else 6)
    if k == 0:
        return r.randrange(-3, 12)
    if k == 1:
        return r.choice([0, 1, 7, 2 ** 31, -2 ** 40, 1e308, 0.5])
    if k == 2:
        return "".join(chr(r.randrange(1, 0x3000)) for _ in range(r.randrange(8)))
    if k == 3:
        return r.choice(["", "00", "12000000ff00", "2a" + "0" * 18, "zz", "up", "down", "enter", "esc"])
    if k == 4:
        return r.choice([True, False, None])
    if k == 5:
        return bytes(r.randrange(256) for _ in range(r.randrange(1, 20))).hex()
    if k == 6:
        return [rand_value(r, depth + 1) for _ in range(r.randrange(4))]
    return {r.choice(KEYS): rand_value(r, depth + 1) for _ in range(r.randrange(4))}


def rand_input(r):
    k = r.randrange(7)
    if k == 0:      # binary noise, newlines included
        return bytes(r.randrange(256) for _ in range(r.randrange(1, 200)))
    if k == 1:      # a long line, sometimes too long
        return b"L status " + b"x" * r.choice([1000, 70000, 262000, 270000, 400000]) + b"\n"
    if k == 2:      # a partial line (the next input continues it)
        return b"p%d stat" % r.randrange(100)
    if k == 3:      # escape sequences and control characters in line mode
        return r.choice([b"\x1b[A", b"\x1b", b"\x03\x04", b"\r", b"\x7f\x08", b"\x00\n"])
    if k == 4:      # bad JSON
        return b"j%d status {%s\n" % (r.randrange(100), bytes(r.randrange(32, 127) for _ in range(r.randrange(30))))
    args = {r.choice(KEYS): rand_value(r) for _ in range(r.randrange(4))}
    req = "f%d %s %s\n" % (r.randrange(1000), r.choice(COMMANDS), json.dumps(args, ensure_ascii=r.random() < 0.5))
    return req.encode("utf-8", "surrogatepass")


def sync(c, n):
    """End any partial line (and a telnet subnegotiation the noise may have opened, which swallows
    up to 64 bytes: endpoints/console/lineproto.md), then one request whose answer must come."""
    c.s.sendall(b"\n" + b" " * 65 + b"\nsync%d lun_list\n" % n)
    while True:
        line = c.readline()
        if line.startswith("sync%d " % n):
            assert line.startswith("sync%d OK " % n), line
            return
        assert line.startswith(("- ERR ", "* EVENT ", "* EVENTS_LOST ", "#RB1 OK ")) or \
            line.split(" ", 2)[1] in ("OK", "ERR"), line[:200]


LINE_BATCHES = 60      # fixed amounts of input (not a time budget): the same run on any machine
KEY_BATCHES = 120


def test_fuzz_line_protocol(board):
    r = random.Random(20260704)
    c = Line(board.console, timeout=30)
    c.hello()
    tried = 0
    for batch in range(1, LINE_BATCHES + 1):
        for _ in range(r.randrange(1, 12)):
            data = rand_input(r)
            if b" bye" in data.lower():
                continue
            c.s.sendall(data)
            tried += 1
        sync(c, batch)
    print("line protocol fuzz: %d inputs in %d batches, console answered after each" % (tried, batch))
    assert c.call("lun_list") is not None
    c.close()
    assert board.alive()
    assert tried > 50


FRAGMENTS = [b"\x1b", b"\x1b[", b"\x1b[A", b"\x1b[B", b"\x1b[C", b"\x1b[D", b"\x1bO", b"\x1bOA", b"\x1b[12;",
             b"\x1b[?25h", b"\x1b[2~", b"\x1b]0;title\x07", b"\r", b"\n", b"\r\n", b"\r\x00", b"\x7f", b"\x0c",
             b"\xff\xfb\x01", b"\xff\xfd\x03", b"\xff", b"#RB", b"q", b"\x1b\x1b", b"\x03"]


def test_fuzz_keystrokes(board):
    r = random.Random(4096)
    t = Term(board.console)
    t.wait("MONITOR MODE")
    tried = 0
    for _ in range(KEY_BATCHES):
        for _ in range(r.randrange(1, 20)):
            if r.random() < 0.5:
                data = r.choice(FRAGMENTS)
            else:
                data = bytes(r.randrange(256) for _ in range(r.randrange(1, 12)))
            t.key(data)
            tried += 1
        t.pump(0.02)
    # whatever mode the noise left it in: leave line mode if it got there, then redraw
    t.key(b"\nzz bye\n")
    time.sleep(0.3)
    t.key(b"\x1b")
    time.sleep(0.3)
    t.key(b"\x0c")
    t.wait(lambda t: t.screen.display[0].startswith("+--------------------+   DAC960SX console"))
    t.wait(lambda t: t.screen.display[3].startswith("+--------------------+"))
    print("keystroke fuzz: %d inputs; screen intact" % tried)
    t.close()
    assert board.alive()
    c = Line(board.console)
    c.hello()
    assert c.call("status")["model"] == "DAC960SX"
    c.close()


def test_many_connections_and_abrupt_disconnects(board):
    # clients that vanish mid-line, mid-escape-sequence and mid-response
    tried = 0
    for i in range(30):
        s = socket.create_connection(board.console, timeout=5)
        k = i % 4
        if k == 0:
            s.sendall(b"#RB1\n1 status\n")
        elif k == 1:
            s.sendall(b"#RB1\n2 stat")
        elif k == 2:
            s.sendall(b"\x1b[")
        else:
            s.sendall(b"#RB1\n3 screen\n4 snapshot_map {\"cells\":4096}\n")
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()   # RST
        tried += 1
    c = Line(board.console)
    c.hello()
    assert c.call("status")["model"] == "DAC960SX"
    c.close()
    print("abrupt disconnects: %d" % tried)
    assert board.alive()
