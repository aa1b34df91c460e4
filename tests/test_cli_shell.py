"""`raidboard shell`: commands from stdin, completion from the board's own names, and the
interactive prompt_toolkit shell in a real terminal (tmux) with Tab completion and history."""
import json
import subprocess
import sys
from pathlib import Path

from raidboard import cli, shell
from raidboard.session import Session
from test_cli_console import Tmux, quote
from harness import answer

RAIDBOARD = str(Path(sys.executable).with_name("raidboard"))


def url(board):
    return "socket://%s:%d" % tuple(board.console)


def test_shell_reads_commands_from_stdin(board):
    script = "\n".join([
        "# comments and blank lines are skipped",
        "",
        "lun map 1/6 sd0",
        "--json lun list",
        "sd delete sd7 --force",   # refused: the shell goes on
        "bogus",                   # usage error: the shell goes on
        "snapshot status --json",
        "exit",
        "status",                  # after exit: not run
    ]) + "\n"
    p = subprocess.run([RAIDBOARD, "--port", url(board), "shell"], input=script, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "port 1 LUN 6 -> sd0" in p.stdout
    # the two JSON documents in the output parse
    dec = json.JSONDecoder()
    docs, text = [], p.stdout
    i = text.index("{")
    while i >= 0:
        obj, end = dec.raw_decode(text, i)
        docs.append(obj)
        i = text.find("{", end)
    data = [d["Controllers"][0]["Response Data"] for d in docs]
    assert [d["Controllers"][0]["Command Status"]["Status"] for d in docs] == ["Success", "Success"]
    assert [m["sd"] for m in data[0]["map"] if (m["port"], m["lun"]) == (1, 6)] == [0]
    assert data[1]["state"] == "IDLE"
    assert "NO_SUCH_DRIVE" in p.stderr and "bogus" in p.stderr
    assert "board:" not in p.stdout  # `status` after exit did not run


def test_completion_uses_board_names(board):
    args = cli.parser().parse_args(["--port", url(board), "shell"])
    sess = Session(args)
    try:
        tree = shell.command_tree(cli.parser())
        names = shell.BoardNames(sess)
        c = lambda line: shell.complete(tree, names, line)  # noqa: E731
        assert "snapshot" in c("sn") and "status" in c("st")
        assert c("snapshot s") == ["start", "status", "stop"]
        assert c("sd delete ") == ["sd0", "sd1"]          # the factory board's drives
        assert c("log set sd") == ["sd0", "sd1"]
        assert c("lun unmap 0") == ["0/0", "0/1"] + ["0/%d" % n for n in range(2, 8)]
        assert c("lun map 1/0 s") == ["sd0", "sd1"]
        assert c("disk fail ")[:6] == ["0", "1", "2", "3", "4", "5"] and "1:1" in c("disk fail 1:")
        assert c("sd policy sd0 w") == ["wb", "wt", "write-back", "write-through"]
        assert c("sd create --r") == ["--raid"]
        assert c("cdb 0/0 12000000240000 --d") == ["--data", "--data-file"]
        assert "shell" not in c("") and "boot" not in c("")
        # the long operations by the names the board knows them
        assert c("lop start ") == ["copy", "resync", "rebuild", "init", "check", "rate"]
        assert c("lop start co") == ["copy"]
        # the log drive (sd1) is never a snapshot's primary
        assert c("snapshot start ") == ["sd0"] and c("snapshot start sd") == ["sd0"]
        # StorCLI paths, from the board's drives, slots and LUNs, then the verbs each takes
        assert c("/c0/v") == ["/c0/vall", "/c0/v0", "/c0/v1"]
        assert c("/c0/e1/s") == ["/c0/e1/s0", "/c0/e1/s1"]
        assert c("/c0/p1/l") == ["/c0/p1/l0", "/c0/p1/l1"] + ["/c0/p1/l%d" % n for n in range(2, 8)]
        assert c("/c0/v1 ") == ["show", "del", "set"] and c("/c0/e0/s2 f") == ["fail"]
        assert c("/c0/vall ") == ["show"] and c("/c0 s") == ["show", "set"]
        # names follow the board: a new drive appears after the next refresh
        sess.call("lun_unmap", {"port": 0, "lun": 1})
        sess.call("lun_unmap", {"port": 1, "lun": 1})
        names.stale = True
        assert c("lun unmap ")[:2] == ["0/0", "1/0"]
    finally:
        sess.close()


def test_interactive_shell_in_a_terminal(board, tmp_path):
    hist = tmp_path / "history"
    t = Tmux(tmp_path, "RAIDBOARD_HISTORY=%s %s --port %s shell" % (quote(str(hist)), quote(RAIDBOARD), url(board)))
    try:
        t.wait_for("raidboard>")
        assert "connected to DAC960SX" in t.screen()
        t.keys("sn", "Tab")
        t.wait_for("raidboard> snapshot")
        t.keys(" sta", "Tab")              # start / status: Tab lists both
        t.wait_for("status")
        t.keys("C-u", "lun unm", "Tab")
        t.wait_for("raidboard> lun unmap")
        t.keys("C-u", "lun map 1/4 s", "Tab")
        t.wait_for("sd1")                  # the board's drives are offered
        t.keys("C-u", "lun map 1/4 sd1", "Enter")
        t.wait_for("port 1 LUN 4 -> sd1")
        t.keys("--json snapshot status", "Enter")
        t.wait_for('"state": "IDLE"')
        # history: Up brings back the last command
        t.keys("Up")
        t.wait_for("raidboard> --json snapshot status")
        t.keys("C-u", "exit", "Enter")
        t.wait_for("EXIT=0")
        assert "lun map 1/4 sd1" in hist.read_text()
    finally:
        t.close()
    lm = answer(subprocess.run([RAIDBOARD, "--port", url(board), "--json", "lun", "list"],
                                   capture_output=True, text=True, timeout=30).stdout)["map"]
    assert [m["sd"] for m in lm if (m["port"], m["lun"]) == (1, 4)] == [1]


def test_shell_help_and_completion_in_a_terminal(board, tmp_path):
    t = Tmux(tmp_path, "RAIDBOARD_HISTORY=%s %s --port %s shell" % (quote(str(tmp_path / "h")), quote(RAIDBOARD),
                                                                   url(board)))
    try:
        t.wait_for("raidboard>")
        t.keys("help", "Enter")
        screen = t.wait_for("shell: help [COMMAND]")
        assert "  status " in screen and "  lop " in screen
        assert "  boot " not in screen and "  shell " not in screen     # not run here
        t.keys("C-l", "lop start co", "Tab")
        t.wait_for("raidboard> lop start copy")
        t.keys("C-u", "snapshot start ", "Tab")      # one candidate: sd0, never the log drive sd1
        t.wait_for("raidboard> snapshot start sd0")
        t.keys("C-u", "/c0/v1 sh", "Tab")
        t.wait_for("raidboard> /c0/v1 show")
        t.keys("C-u", "boot x y", "Enter")
        t.wait_for("start a board from your system's shell")
        t.keys("exit", "Enter")
        t.wait_for("EXIT=0")
    finally:
        t.close()
