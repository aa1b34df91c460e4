"""`raidboard boot` / `stop`: the real firmware on ephemeral loopback ports, in a temp state dir."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from harness import answer

RAIDBOARD = str(Path(sys.executable).with_name("raidboard"))
REPO = Path(__file__).resolve().parents[1]
BOARD = str(REPO / "boards" / "dac960sx.json")
EPHEMERAL = ["--console", "tcp:127.0.0.1:0", "--iscsi", "127.0.0.1:0,127.0.0.1:0"]


def rb(*argv, rc=0, timeout=90):
    p = subprocess.run([RAIDBOARD] + [str(a) for a in argv], capture_output=True, text=True, timeout=timeout,
                       env=dict(os.environ, RAIDBOARD_PORT=""))
    assert p.returncode == rc, "raidboard %s -> %d (want %d)\nstdout:\n%s\nstderr:\n%s" % (
        " ".join(map(str, argv)), p.returncode, rc, p.stdout, p.stderr)
    return p.stdout, p.stderr


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path("/proc/%d/stat" % pid).read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_boot_detach_status_stop(tmp_path):
    state = tmp_path / "state"
    pidfile = tmp_path / "board.pid"
    out, _ = rb("--json", "boot", BOARD, state, *EPHEMERAL, "--detach", "--pid-file", pidfile)
    ep = answer(out)
    pid = ep["pid"]
    try:
        assert alive(pid)
        assert int(pidfile.read_text()) == pid
        assert ep["console"].startswith("socket://127.0.0.1:") and not ep["console"].endswith(":0")
        assert len(ep["portals"]) == 2 and all(not p.endswith(":0") for p in ep["portals"])
        assert json.loads((state / "endpoints.json").read_text())["pid"] == pid
        # later commands find the board by its state directory
        st = answer(rb("--json", "--state", state, "status")[0])
        assert st["model"] == "DAC960SX"
        # a second boot into the same state is refused: one board per state directory
        _, err = rb("boot", BOARD, state, *EPHEMERAL, "--detach", rc=4)
        assert "already runs" in err
        out, _ = rb("--json", "stop", "--state", state)
        assert answer(out) == {"stopped": True, "pid": pid}
        assert not alive(pid)
        assert not (state / "endpoints.json").exists() and not pidfile.exists()
        # stopping again is harmless, and says so
        out, _ = rb("--json", "stop", "--state", state)
        assert answer(out)["stopped"] is False
        # after a stop, --state says the board is gone (exit 3)
        _, err = rb("--state", state, "status", rc=3)
        assert "no board recorded" in err
        # the configuration survives a reboot: boot again, change it, stop, boot, read it back
        rb("boot", BOARD, state, *EPHEMERAL, "--detach")
        rb("--state", state, "lun", "map", "1/7", "sd0")
        rb("stop", "--state", state)
        rb("boot", BOARD, state, *EPHEMERAL, "--detach")
        lm = answer(rb("--json", "--state", state, "lun", "list")[0])["map"]
        assert [m["sd"] for m in lm if (m["port"], m["lun"]) == (1, 7)] == [0]
    finally:
        rb("stop", "--state", state)
    rb("stop", "--pid-file", tmp_path / "nonexistent.pid", rc=2)


def test_boot_pty_console(tmp_path):
    state = tmp_path / "state"
    out, _ = rb("--json", "boot", BOARD, state, "--console", "pty", "--iscsi", "127.0.0.1:0,127.0.0.1:0", "--detach")
    ep = answer(out)
    try:
        assert ep["console"].startswith("/dev/pts/")
        # by the /dev/pts path, and by the state directory
        st = answer(rb("--json", "--port", ep["console"], "status")[0])
        assert st["model"] == "DAC960SX"
        assert answer(rb("--json", "-s", state, "disk", "list")[0])["disks"]
        # several clients one after the other on the same pty
        for _ in range(3):
            rb("--port", ep["console"], "lun", "list")
        # a board definition whose UART is "stdio" gets a pty without being told
        d = json.loads(Path(BOARD).read_text())
        d["console"] = "stdio"
        (tmp_path / "stdio.json").write_text(json.dumps(d))
        out, _ = rb("boot", tmp_path / "stdio.json", tmp_path / "s2", "--iscsi", "127.0.0.1:0,127.0.0.1:0",
                    "--detach")
        assert "console: /dev/pts/" in out
        rb("--port", out.split("console: ")[1].split()[0], "lun", "list")
        rb("stop", "-s", tmp_path / "s2")
    finally:
        rb("stop", "--state", state)
    assert not alive(ep["pid"])


def _as_in_a_terminal():
    # a terminal's foreground job takes SIGINT; a suite started in the background (`make test &`)
    # has it ignored, and an ignored signal stays ignored in every child
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_boot_foreground_ctrl_c_stops_the_board(tmp_path):
    state = tmp_path / "state"
    p = subprocess.Popen([RAIDBOARD, "--json", "boot", BOARD, str(state)] + EPHEMERAL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                         preexec_fn=_as_in_a_terminal)
    try:
        line = p.stdout.readline()
        ep = answer(line)
        assert alive(ep["pid"])
        assert answer(rb("--json", "--port", ep["console"], "status")[0])["model"] == "DAC960SX"
        os.killpg(p.pid, signal.SIGINT)  # what Ctrl-C in its terminal does
        assert p.wait(timeout=30) == 0
        deadline = time.monotonic() + 10
        while alive(ep["pid"]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(ep["pid"])
        assert not (state / "endpoints.json").exists()
    finally:
        if p.poll() is None:
            p.kill()
        p.wait()
        rb("stop", "--state", state)


def test_boot_errors(tmp_path):
    _, err = rb("boot", tmp_path / "nope.json", tmp_path / "s", rc=4)
    assert "no such file" in err
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    _, err = rb("boot", bad, tmp_path / "s", rc=4)
    assert "not JSON" in err
    # a board definition the firmware refuses: its message reaches the user, naming the field
    d = json.loads(Path(BOARD).read_text())
    d["drive_channels"] = "three"
    bad.write_text(json.dumps(d))
    _, err = rb("boot", bad, tmp_path / "s", *EPHEMERAL, rc=4)
    assert "drive_channels" in err
    _, err = rb("boot", BOARD, tmp_path / "s", "--console", "serial0", rc=2)
    assert "tcp:HOST:PORT" in err
    _, err = rb("boot", BOARD, tmp_path / "s", "--detach", "--attach", rc=2)
    assert "exclude" in err


def test_a_port_in_use_names_the_endpoint_and_the_option_that_moves_it(tmp_path):
    import socket
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    held.listen(1)
    busy = "127.0.0.1:%d" % held.getsockname()[1]
    try:
        for n, (args, words) in enumerate(((["--console", "tcp:" + busy, "--iscsi", "127.0.0.1:0,127.0.0.1:0"],
                             ("the console (tcp:%s)" % busy, "--console tcp:HOST:PORT")),
                            (["--console", "tcp:127.0.0.1:0", "--iscsi", "127.0.0.1:0," + busy],
                             ("the iSCSI portal of host port 1 (%s)" % busy, "host_ports[1].portal")),
                            (EPHEMERAL + ["--management", "tcp:" + busy],
                             ("the management endpoint (tcp:%s)" % busy, "--management tcp:HOST:PORT")))):
            _, err = rb("boot", BOARD, tmp_path / ("state%d" % n), *args, "--detach", rc=4)
            assert "in use by another program" in err and "Traceback" not in err, err
            for w in words:
                assert w in err, err
    finally:
        held.close()
    for bad in ("udp:127.0.0.1:1", "tcp:127.0.0.1", "tcp:127.0.0.1:65536", "tcp::1"):
        _, err = rb("boot", BOARD, tmp_path / "bad", *EPHEMERAL, "--management", bad, "--detach", rc=2)
        assert "--management %r: use tcp:HOST:PORT" % bad in err
