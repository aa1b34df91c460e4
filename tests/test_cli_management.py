"""Scripts run beside a person: the board's management endpoint serves the line protocol to several
clients at once while a person holds the console (in the menus, or with a shell open), under the
console's password rules (firmware/endpoints/console/lineproto.md "The management endpoint",
host/README.md "Finding the board")."""
import json
import random
import socket
import time

import pytest

from harness import answer
from raidboard.proto import BoardError, Link, LinkError, password_key, proof
from test_cli_boot import BOARD, EPHEMERAL, rb
from test_cli_console import Tmux, quote
from test_cli_shell import RAIDBOARD
from test_iscsi_initiator import Initiator

CLIENTS = 4     # mgmt.CLIENTS


def url(hostport):
    return "socket://%s:%d" % tuple(hostport)


def hostport(socket_url):
    host, port = socket_url[len("socket://"):].rsplit(":", 1)
    return host, int(port)


@pytest.fixture
def detached(tmp_path):
    """A board booted by `raidboard boot … --detach`; yields (state dir, endpoints)."""
    state = tmp_path / "state"
    ep = answer(rb("--json", "boot", BOARD, state, *EPHEMERAL, "--detach")[0])
    yield state, ep
    rb("stop", "--state", state)


def read_until(sock, text, limit=1 << 20):
    """What sock receives up to `text`, or until the board closes it (b"" if it said nothing)."""
    got = b""
    while text not in got and len(got) < limit:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:        # closed on our unread request: a reset
            break
        if not chunk:
            break
        got += chunk
    return got


def lines_of(sock, n):
    """The next n non-empty lines from sock."""
    got = b""
    while got.count(b"\n") < n:
        chunk = sock.recv(65536)
        assert chunk, got
        got += chunk
    return [x for x in got.decode("utf-8", "replace").split("\n") if x.strip()]


def test_boot_records_the_management_endpoint(detached):
    state, ep = detached
    assert ep["management"].startswith("socket://127.0.0.1:") and not ep["management"].endswith(":0")
    assert json.loads((state / "endpoints.json").read_text())["management"] == ep["management"]
    assert ep["management"] != ep["console"]


def test_scripts_run_while_a_person_is_in_the_menus(detached):
    state, ep = detached
    person = socket.create_connection(hostport(ep["console"]), timeout=20)
    try:
        read_until(person, b"MONITOR MODE")
        person.sendall(b"\r")                        # Enter: from monitor mode into the menus
        read_until(person, b"MENU MODE")
        # the console is the person's: a client of the console itself is told so
        assert "console in use" in rb("--port", ep["console"], "status", rc=3)[1]
        # a script that names the board by its state directory goes to the management endpoint
        assert answer(rb("--json", "--state", state, "status")[0])["model"] == "DAC960SX"
        rb("--state", state, "snapshot", "start", "sd0")
        assert answer(rb("--json", "--state", state, "snapshot", "status")[0])["state"] == "ACTIVE"
        # and the person is still in the menus: a key is answered
        person.sendall(b"\x1b[B")
        assert person.recv(65536)
    finally:
        person.close()


def test_an_idle_shell_does_not_block_another_call(detached, tmp_path):
    state, ep = detached
    # a shell on the console itself gives the line back between two commands
    t = Tmux(tmp_path, "%s --port %s shell" % (quote(RAIDBOARD), ep["console"]))
    try:
        t.wait_for("raidboard>")
        assert "the shell takes only while a command runs" in t.screen()
        rb("--port", ep["console"], "lun", "map", "1/5", "sd0")
        t.keys("lun list", "Enter")                  # the shell takes it again for its own command
        t.wait_for("1/5       sd0")
        rb("--port", ep["console"], "status")
    finally:
        t.close()


def test_a_shell_on_the_management_endpoint_shows_events_as_they_come(detached, tmp_path):
    state, ep = detached
    t = Tmux(tmp_path, "%s --state %s shell" % (quote(RAIDBOARD), quote(str(state))))
    try:
        t.wait_for("raidboard>")
        assert "the shell takes only" not in t.screen()
        rb("--port", ep["console"], "status")        # the console is free, the shell is elsewhere
        rb("--state", state, "snapshot", "start", "sd0")
        t.wait_for("SNAPSHOT")                       # printed above the prompt, no key pressed
        assert "event " in t.screen()
    finally:
        t.close()


def test_password_rules_hold_on_the_management_endpoint(board):
    console, management = url(board.console), url(board.management)
    with Link(console) as c:
        c.set_password(None, "panel-pw")
    a, b = Link(management), Link(management)
    try:
        assert a.hello["login"] is True and a.hello["endpoint"] == "management"
        with pytest.raises(BoardError) as e:
            a.request("status")
        assert e.value.code == "PASSWORD_REQUIRED"
        # each client has its own login, and its own challenge
        a.login("panel-pw")
        assert a.request("lun_list")["map"]
        with pytest.raises(BoardError) as e:
            b.request("lun_list")
        assert e.value.code == "PASSWORD_REQUIRED"
        nonce = a.request("challenge")["nonce"]
        with pytest.raises(BoardError) as e:
            b.request("login", {"proof": proof(password_key("panel-pw"), nonce, b"login").hex()})
        assert e.value.code == "NO_CHALLENGE"
        # wrong passwords on the management endpoint lock the console out too: one count
        for _ in range(5):
            with pytest.raises(BoardError) as e:
                b.login("guess")
            assert e.value.code == "WRONG_PASSWORD"
        with Link(console) as c, pytest.raises(BoardError) as e:
            c.login("panel-pw")
        assert e.value.code == "LOGIN_LOCKED"
        with pytest.raises(BoardError) as e:
            b.login("panel-pw")
        assert e.value.code == "LOGIN_LOCKED"
        assert a.request("lun_list")["map"]          # a client logged in before stays logged in
    finally:
        a.close()
        b.close()


def test_too_many_clients_get_a_clear_refusal(board):
    management = url(board.management)
    held = [Link(management) for _ in range(CLIENTS)]
    try:
        extra = socket.create_connection(board.management, timeout=20)
        assert read_until(extra, b"\n").startswith(b"- ERR MANAGEMENT_BUSY ")
        assert extra.recv(100) == b""                # and disconnected
        p_err = rb("--port", management, "status", rc=3)[1]
        assert "%d management clients are connected" % CLIENTS in p_err and "try again" in p_err
        held.pop().close()
        rb("--port", management, "status")           # a place came free
    finally:
        for link in held:
            link.close()


def test_garbage_on_the_management_endpoint_gets_error_lines(board):
    rnd = random.Random(13)
    s = socket.create_connection(board.management, timeout=30)
    noise = bytes(rnd.choice([b for b in range(256) if b not in (10, 255)]) for _ in range(3000))
    s.sendall(b"#RB1\n" + b"\x00\x01junk\n" + b"no-command\n" + b"1 status {bad json\n" + b"2 nosuch\n"
              + b"3 lcd\n" + b"x" * 300000 + b"\n" + noise + b"\n" + b"9 lun_list\n")
    answers = lines_of(s, 8)
    while not any(x.startswith("9 ") for x in answers):
        answers += lines_of(s, 1)
    assert answers[0].startswith("#RB1 OK")
    codes = [x.split(" ")[2] if x.startswith(("-", "1", "2", "3")) else x for x in answers[1:]]
    assert codes[:6] == ["BAD_REQUEST", "BAD_REQUEST", "BAD_JSON", "UNKNOWN_COMMAND", "CONSOLE_ONLY",
                         "LINE_TOO_LONG"]
    assert all(c.startswith("- ERR BAD_REQUEST") for c in answers[7:-1])    # the noise line(s)
    assert answers[-1].startswith("9 OK")
    s.close()
    assert board.alive()
    rb("--port", url(board.management), "status")


def test_hostile_clients_stall_neither_the_console_nor_the_host_ports(board):
    # every place taken by a client that floods requests and never reads an answer
    hostile = []
    for _ in range(CLIENTS):
        h = socket.socket()
        h.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        h.connect(board.management)
        h.settimeout(2)
        hostile.append(h)
    flood = b"1 status\n" * 20000
    for h in hostile:
        try:
            h.sendall(flood)                         # until the board stops reading it
        except socket.timeout:
            pass
    try:
        w = Initiator(*board.portals[1], name="iqn.2026-11.org.example:witness", timeout=30)
        w.login()
        statuses = [w.read(0, 8 * i, 8)["status"] for i in range(16)]
        w.logout()
        with Link(url(board.console)) as c:
            assert c.request("lun_list")["map"]
        extra = socket.create_connection(board.management, timeout=20)
        assert read_until(extra, b"\n").startswith(b"- ERR MANAGEMENT_BUSY ")
        extra.close()
    finally:
        for h in hostile:
            h.close()
    assert statuses == [0] * 16
    # closed, their places come back
    for _ in range(100):
        try:
            with Link(url(board.management)) as m:
                assert m.request("lun_list")["map"]
            break
        except LinkError:
            time.sleep(0.1)
    else:
        raise AssertionError("the management endpoint did not take clients again")


def test_a_flood_of_connections_is_turned_away_without_piling_up(board):
    held = [Link(url(board.management)) for _ in range(CLIENTS)]
    try:
        flood = [socket.create_connection(board.management, timeout=20) for _ in range(16)]
        for s in flood:
            s.sendall(b"#RB1\n")
        told = [read_until(s, b"\n") for s in flood]
        for s in flood:
            s.close()
        busy = [t for t in told if t.startswith(b"- ERR MANAGEMENT_BUSY ")]
        # those taken while REFUSING_MAX refusals are under way are closed without a word, the others
        # told why; none is left hanging
        assert 1 <= len(busy) and len(busy) + told.count(b"") == len(flood)
        with Link(url(board.console)) as c:                  # the console is not disturbed
            assert c.request("lun_list")["map"]
        assert held[0].request("lun_list")["map"]            # nor the clients served
    finally:
        for link in held:
            link.close()
    rb("--port", url(board.management), "status")
