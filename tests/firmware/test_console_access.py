# Who may do what on the console (endpoints/console/lineproto.md "Access"), through the console's input path as the
# UART delivers it: with a password set, nothing but #RB1, challenge, login and bye before a
# challenge-response login; secrets are never read back; the CDB pass-through runs as the console's
# own initiator, masked like any other; wrong passwords lock the console out for a while.
import json
import hashlib
import asyncio
import fw
from endpoints.console import access
from endpoints.console import uart as console
from control import commands_diag as config


Collect = fw.UartEnd


def line_console(password=None, clock=None):
    ctl = fw.boot()
    c = console.Console(ctl)
    if clock:
        c.access = c.proto.access = c.model.access = access.Access(ctl, clock)
    if password is not None:
        c.access.store(access.digest(password))
    c.model.reset()
    c.line = False
    c.bol = True
    c.magic = 0
    c.alive = True
    port = Collect()
    send(c, port, b"#RB1\n")
    return c, port


def send(c, port, data):
    async def go():
        c.inbuf[:len(data)] = data
        await c._input(port, len(data))
    asyncio.run(go())


def call(c, port, cmd, args=None):
    # one request; (code, result): code "OK" or the error code
    send(c, port, ("q %s %s\n" % (cmd, json.dumps(args or {}))).encode())
    a = port.answers()[-1]
    assert a.startswith("q "), a
    rid, ok, rest = a.split(" ", 2)
    if ok == "OK":
        return "OK", json.loads(rest)
    code, rest = rest.split(" ", 1)
    return code, json.loads(rest)


def proof(password, nonce_hex, what):
    return access.hmac_sha256(access.digest(password), bytes.fromhex(nonce_hex) + what).hex()


def login(c, port, password):
    nonce = call(c, port, "challenge")[1]["nonce"]
    return call(c, port, "login", {"proof": proof(password, nonce, b"login")})


def test_hmac_is_rfc_4231():
    # RFC 4231 test case 2
    assert access.hmac_sha256(b"Jefe", b"what do ya want for nothing?").hex() == \
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"


def test_with_a_password_only_the_login_is_open_until_it_succeeds():
    c, port = line_console("mylex-board")
    hello = json.loads(port.answers()[0][8:])
    assert hello["login"] is True
    for cmd, args in (("status", {}), ("chap_set", {"user": "", "secret": ""}), ("mask_clear", {"initiator": "x"}),
                      ("sd_delete", {"sd": 0}), ("disk_fail", {"slot": 0}), ("password_set", {"new": ""}),
                      ("cdb", {"port": 0, "lun": 0, "cdb": "2800000000000000010000"}), ("screen", {})):
        code, res = call(c, port, cmd, args)
        assert code == "PASSWORD_REQUIRED", (cmd, code, res)
    assert c.ctl.cfg.password == access.digest("mylex-board")
    assert c.ctl.cfg.sd[0] is not None
    code, res = call(c, port, "login", {"proof": "00" * 32})
    assert code == "NO_CHALLENGE", code
    assert login(c, port, "not-it")[0] == "WRONG_PASSWORD"
    nonce = call(c, port, "challenge")[1]["nonce"]
    assert b"mylex-board" not in port.data and access.digest("mylex-board").hex().encode() not in port.data
    right = proof("mylex-board", nonce, b"login")
    assert call(c, port, "login", {"proof": right}) == ("OK", {})
    assert call(c, port, "status")[0] == "OK"
    # a proof is good for one challenge: replayed, it is refused
    call(c, port, "bye")
    send(c, port, b"#RB1\n")
    assert call(c, port, "status")[0] == "PASSWORD_REQUIRED"     # bye logged it out
    assert call(c, port, "login", {"proof": right})[0] == "NO_CHALLENGE"
    call(c, port, "challenge")
    assert call(c, port, "login", {"proof": right})[0] == "WRONG_PASSWORD"


def test_without_a_password_the_console_is_open():
    c, port = line_console()
    assert json.loads(port.answers()[0][8:])["login"] is False
    assert call(c, port, "status")[0] == "OK"


def test_changing_the_password_over_the_line_proves_the_current_one():
    c, port = line_console()
    new = access.digest("first-one")
    assert call(c, port, "password_set", {"new": new.hex()}) == ("OK", {"password_set": True})
    assert call(c, port, "status")[0] == "OK"            # who set it stays logged in
    # the change: a fresh challenge, the proof of the current password, the new digest masked
    nonce = call(c, port, "challenge")[1]["nonce"]
    mask = access.hmac_sha256(new, bytes.fromhex(nonce) + b"new")[:20]
    masked = bytes(x ^ y for x, y in zip(access.digest("second-one"), mask)).hex()
    code, res = call(c, port, "password_set", {"new": masked, "proof": proof("wrong", nonce, b"password_set")})
    assert code == "WRONG_PASSWORD" and c.ctl.cfg.password == new
    nonce = call(c, port, "challenge")[1]["nonce"]
    mask = access.hmac_sha256(new, bytes.fromhex(nonce) + b"new")[:20]
    masked = bytes(x ^ y for x, y in zip(access.digest("second-one"), mask)).hex()
    code, res = call(c, port, "password_set", {"new": masked, "proof": proof("first-one", nonce, b"password_set")})
    assert code == "OK" and c.ctl.cfg.password == access.digest("second-one")
    assert access.digest("second-one").hex().encode() not in port.data
    nonce = call(c, port, "challenge")[1]["nonce"]
    assert call(c, port, "password_set", {"new": "", "proof": proof("second-one", nonce, b"password_set")}) == \
        ("OK", {"password_set": False})
    assert c.ctl.cfg.password is None
    assert call(c, port, "password_check", {"password": "x"})[0] == "UNKNOWN_COMMAND"   # no clear passwords


def test_wrong_logins_lock_the_console_out_by_count_then_time():
    now = [5000]
    c, port = line_console("right-one", clock=lambda: now[0])
    for _ in range(access.FAILS_MAX):
        assert login(c, port, "wrong")[0] == "WRONG_PASSWORD"
    assert login(c, port, "right-one")[0] == "LOGIN_LOCKED"
    now[0] += access.LOCK_MS - 1
    code, res = login(c, port, "right-one")
    assert code == "LOGIN_LOCKED" and "1 s" in res["message"], res
    now[0] += 1
    assert login(c, port, "right-one") == ("OK", {})
    # the menus count on the same Access: a locked console is locked at the panel too
    assert c.model.access is c.access


def test_secrets_are_never_read_back():
    c, port = line_console()
    assert call(c, port, "chap_set", {"user": "backup", "secret": "s3cret-s3cret"})[0] == "OK"
    assert call(c, port, "password_set", {"new": access.digest("pw-pw").hex()})[0] == "OK"
    for cmd in ("chap_get", "nvram_dump", "status", "mask_list", "screen", "lcd"):
        assert call(c, port, cmd)[0] == "OK"
    assert call(c, port, "chap_get")[1] == {"user": "backup", "secret_set": True}
    assert b"s3cret-s3cret" not in port.data
    assert access.digest("pw-pw").hex().encode() not in port.data
    assert c.ctl.cfg.chap_secret == "s3cret-s3cret"      # the iSCSI target still has it


def test_cdb_runs_as_the_console_and_is_masked_like_any_initiator():
    c, port = line_console()
    read = {"port": 0, "lun": 0, "cdb": "2800000000000000010000"}
    assert call(c, port, "cdb", read)[1]["status"] == 0
    code, res = call(c, port, "cdb", dict(read, initiator="iqn.2026-11.org.example:host-a"))
    assert code == "BAD_ARGUMENT" and config.CONSOLE_INITIATOR in res["message"]
    assert call(c, port, "mask_set", {"initiator": "iqn.2026-11.org.example:host-a", "luns": [[0, 0]]})[0] == "OK"
    r = call(c, port, "cdb", read)[1]          # masks exist and none names the console: LUN 0 is not there
    assert r["status"] == 2 and r["sense"][4:6] == "05", r
    assert call(c, port, "mask_set", {"initiator": config.CONSOLE_INITIATOR, "luns": [[0, 0]]})[0] == "OK"
    assert call(c, port, "cdb", read)[1]["status"] == 0


class Client(Collect):
    # one session's far end, through Console.session: sends each step in turn, then hangs up; a
    # step is bytes, or a function of what the console sent so far that makes them
    def __init__(self, *steps):
        Collect.__init__(self)
        self.steps = list(steps)

    async def read(self, mv):
        await asyncio.sleep_ms(0)
        if not self.steps:
            raise console.Disconnected()
        b = self.steps.pop(0)
        if not isinstance(b, bytes):
            b = b(self)
        mv[:len(b)] = b
        return len(b)


def session(c, *steps):
    port = Client(*steps)
    asyncio.run(c.session(port))
    return port


def nonce_of(port):
    return [json.loads(a.split(" ", 2)[2])["nonce"] for a in port.answers() if a.startswith("c OK")][-1]


def login_request(password, nonce):
    return ("l login %s\n" % json.dumps({"proof": proof(password, nonce, b"login")})).encode()


def test_a_challenge_belongs_to_the_session_that_asked_for_it():
    c = console.Console(fw.boot())
    c.access.store(access.digest("panel-pw"))
    # within a session the challenge is answered as usual
    mine = session(c, b"#RB1\nc challenge\n", lambda p: login_request("panel-pw", nonce_of(p)) + b"s status\n")
    assert any(a.startswith("l OK") for a in mine.answers()) and any(a.startswith("s OK") for a in mine.answers())
    # a session that asked for one and ended before it answered: its challenge ends with it
    gone = session(c, b"#RB1\nc challenge\n")
    stranger = session(c, b"#RB1\n" + login_request("panel-pw", nonce_of(gone)) + b"s status\n")
    codes = [a.split(" ")[2] for a in stranger.answers() if " ERR " in a]
    assert codes == ["NO_CHALLENGE", "PASSWORD_REQUIRED"], stranger.answers()
    assert c.access.fails == 0          # no proof was judged: no wrong password was counted
