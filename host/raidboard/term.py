"""Attach the current terminal to the board's VT-100 console, like telnet: Ctrl-] detaches.

Keys go to the board byte for byte (the terminal is in raw mode, so arrows, Esc and Enter reach the
menus); the board's output goes to the terminal unchanged. Works over pyserial socket:// and ptys.
"""
import os
import select
import shutil
import sys
import termios
import tty

import serial

from .proto import close_console, normalize_url, open_console, read_available, reason

DETACH = 0x1D  # Ctrl-]
REDRAW = b"\x0c"  # Ctrl-L: ask the menus to redraw the screen we join in the middle of


def attach(url, stop_note="the board keeps running", stdin=None, stdout=None):
    url = normalize_url(url)
    fin = (stdin or sys.stdin).fileno()
    fout = (stdout or sys.stdout).fileno()
    ser = open_console(url, 0, 10)
    cols, rows = shutil.get_terminal_size((80, 24))
    note = "Connected to %s. Detach: Ctrl-] (%s)." % (url, stop_note)
    if cols < 80 or rows < 24:
        note += " Your terminal is %dx%d; the console needs 80x24." % (cols, rows)
    sys.stderr.write(note + "\r\n")
    sys.stderr.flush()
    if os.isatty(fout):
        # the board clears the screen at once, so the detach key also goes into the window title
        os.write(fout, ("\x1b]0;raidboard console %s - Ctrl-] detaches\x07" % url).encode())
    old = None
    if os.isatty(fin):
        old = termios.tcgetattr(fin)
        tty.setraw(fin)
    try:
        _pump(ser, fin, fout)
    finally:
        if old is not None:
            termios.tcsetattr(fin, termios.TCSAFLUSH, old)
        try:
            close_console(ser)
        except Exception:
            pass
        # leave the user's terminal usable: reset attributes, show cursor, end on a fresh line
        os.write(fout, b"\x1b[0m\x1b[?25h\r\n")
        sys.stderr.write("Detached from %s.\n" % url)
        sys.stderr.flush()


def _pump(ser, fin, fout):
    try:
        ser.write(REDRAW)
    except (serial.SerialException, OSError):
        pass
    sfd = ser.fileno()
    while True:
        r, _, _ = select.select([fin, sfd], [], [])
        if sfd in r:
            try:
                data = read_available(ser)
            except (serial.SerialException, OSError) as e:
                sys.stderr.write("\r\nconsole closed by the board: %s\r\n" % reason(e))
                return
            if data == b"":
                sys.stderr.write("\r\nthe board closed the console\r\n")
                return
            if data:
                os.write(fout, data)
        if fin in r:
            data = os.read(fin, 1024)
            if not data:
                return  # end of input: detach
            i = data.find(bytes([DETACH]))
            if i >= 0:
                if i:
                    ser.write(data[:i])
                return
            try:
                ser.write(data)
            except (serial.SerialException, OSError) as e:
                sys.stderr.write("\r\nconsole closed: %s\r\n" % reason(e))
                return
