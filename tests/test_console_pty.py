"""A real terminal program (picocom, else screen) under tmux on the console pty: the host side makes
the pty, the firmware gets its master as stdio (`--console stdio`), picocom opens /dev/pts/N, and
the test reads what a person would see with `tmux capture-pane`."""
import os
import shutil
import subprocess
import time
import tty

import pytest

from harness import MICROPYTHON, ROOT, in_ci, need_tool, write_board


def terminal_program():
    if shutil.which("picocom"):
        return "picocom"
    if shutil.which("screen"):
        return "screen"
    if in_ci():
        pytest.fail("neither picocom nor screen is installed; .ci/run must install picocom")
    pytest.skip("neither picocom nor screen installed (apt-get install picocom)")


@pytest.fixture
def pty_board(tmp_path):
    path, d = write_board(tmp_path)
    state = tmp_path / "state"
    state.mkdir()
    master, slave = os.openpty()
    tty.setraw(slave)
    log = open(state / "firmware.log", "ab")
    proc = subprocess.Popen(
        [MICROPYTHON, "-X", "heapsize=%dK" % d["heap_kb"], str(ROOT / "firmware" / "main.py"), str(path),
         str(state), "--console", "stdio", "--iscsi", "127.0.0.1:0,127.0.0.1:0"],
        stdin=master, stdout=master, stderr=log, start_new_session=True)
    os.close(master)
    log.close()
    # the READY line comes out of the UART like everything the firmware prints on stdout
    seen = b""
    deadline = time.time() + 60
    import select
    while b"RAIDBOARD READY" not in seen or not seen.split(b"RAIDBOARD READY", 1)[1].count(b"\n"):
        assert time.time() < deadline and proc.poll() is None, (state / "firmware.log").read_text()[-2000:]
        if select.select([slave], [], [], 0.1)[0]:
            seen += os.read(slave, 65536)
    yield proc, os.ttyname(slave), state
    proc.kill()
    proc.wait()
    os.close(slave)


class Tmux:
    def __init__(self, name, cmd):
        self.name = name
        subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "80", "-y", "24", cmd], check=True)
        subprocess.run(["tmux", "set-option", "-t", name, "status", "off"], check=True)

    def screen(self):
        return subprocess.run(["tmux", "capture-pane", "-p", "-t", self.name], capture_output=True,
                              text=True).stdout

    def keys(self, *k):
        subprocess.run(["tmux", "send-keys", "-t", self.name] + list(k), check=True)

    def wait(self, text, timeout=15):
        end = time.time() + timeout
        while time.time() < end:
            s = self.screen()
            if text in s:
                return s
            time.sleep(0.1)
        raise AssertionError("%r not in the tmux pane:\n%s" % (text, self.screen()))

    def kill(self):
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True)


def test_terminal_program_on_the_console_pty(pty_board):
    need_tool("tmux", "tmux")
    prog = terminal_program()
    proc, dev, state = pty_board
    # --nolock: the lock of a picocom still exiting must not stop the next one
    cmd = ("picocom -q --nolock -b 115200 %s" if prog == "picocom" else "screen %s 115200") % dev
    t = Tmux("rbpty%d" % os.getpid(), cmd)
    try:
        time.sleep(0.5)
        t.keys("C-l")                       # redraw: whatever came before the program opened the pty
        s = t.wait("MONITOR MODE")
        assert "|SD0 RAID5 ONLINE    |" in s and "|SNAP IDLE           |" in s, s
        t.keys("Enter")
        t.wait("== MAIN MENU")
        for _ in range(4):
            t.keys("Down")
        t.wait("|>ADMINISTRATION     |")
        t.keys("Enter")
        t.wait("== MAIN MENU > ADMINISTRATION")
        t.keys("Enter")
        t.wait("PRIMARY DRIVE")
        t.keys("Enter")                     # SD0
        s = t.wait("DONE: SNAPSHOT STARTED")
        assert "|SNAPSHOT STARTED    |" in s, s
        for _ in range(3):
            t.keys("Escape")
            time.sleep(0.3)
        s = t.wait("MONITOR MODE")
        t.wait("|SNAP ACTIVE LOG 0%  |")
        assert "ACTIVE   primary SD0   log SD1" in t.screen()
    finally:
        t.kill()
    # the terminal program is gone; the next one finds the console working
    t = Tmux("rbpty2%d" % os.getpid(), cmd)
    try:
        time.sleep(0.5)
        t.keys("C-l")
        t.wait("|SNAP ACTIVE LOG 0%  |")
    finally:
        t.kill()
    assert proc.poll() is None


def test_a_terminal_program_sees_the_monitor_without_a_key(pty_board, tmp_path):
    # picocom flushes the line as it opens it: the board notices the line settings it makes and
    # draws the whole screen then, with no key pressed; a CLI run in between changes nothing
    need_tool("tmux", "tmux")
    if terminal_program() != "picocom":
        pytest.skip("picocom not installed")
    import sys
    from pathlib import Path
    proc, dev, state = pty_board
    rb = str(Path(sys.executable).with_name("raidboard"))
    cmd = "picocom -q --nolock -b 115200 %s" % dev
    for round in range(2):
        t = Tmux("rbdraw%d%d" % (round, os.getpid()), cmd)
        try:
            s = t.wait("MONITOR MODE")
            assert "|SD0 RAID5 ONLINE    |" in s and "|SNAP IDLE           |" in s, s
        finally:
            t.kill()
        # the line protocol on the same pty is not disturbed by the drawing (once picocom is gone)
        for _ in range(100):
            p = subprocess.run([rb, "--port", dev, "status"], capture_output=True, text=True, timeout=60,
                               stdin=subprocess.DEVNULL)
            if "in use by picocom" not in p.stderr:
                break
            time.sleep(0.1)
        assert p.returncode == 0 and "DAC960SX" in p.stdout, p.stderr
    assert proc.poll() is None


def test_the_pty_console_needs_the_password_as_the_tcp_one_does(pty_board, tmp_path):
    # one access model for every console endpoint: the line protocol on the pty refuses requests
    # before the login, and the CLI logs in with the password from its environment
    import sys
    from pathlib import Path
    proc, dev, state = pty_board
    rb = str(Path(sys.executable).with_name("raidboard"))
    env = {k: v for k, v in os.environ.items() if k != "RAIDBOARD_PASSWORD"}
    (tmp_path / "pw").write_text("pty-password\n")

    def run(*argv, password=None):
        e = dict(env, RAIDBOARD_PASSWORD=password) if password else env
        return subprocess.run([rb, "--port", dev] + list(argv), capture_output=True, text=True, timeout=60,
                              env=e, stdin=subprocess.DEVNULL)
    assert run("password", "set", "--new-password-file", str(tmp_path / "pw")).returncode == 0
    p = run("status")
    assert p.returncode == 1 and "PASSWORD_REQUIRED" in p.stderr, p.stderr
    p = run("status", password="pty-password")
    assert p.returncode == 0 and "DAC960SX" in p.stdout, p.stderr
    assert proc.poll() is None
