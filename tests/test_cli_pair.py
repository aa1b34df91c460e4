"""A dual-active pair driven with the `raidboard` command as a person would (host/README.md "A
dual-active pair", firmware/control/pair.md): boot both controllers, read the pair, move a drive,
fail a controller and keep working through the survivor, restart it and watch the failback, cut
the link, stop both. Every answer is read in StorCLI's JSON frame."""
import json
import os
import signal
import subprocess
import time

import pytest

from harness import write_pair
from test_cli import RAIDBOARD, rb


class CLI:
    """`raidboard --state STATE …` for one booted pair."""

    def __init__(self, tmp_path):
        self.board, _ = write_pair(tmp_path, populated_slots=8)
        self.state = tmp_path / "state"
        self.booted = set()       # every firmware pid, for the teardown

    def run(self, *argv, rc=0):
        p = subprocess.run([RAIDBOARD, "--state", str(self.state)] + [str(a) for a in argv], capture_output=True,
                           text=True, timeout=90, stdin=subprocess.DEVNULL, env=dict(os.environ, RAIDBOARD_PORT=""))
        assert p.returncode == rc, "raidboard %s -> %d (want %d)\nstdout:\n%s\nstderr:\n%s" % (
            " ".join(map(str, argv)), p.returncode, rc, p.stdout, p.stderr)
        return p.stdout, p.stderr

    def doc(self, *argv, rc=0):
        """The Command Status and Response Data of the one JSON document a command prints."""
        out, _ = self.run("--json", *argv, rc=rc)
        [c] = json.loads(out)["Controllers"]
        return c["Command Status"], c["Response Data"]

    def json(self, *argv):
        return self.doc(*argv)[1]

    def boot(self, *more):
        out, _ = self.run("boot", self.board, self.state, "--detach", *more)
        self.booted.update(self.pids())
        return out

    def pids(self):
        return [c.get("pid") for c in json.loads((self.state / "endpoints.json").read_text())["controllers"]]

    def wait_pair(self, test, what, timeout=30):
        """`pair status` until test(controllers) holds (the timeout only bounds a hang)."""
        deadline = time.time() + timeout
        while True:
            ctls = self.json("pair", "status")["controllers"]
            if test(ctls):
                return ctls
            assert time.time() < deadline, "%s: %s" % (what, ctls)
            time.sleep(0.1)


@pytest.fixture
def cli(tmp_path):
    c = CLI(tmp_path)
    c.boot()
    yield c
    for pid in c.booted:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_pair_status_ownership_params_and_both_stopped(cli):
    ctls = cli.json("pair", "status")["controllers"]
    assert [(c["controller"], c["running"], c["mode"], c["partner"], c["serving"]) for c in ctls] == [
        (0, True, "ACTIVE", "UP", [0]), (1, True, "ACTIVE", "UP", [1])]
    assert all(c["link"]["up"] and c["failback"] == "automatic" for c in ctls)
    text, _ = cli.run("pair", "status")
    assert "controller 1 (pid %d): ACTIVE, serving its own drives and ports" % cli.pids()[1] in text
    # one endpoint named with --port: that controller's view only, checked against --controller
    c1 = json.loads((cli.state / "endpoints.json").read_text())["controllers"][1]["management"]
    p = subprocess.run([RAIDBOARD, "--port", c1, "--json", "pair", "status"], capture_output=True, text=True, timeout=60)
    assert [c["controller"] for c in json.loads(p.stdout)["Controllers"][0]["Response Data"]["controllers"]] == [1]
    p = subprocess.run([RAIDBOARD, "--port", c1, "--controller", "0", "status"], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 2 and "is controller 1's endpoint" in p.stderr

    assert cli.json("sd", "owner", "sd1", "1") == {"sd": 1, "affinity": 1, "owner": 1}
    status, st = cli.doc("status")
    assert status["Controller"] == 0 and st["pair"]["controller"] == 0
    assert [(d["sd"], d["owner"]) for d in st["pair"]["drives"]] == [(0, 0), (1, 1)]
    text, _ = cli.run("status")
    assert "pair: controller 0 ACTIVE, serving its own drives and ports; partner UP" in text
    assert "ownership: sd0 → controller 0, sd1 → controller 1" in text

    # StorCLI's /c1 is controller 1
    status, st = cli.doc("/c1", "show")
    assert status["Controller"] == 1 and st["pair"]["controller"] == 1

    # long operations name the controller that runs them, the partner's too
    cli.run("lop", "start", "check", "sd1")
    ops = cli.json("lop", "status")["lops"]
    assert [(o["sd"], o["controller"]) for o in ops] == [(1, 1)]

    assert cli.json("params", "--failback", "manual")["failback"] == "manual"
    assert cli.json("/c1", "show")["params"]["failback"] == "manual"      # the pair's one configuration
    assert cli.run("params")[0] == "autorebuild: on\nfailback: manual\n"

    # refusals: a controller that does not exist, a drive that does not, nothing asked without a terminal
    assert "invalid choice: 2" in cli.run("sd", "owner", "sd0", "2", rc=2)[1]
    status, _ = cli.doc("sd", "owner", "sd5", "1", rc=1)
    assert status["Error Code"] == "NO_SUCH_DRIVE"
    for words in (("pair", "fail", "1"), ("pair", "link", "down")):
        status, _ = cli.doc(*words, rc=8)
        assert status["Error Code"] == "NOT_CONFIRMED"
    assert "there is no controller 2" in cli.run("/c2", "show", rc=2)[1]
    _, err = cli.run("boot", cli.board, cli.state, "--detach", "--controller", "1", rc=4)
    assert "controller 1 already runs on %s" % cli.state in err and "--controller 1` (its partner takes over)" in err

    pids = cli.pids()
    assert sorted(cli.json("stop")["pids"]) == sorted(pids)
    assert not any(os.path.exists("/proc/%d" % p) and open("/proc/%d/stat" % p).read().split()[2] != "Z"
                   for p in pids)


def test_fail_a_controller_work_through_the_survivor_and_restart_it(cli):
    old = cli.pids()
    # a person follows both controllers' events while controller 0 fails (--seconds bounds a hang)
    follow = subprocess.Popen([RAIDBOARD, "--state", str(cli.state), "--json", "events", "-n", "1", "--follow",
                               "--seconds", "60"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert json.loads(follow.stdout.readline())["Controllers"][0]["Response Data"]["controller"] in (0, 1)
    r = cli.json("pair", "fail", "0", "--force")
    assert r["failed"] == 0 and r["survivor"] == 1 and r["serving"] == [0, 1] and r["partner"] == "FAILED"
    said = follow.stderr.readline()
    assert "controller 0 stopped answering" in said and "following the other" in said
    followed = []
    while not any("FAILOVER" in e["text"] and e["controller"] == 1 for e in followed):
        line = follow.stdout.readline()
        assert line, "the follow ended without controller 1's failover: %s" % followed
        followed.append(json.loads(line)["Controllers"][0]["Response Data"])
    follow.terminate()
    follow.communicate(timeout=60)

    # commands go to the survivor and say so on stderr
    (status, st) = cli.doc("status")
    assert status["Controller"] == 1 and st["pair"]["partner"] == "FAILED" and st["pair"]["serving"] == [0, 1]
    _, err = cli.run("sd", "list")
    assert "controller 0 of the pair in %s is not running (pid %d): talking to controller 1" % (cli.state, old[0]) in err
    ctls = cli.json("pair", "status")["controllers"]
    assert ctls[0]["running"] is False and "--controller 0 --detach" in ctls[0]["restart"]
    _, err = cli.run("--controller", "0", "status", rc=3)
    assert "controller 0 of the pair" in err and "talk to controller 1 (--controller 1)" in err
    status, _ = cli.doc("/c0", "show")          # the board's usual path: the survivor answers
    assert status["Controller"] == 1

    events = cli.json("events")["events"]
    assert any("FAILOVER" in e["text"] and e["controller"] == 1 for e in events)

    out = cli.boot("--controller", "0")
    assert "controller 0 started beside its partner" in out and "controller 1 (pid %d)" % old[1] in out
    cli.wait_pair(lambda c: c[0].get("serving") == [0] and c[1].get("serving") == [1], "automatic failback")
    events = cli.json("events", "-n", "64")["events"]
    assert {e["controller"] for e in events} == {0, 1}
    assert [e["time"] for e in events] == sorted(e["time"] for e in events)      # merged by time
    assert cli.json("stop")["stopped"] is True


def test_manual_failback_and_a_cut_link(cli):
    cli.json("params", "--failback", "manual")
    cli.json("pair", "fail", "1", "--force")
    cli.boot("--controller", "1")
    ctls = cli.wait_pair(lambda c: c[1].get("partner") == "UP", "controller 1 rejoins")
    assert ctls[1]["serving"] == [] and ctls[0]["serving"] == [0, 1]      # it waits for the command
    assert cli.json("pair", "failback") == {"started": True}
    cli.wait_pair(lambda c: c[1].get("serving") == [1], "manual failback")

    cli.json("pair", "link", "down", "--force")
    ctls = cli.wait_pair(lambda c: c[1].get("mode") == "STOOD DOWN" or not c[1]["running"], "controller 1 stands down")
    assert cli.json("pair", "link", "up")["link"] == "up"

    for pid in cli.pids():
        os.kill(pid, signal.SIGKILL)
    _, err = cli.run("status", rc=3)
    assert "neither controller of the pair in %s is running" % cli.state in err


def test_a_shell_line_goes_to_the_controller_it_names(cli):
    p = subprocess.run([RAIDBOARD, "--state", str(cli.state), "shell"], capture_output=True, text=True, timeout=60,
                       input="--json --controller 1 status\n--json status\n/c1 show J\n")
    docs, text = [], p.stdout
    while text.strip():
        doc, end = json.JSONDecoder().raw_decode(text.strip())
        docs.append(doc["Controllers"][0])
        text = text.strip()[end:]
    assert [(d["Command Status"]["Controller"], d["Response Data"]["pair"]["controller"]) for d in docs] == [
        (1, 1), (0, 0), (1, 1)]


def test_a_one_controller_board_refuses_the_pair_commands(board):
    # the shared simplex board, named with --port
    _, err = rb(board, "/c1", "show", rc=2)
    assert "there is no controller 1: this board is one controller, /c0" in err
    for words in (("pair", "status"), ("sd", "owner", "sd0", "1"), ("pair", "failback")):
        _, err = rb(board, *words, rc=1)
        assert "NOT_A_PAIR" in err and "a dual-active pair is booted from boards/dac960sx-pair.json" in err
    _, err = rb(board, "params", "--failback", "manual", rc=1)
    assert 'no controller parameter "failback"' in err
    assert "autorebuild:" in rb(board, "params")[0]


def _scripted_console(answers):
    """A console on a local socket that greets as the board does and answers the requests it
    gets with `answers` in turn (an ERR code, or None for OK): (its URL, the request lines)."""
    import socket
    import threading
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    got = []

    def serve():
        c, _ = srv.accept()
        f = c.makefile("rwb", buffering=0)
        for line in f:
            line = line.decode().strip()
            if line == "#RB1":
                f.write(b"#RB1 OK {}\n")
                continue
            rid, name = line.split()[:2]
            if name == "bye":
                break
            got.append(name)
            code = answers[min(len(got), len(answers)) - 1]
            f.write(("%s OK {}\n" % rid if code is None else
                     '%s ERR %s {"message": "scripted"}\n' % (rid, code)).encode())
        c.close()
        srv.close()
    threading.Thread(target=serve, daemon=True).start()
    return "socket://127.0.0.1:%d" % srv.getsockname()[1], got


def test_a_command_that_crossed_the_partner_s_is_sent_again_and_other_refusals_are_not():
    # PARTNER_BUSY: nothing of it ran (pair.md "Requests that cross"); the client sends it again
    from raidboard import proto
    url, got = _scripted_console(["PARTNER_BUSY", "PARTNER_BUSY", None])
    with proto.Link(url, timeout=10) as link:
        assert link.request("sd_policy", {"sd": 2, "wb": True}) == {} and link.busy_retries == 2
    assert got == ["sd_policy"] * 3
    url, got = _scripted_console(["PARTNER_BUSY"])
    with proto.Link(url, timeout=10) as link, pytest.raises(proto.BoardError) as e:
        link.request("lop_stop", {"sd": 2})
    assert e.value.code == "PARTNER_BUSY" and got == ["lop_stop"] * proto.BUSY_TRIES
    url, got = _scripted_console(["PARTNER_LOST"])
    with proto.Link(url, timeout=10) as link, pytest.raises(proto.BoardError) as e:
        link.request("lop_stop", {"sd": 2})
    assert e.value.code == "PARTNER_LOST" and got == ["lop_stop"] and link.busy_retries == 0
