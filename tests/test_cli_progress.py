"""Progress that fits the screen: the bar of `lop … --wait` and `snapshot watch` on a terminal (a pty
of a given width), in a pipe and as JSON; `lop status` as a table with times; percentages rounded.
"""
import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import termios

from raidboard import render

from test_cli import RAIDBOARD, rb, rbj
from harness import answers

# a percentage with more than one decimal, as a float artefact prints it (8.699999999999999%)
LONG_PCT = re.compile(r"\d+\.\d{2,}\s*%")


def terminal(cols):
    """A pty whose window is `cols` columns wide: (reading end, the terminal as a text stream)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, cols, 0, 0))
    attrs = termios.tcgetattr(slave)
    attrs[1] &= ~termios.OPOST            # the bytes as written: no \n -> \r\n
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    return master, os.fdopen(slave, "w", encoding="utf-8")


def read_all(master):
    data = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            return data.decode()
        if not chunk:
            return data.decode()
        data += chunk


def drawn(text):
    """The frames a terminal shows: each \\r starts a redraw, \\x1b[K clears the rest of the line."""
    return [f.replace("\x1b[K", "") for f in re.split(r"[\r\n]", text) if f.replace("\x1b[K", "")]


def test_bar_on_an_80_column_terminal_is_one_line_redrawn_and_fits():
    for cols in (80, 300, 40):
        master, tty = terminal(cols)
        bar = render.Progress("sd0", stream=tty)
        note = render.lop_what({"op": "copy", "sd": 0, "to": 2, "state": "RUNNING"})
        for pct in (0, 8.699999999999999, 33.3, 99.95):
            bar.update(pct, note)
        tty.flush()
        raw = b""
        while raw.count(b"\x1b[K") < 4:          # each redraw ends by clearing the rest of the line
            raw += os.read(master, 65536)
        written = raw.decode()
        assert "\n" not in written and written.count("\r") == 4, written       # redrawn in place
        frames = drawn(written)
        assert all(len(f) <= min(79, cols - 1) for f in frames), (cols, frames)
        assert frames[1].startswith("sd0 [") and "8.7%" in frames[1], frames
        if cols >= 80:
            assert frames[1].endswith("  8.7% copy sd0 → sd2 RUNNING"), frames
        assert not any(LONG_PCT.search(f) for f in frames), frames
        bar.done("done")
        tty.close()
        assert read_all(master).startswith("\ndone"), "the bar ends with its line kept"
        os.close(master)


class Pipe:
    def __init__(self):
        self.text = ""

    def isatty(self):
        return False

    def write(self, s):
        self.text += s

    def flush(self):
        pass


def test_bar_without_a_terminal_writes_a_short_line_per_whole_percent():
    p = Pipe()
    bar = render.Progress("log usage", stream=p)
    for pct in (0.2, 0.7, 1.30000000000001, 1.9, 2.5):
        bar.update(pct, "ACTIVE 3/4096 chunks " + "x" * 100)
    lines = p.text.splitlines()
    assert [ln.split()[2] for ln in lines] == ["0.2%", "1.3%", "2.5%"], lines
    assert all(len(ln) <= 79 for ln in lines), lines


def test_bar_without_a_terminal_ends_with_the_last_state_even_at_the_same_percent():
    # a copy polled at 100 % while its last slices land, then COMPLETED: the script reading the
    # lines must see how it ended
    p = Pipe()
    bar = render.Progress("sd2", stream=p)
    bar.update(58.8, "copy sd0 → sd2 RUNNING")
    bar.update(100, "copy sd0 → sd2 RUNNING")
    bar.update(100, "copy sd0 → sd2 COMPLETED")
    bar.done("done")
    assert p.text.splitlines() == ["sd2 58.8% copy sd0 → sd2 RUNNING", "sd2 100% copy sd0 → sd2 RUNNING",
                                   "sd2 100% copy sd0 → sd2 COMPLETED", "done"], p.text


def test_bar_without_a_terminal_does_not_repeat_its_last_line_at_the_end():
    p = Pipe()
    bar = render.Progress("log usage", stream=p)
    bar.update(5, "ACTIVE 3/64 chunks")
    bar.update(5, "ACTIVE 3/64 chunks")      # a watch stopped by --count while nothing moved
    bar.done("snapshot ACTIVE")
    assert p.text.splitlines() == ["log usage 5% ACTIVE 3/64 chunks", "snapshot ACTIVE"], p.text


def test_lop_wait_on_a_terminal_redraws_one_line_and_json_gives_one_sample_per_line(board):
    master, tty = terminal(80)
    url = "socket://%s:%d" % tuple(board.console)
    p = subprocess.run([RAIDBOARD, "--port", url, "lop", "start", "check", "sd0", "--wait", "--interval", "0.05"],
                       stdout=subprocess.PIPE, stderr=tty, text=True, timeout=120,
                       env=dict(os.environ, RAIDBOARD_PORT=""))
    tty.close()
    written = read_all(master)
    os.close(master)
    assert p.returncode == 0, written
    bar, _, rest = written.partition("\n")
    frames = drawn(bar)
    assert frames and all(len(f) <= 79 for f in frames), frames
    assert all(f.startswith("sd0 [") and f.endswith("check sd0 RUNNING") or "COMPLETED" in f for f in frames), frames
    assert rest.strip() == "done", rest
    # --json: one object per sample, each a whole line, percentages rounded
    out, _ = rb(board, "--json", "lop", "start", "check", "sd0", "--wait", "--interval", "0.05")
    samples = answers(out)
    assert samples and all("lops" in s for s in samples), out
    assert samples[-1]["lops"][0]["state"] == "COMPLETED" and samples[-1]["lops"][0]["percent"] == 100
    assert not LONG_PCT.search(out.replace('"', "") + "%"), out


def test_lop_status_is_a_table_with_a_history_and_its_times(board):
    rb(board, "lop", "start", "check", "sd0", "--wait", "--interval", "0.05")
    text, _ = rb(board, "lop", "status")
    head, _, history = text.partition("\nhistory:\n")
    assert head.splitlines()[0] == "no long operation running", text
    rows = history.splitlines()
    assert rows[0].split() == ["OPERATION", "DRIVES", "STATE", "DONE", "RATE", "STARTED", "ENDED"], text
    cells = rows[1].split()
    assert cells[:4] == ["check", "sd0", "COMPLETED", "100%"], text
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", cells[5]), text
    assert re.fullmatch(r"(\d{4}-\d\d-\d\dT)?\d\d:\d\d:\d\d", cells[6]), text
    assert all(len(r) <= 80 for r in rows), text
    js = rbj(board, "lop", "status")
    assert js["lops"][0]["finished"] >= js["lops"][0]["started"]
    # and no percentage the CLI prints, in text or JSON, has more than one decimal
    rb(board, "snapshot", "start", "sd0")
    texts = [rb(board, *argv)[0] for argv in (["status"], ["lop", "status"], ["snapshot", "status"])]
    texts.append(rb(board, "snapshot", "watch", "--count", "1")[1])
    for text in texts:
        assert not LONG_PCT.search(text), text
    for answer in (rbj(board, "status"), rbj(board, "lop", "status"), rbj(board, "snapshot", "status")):
        for o in answer.get("lops", []) + [answer.get("snapshot", answer)]:
            for key in ("percent", "usage_pct"):
                if key in o:
                    assert len(repr(o[key]).partition(".")[2]) <= 1, (key, o)


def test_history_entries_without_times_show_a_dash():
    # a lop.state written before history entries kept their times
    text = render.lops_table([{"op": "copy", "sd": 0, "to": 2, "state": "COMPLETED", "percent": 100}])
    assert text.splitlines()[-1].split() == ["copy", "sd0", "→", "sd2", "COMPLETED", "100%", "-", "-", "-"], text


def test_no_percentage_anywhere_has_more_than_one_decimal():
    samples = [t / 10 for t in range(1001)] + [8.699999999999999, 0.30000000000000004, 99.99, 12.345, 100, 0]
    for v in samples:
        op = {"op": "copy", "sd": 1, "to": 2, "state": "RUNNING", "percent": v, "rate": 50, "started": 0}
        texts = [render.lop_line(op), render.lops_table([op]),
                 render.snapshot_text({"state": "ACTIVE", "primary": 0, "log": 1, "usage_pct": v})]
        p = Pipe()
        render.Progress("sd1", stream=p).update(v, render.lop_what(op))
        texts.append(p.text)
        for t in texts:
            assert not LONG_PCT.search(t), (v, t)
        assert json.dumps(render.jsonable({"lops": [dict(op)]})).count(".") <= 1


def test_a_board_sending_no_number_for_a_percentage_draws_0_and_says_so():
    for bad in ("abc", None, float("nan"), float("inf"), True, [1]):
        p = Pipe()
        bar = render.Progress("sd0", stream=p)
        bar.update(bad, "check sd0 RUNNING")
        assert p.text == "sd0 0% check sd0 RUNNING\n", (bad, p.text)
        op = {"op": "check", "sd": 0, "state": "RUNNING", "percent": bad}
        assert render.pct_text(bad) == "?" and render.lop_line(op).endswith(" ?%") == (bad is not None)
        row = render.lops_table([op]).splitlines()[1].split()
        assert row == ["check", "sd0", "RUNNING", "?%" if bad is not None else "-", "-", "-", "-"], (bad, row)
