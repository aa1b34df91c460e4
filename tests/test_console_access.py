"""Who may do what through the console's TCP port (firmware/endpoints/console/lineproto.md "Access"), attacked as a
hostile client would: with a password set, every request but the login is refused; secrets are never
read back; the CDB pass-through runs as the console's own initiator, masked like any other; the CLI
takes the password from a file, the environment or a prompt, never from the command line."""
import hashlib
import hmac
import json
import os
import subprocess
import sys
from pathlib import Path

from console_term import Line
from harness import answer

RAIDBOARD = str(Path(sys.executable).with_name("raidboard"))
CONSOLE = "iqn.1998-06.com.mylex:console"
HOST_A = "iqn.2026-11.org.example:host-a"
READ_LBA0 = {"port": 0, "lun": 0, "cdb": "2800000000000000010000"}


def rb(board, *argv, password=None, rc=0, env=None):
    env = dict(os.environ, RAIDBOARD_PORT="", **(env or {}))
    env.pop("RAIDBOARD_PASSWORD", None)
    if password is not None:
        env["RAIDBOARD_PASSWORD"] = password
    p = subprocess.run([RAIDBOARD, "--port", "socket://%s:%d" % tuple(board.console)] + list(argv),
                       capture_output=True, text=True, timeout=60, env=env, stdin=subprocess.DEVNULL)
    assert p.returncode == rc, (argv, p.returncode, p.stdout, p.stderr)
    return p.stdout + p.stderr


def raw(line, cmd, args=None):
    """A request as any client of the port can send it: (code, result)."""
    return line.request(cmd, args)


def set_password(board, tmp_path, new, current=None, rc=0):
    f = tmp_path / "new-password"
    f.write_text(new + "\n")
    return rb(board, "password", "set", "--new-password-file", str(f), password=current, rc=rc)


def test_with_a_password_a_client_of_the_port_can_do_nothing_before_it_logs_in(board, tmp_path):
    rb(board, "chap", "set", "backup", env={"RAIDBOARD_CHAP_SECRET": "s3cret-s3cret"})
    set_password(board, tmp_path, "front-panel-1")
    c = Line(board.console)
    assert c.hello()["login"] is True
    attacks = [("chap_get", {}), ("nvram_dump", {}), ("chap_set", {"user": "", "secret": ""}),
               ("mask_set", {"initiator": HOST_A, "luns": []}), ("sd_delete", {"sd": 0}),
               ("disk_fail", {"slot": 0}), ("password_set", {"new": ""}), ("cdb", READ_LBA0),
               ("status", {}), ("button", {"key": "enter"})]
    for cmd, args in attacks:
        code, res = raw(c, cmd, args)
        assert code == "PASSWORD_REQUIRED", (cmd, code, res)
    code, res = raw(c, "login", {"proof": "00" * 32})
    assert code == "NO_CHALLENGE"
    c.close()
    # nothing changed: the drives, the disks, CHAP and the password are as they were
    st = answer(rb(board, "--json", "status", password="front-panel-1"))
    assert [d["sd"] for d in st["drives"]] == [0, 1] and st["drives"][0]["status"] == "ONLINE"
    dump = answer(rb(board, "--json", "call", "chap_get", password="front-panel-1"))
    assert dump == {"user": "backup", "secret_set": True}


def test_the_cli_logs_in_from_a_file_or_the_environment_and_refuses_without(board, tmp_path):
    set_password(board, tmp_path, "front-panel-1")
    out = rb(board, "status", rc=1)                          # no terminal, no file, no variable
    assert "PASSWORD_REQUIRED" in out and "--password-file" in out
    out = rb(board, "status", password="wrong", rc=1)
    assert "WRONG_PASSWORD" in out
    f = tmp_path / "pw"
    f.write_text("front-panel-1\n")
    assert "DAC960SX" in rb(board, "--password-file", str(f), "status")
    assert "DAC960SX" in rb(board, "status", password="front-panel-1")
    # there is no `--password` (nor an abbreviation of --password-file): a usage error, exit 2
    rb(board, "--password", "front-panel-1", "status", rc=2)
    rb(board, "--password", str(f), "status", rc=2)


def test_changing_the_password_needs_the_current_one(board, tmp_path):
    set_password(board, tmp_path, "first-pass")
    out = set_password(board, tmp_path, "second-pass", current="guess", rc=1)
    assert "WRONG_PASSWORD" in out
    rb(board, "status", password="first-pass")
    set_password(board, tmp_path, "second-pass", current="first-pass")
    rb(board, "status", password="first-pass", rc=1)
    rb(board, "status", password="second-pass")
    assert "cleared" in rb(board, "password", "clear", password="second-pass")
    rb(board, "status")


def test_secrets_are_never_read_back_and_passwords_never_cross_the_line(board, tmp_path):
    rb(board, "chap", "set", "backup", env={"RAIDBOARD_CHAP_SECRET": "s3cret-s3cret"})
    set_password(board, tmp_path, "front-panel-1")
    c = Line(board.console)
    c.hello()
    seen = b""
    nonce = raw(c, "challenge")[1]["nonce"]
    key = hashlib.sha1(b"front-panel-1").digest()
    assert raw(c, "login", {"proof": hmac.new(key, bytes.fromhex(nonce) + b"login", hashlib.sha256).hexdigest()}) \
        == ("OK", {})
    for cmd in ("chap_get", "nvram_dump", "status", "mask_list", "screen"):
        code, res = raw(c, cmd)
        assert code == "OK", (cmd, res)
        seen += json.dumps(res).encode()
    assert b"s3cret-s3cret" not in seen and key.hex().encode() not in seen
    assert raw(c, "password_check", {"password": "front-panel-1"})[0] == "UNKNOWN_COMMAND"
    c.close()


def test_the_cdb_pass_through_is_the_console_and_masking_applies_to_it(board, tmp_path):
    c = Line(board.console)
    c.hello()
    assert raw(c, "cdb", READ_LBA0)[1]["status"] == 0                 # no masks: every initiator sees LUN 0
    code, res = raw(c, "cdb", dict(READ_LBA0, initiator=HOST_A))      # posing as a host: refused
    assert code == "BAD_ARGUMENT" and CONSOLE in res["message"]
    assert raw(c, "mask_set", {"initiator": HOST_A, "luns": [[0, 0]]})[0] == "OK"
    r = raw(c, "cdb", READ_LBA0)[1]                                   # LUN 0 is host A's alone now
    assert r["status"] == 2 and r["sense"][4:6] == "05", r            # CHECK CONDITION, ILLEGAL REQUEST
    assert raw(c, "mask_set", {"initiator": CONSOLE, "luns": [[0, 0]]})[0] == "OK"
    assert raw(c, "cdb", READ_LBA0)[1]["status"] == 0                 # a mask can name the console
    c.close()


def test_the_cli_asks_for_the_password_on_a_terminal_without_echo(board, tmp_path):
    from test_cli_console import Tmux
    set_password(board, tmp_path, "typed-at-a-prompt")
    t = Tmux(tmp_path, "env -u RAIDBOARD_PASSWORD %s --port socket://%s:%d status"
             % ((RAIDBOARD,) + tuple(board.console)))
    try:
        t.wait_for("console password:")
        t.keys("typed-at-a-prompt", "Enter")
        s = t.wait_for("EXIT=0")
        assert "board: DAC960SX" in s and "typed-at-a-prompt" not in s, s
    finally:
        t.close()
