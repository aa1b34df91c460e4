"""`raidboard console` and `boot --attach` in a real terminal: tmux runs them, capture-pane reads the screen.

tmux is installed by .ci/run; without it these tests skip, except under CI=true where they fail.
"""
import json
import os
import shutil
import subprocess
import sys
import time
from shlex import quote
from pathlib import Path

import pytest
from harness import answer

RAIDBOARD = str(Path(sys.executable).with_name("raidboard"))
REPO = Path(__file__).resolve().parents[1]
BOARD = str(REPO / "boards" / "dac960sx.json")


def need_tmux():
    if shutil.which("tmux"):
        return
    if os.environ.get("CI") == "true":
        pytest.fail("tmux is missing but CI=true: .ci/run must install it (apt-get install tmux)")
    pytest.skip("tmux is not installed (apt-get install tmux); it runs the console in a real terminal")


class Tmux:
    """One private tmux server (own socket) with one 80x24 window running `cmd`."""

    def __init__(self, tmp_path, cmd):
        need_tmux()
        self.sock = str(tmp_path / "tmux.sock")
        self.run("new-session", "-d", "-s", "t", "-x", "80", "-y", "24", cmd + "; echo EXIT=$?; sleep 60")

    def run(self, *argv):
        return subprocess.run(["tmux", "-S", self.sock] + list(argv), capture_output=True, text=True,
                              timeout=20, check=True).stdout

    def keys(self, *keys):
        self.run("send-keys", "-t", "t", "--", *keys)

    def screen(self):
        return self.run("capture-pane", "-p", "-t", "t")

    def wait_for(self, text, timeout=15):
        deadline = time.monotonic() + timeout
        while True:
            s = self.screen()
            if text in s:
                return s
            if time.monotonic() > deadline:
                raise AssertionError("%r did not appear on the screen:\n%s" % (text, s))
            time.sleep(0.1)

    def title(self):
        return self.run("display-message", "-p", "-t", "t", "#{pane_title}").strip()

    def close(self):
        subprocess.run(["tmux", "-S", self.sock, "kill-server"], capture_output=True, timeout=20)


def rb(*argv, rc=0):
    p = subprocess.run([RAIDBOARD] + [str(a) for a in argv], capture_output=True, text=True, timeout=60)
    assert p.returncode == rc, (argv, p.returncode, p.stdout, p.stderr)
    return p.stdout, p.stderr


def test_console_attach_over_tcp(board, tmp_path):
    url = "socket://%s:%d" % tuple(board.console)
    t = Tmux(tmp_path, "%s console --port %s" % (quote(RAIDBOARD), url))
    try:
        s = t.wait_for("MONITOR")
        assert "System drives" in s or "STATUS" in s
        assert "Ctrl-] detaches" in t.title() and url in t.title()
        t.wait_for("|SD0 ")           # the LCD idles on the first drive
        t.keys("Down")                 # the LCD's down button: the next drive
        t.wait_for("|SD1 ")
        # while a person holds the console, the CLI is told it is in use (exit 3), not left hanging
        _, err = rb("--port", url, "status", rc=3)
        assert "in use" in err
        t.keys("C-]")
        s = t.wait_for("EXIT=0")
        assert "Detached from" in s
        # the console is free again for the CLI
        assert answer(rb("--port", url, "--json", "status")[0])["model"].startswith("DAC960")
    finally:
        t.close()


def test_console_attach_over_pty(tmp_path):
    state = tmp_path / "state"
    ep = answer(rb("--json", "boot", BOARD, state, "--console", "pty", "--iscsi",
                       "127.0.0.1:0,127.0.0.1:0", "--detach")[0])
    t = None
    try:
        # the CLI leaves line mode when it is done, so the person finds the menus, not protocol text
        rb("--state", state, "lun", "map", "1/5", "sd0")
        t = Tmux(tmp_path, "%s console --state %s" % (quote(RAIDBOARD), quote(str(state))))
        t.wait_for("MONITOR")
        assert ep["console"] in t.title()
        t.wait_for("P1L5")             # the status screen shows the map the CLI made
        t.keys("C-]")
        t.wait_for("EXIT=0")
    finally:
        if t:
            t.close()
        rb("stop", "--state", state)


def test_128_kib_each_way_through_the_pty_console(tmp_path):
    # the line protocol's CDB pass-through carries 128 KiB each way over the pty (hex: 256 KiB of
    # text), read by the firmware as it arrives rather than a byte at a time
    state = tmp_path / "state"
    rb("--json", "boot", BOARD, state, "--console", "pty", "--iscsi", "127.0.0.1:0,127.0.0.1:0", "--detach")
    try:
        data = os.urandom(128 * 1024)
        (tmp_path / "in.bin").write_bytes(data)
        out = answer(rb("--state", state, "--json", "cdb", "0/0", "2A000000001000010000",
                            "--data-file", tmp_path / "in.bin")[0])
        assert out["status"] == 0, out
        rb("--state", state, "cdb", "0/0", "28000000001000010000", "--out", tmp_path / "out.bin")
        assert (tmp_path / "out.bin").read_bytes() == data
    finally:
        rb("stop", "--state", state)


def test_boot_attach_then_detach_stops_the_board(tmp_path):
    state = tmp_path / "state"
    notes = tmp_path / "stderr"      # what boot says before the console's screen covers it
    t = Tmux(tmp_path, "%s boot %s %s --console tcp:127.0.0.1:0 --iscsi 127.0.0.1:0,127.0.0.1:0 --attach 2>%s"
             % (quote(RAIDBOARD), quote(BOARD), quote(str(state)), quote(str(notes))))
    try:
        t.wait_for("MONITOR")
        assert "socket://127.0.0.1:" in t.title()
        ep = json.loads((state / "endpoints.json").read_text())
        pid = ep["pid"]
        os.kill(pid, 0)
        # with port 0 the only place a person learns the portals: printed with their real ports
        said = notes.read_text()
        assert "portals: %s" % " ".join(ep["portals"]) in said and ":0 " not in said + " "
        assert "management: %s" % ep["management"] in said
        t.keys("C-]")
        t.wait_for("EXIT=0")
        deadline = time.monotonic() + 10
        while Path("/proc/%d" % pid).exists() and time.monotonic() < deadline:
            if Path("/proc/%d/stat" % pid).read_text().rsplit(")", 1)[1].split()[0] == "Z":
                break
            time.sleep(0.05)
        assert not (state / "endpoints.json").exists()
    finally:
        t.close()
        rb("stop", "--state", state)
