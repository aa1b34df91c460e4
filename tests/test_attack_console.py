"""Attack campaign (issue 9): the console login (firmware/lineproto.md "Access").

"A challenge is good for one answer, right or wrong (NO_CHALLENGE without one, so a proof seen on
the line cannot be replayed)". The nonce is kept per console, not per session: it outlives the
disconnect. A proof that crossed the line but was never taken by the board (the client's connection
dropped before the board read the line: a client that closed is not served the rest of what it
sent) is accepted later by whoever sends it first in a NEW session, without asking a challenge.
"""
import hashlib
import hmac
import json
import socket

PW = "front-panel-9"
K = hashlib.sha1(PW.encode()).digest()


class Line:
    def __init__(self, addr):
        self.s = socket.create_connection(addr, timeout=10)
        self.buf = b""
        self.s.sendall(b"#RB1\n")
        self.until(b"#RB1 OK")

    def until(self, tag):
        while True:
            lines = self.buf.split(b"\n")
            for i, ln in enumerate(lines[:-1]):
                if ln.startswith(tag):
                    self.buf = b"\n".join(lines[i + 1:])
                    return ln.decode()
            d = self.s.recv(65536)
            if not d:
                raise EOFError
            self.buf += d

    def req(self, rid, cmd, args=None):
        self.s.sendall(("%s %s %s\n" % (rid, cmd, json.dumps(args or {}))).encode())
        return self.until((rid + " ").encode())


def test_a_proof_for_another_sessions_challenge_is_refused(board):
    c = Line(board.console)
    assert c.req("1", "password_set", {"new": K.hex()}).startswith("1 OK")
    c.s.close()
    # the operator's session: a challenge; its proof is made (and may cross the line) but the
    # connection drops before the board reads it
    op = Line(board.console)
    nonce = json.loads(op.req("1", "challenge").split(" ", 2)[2])["nonce"]
    proof = hmac.new(K, bytes.fromhex(nonce) + b"login", "sha256").hexdigest()
    op.s.close()
    # a stranger with that proof, in a new session, asks no challenge
    x = Line(board.console)
    r = x.req("1", "login", {"proof": proof})
    status = x.req("2", "status")
    x.s.close()
    assert "NO_CHALLENGE" in r and "PASSWORD_REQUIRED" in status, (r, status[:60])
