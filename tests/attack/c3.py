from common import *
import hashlib, hmac, json as J, threading
sys.path.insert(0, "/work/wt/attack/tests")
from console_term import Line
b = boot("/tmp/atk/c3")
PW = "front-panel-9"
K = hashlib.sha1(PW.encode()).digest()
res = {}
class L:
    def __init__(self):
        self.s = socket.create_connection(b.console, timeout=10); self.buf = b""; self.n = 0
        self.s.sendall(b"#RB1\n"); self.until(b"#RB1 OK")
    def until(self, tag):
        while True:
            for ln in self.buf.split(b"\n")[:-1]:
                if ln.startswith(tag):
                    i = self.buf.index(ln) + len(ln) + 1; self.buf = self.buf[i:]; return ln.decode("utf-8", "replace")
            d = self.s.recv(65536)
            if not d: raise EOFError
            self.buf += d
    def req(self, c, args=None, raw=None):
        self.n += 1; rid = "r%d" % self.n
        self.s.sendall(raw if raw is not None else ("%s %s %s\n" % (rid, c, J.dumps(args or {}))).encode())
        return self.until((rid + " ").encode() if raw is None else b"- ")
try:
    l = L()
    print(l.req("password_set", {"new": K.hex()}))
    l.s.close()
    # a) pre-login sweep
    l = L()
    cmds = ["status","sd_list","sd_create","sd_delete","sd_policy","log_set","log_clear","lun_list","lun_map","lun_unmap","snapshot_start","snapshot_stop","snapshot_status","snapshot_map","disk_list","disk_fail","disk_remove","disk_replace","events","cdb","chap_set","chap_get","mask_list","mask_set","mask_clear","nvram_dump","params_get","params_set","lop_start","lop_status","lop_stop","lcd","button","screen","password_set","nonexistent"]
    codes = {}
    for c in cmds:
        r = l.req(c, {"sd": 0, "slot": 0, "key": "enter"})
        code = r.split(" ")[2] if " ERR " in r else "OK"
        codes[code] = codes.get(code, 0) + 1
        if code not in ("PASSWORD_REQUIRED", "NO_CHALLENGE", "UNKNOWN_COMMAND"): print("PRELOGIN", c, r[:100])
    res["prelogin"] = codes
    # b) replay
    n1 = J.loads(l.req("challenge").split(" ", 2)[2])["nonce"]
    proof = hmac.new(K, bytes.fromhex(n1) + b"login", "sha256").hexdigest()
    res["login"] = l.req("login", {"proof": proof})
    res["authed status"] = l.req("status")[:30]
    l.req("bye"); l.s.close()
    l = L()
    res["replay no challenge"] = l.req("login", {"proof": proof})
    l.req("challenge")
    res["replay new challenge"] = l.req("login", {"proof": proof})
    res["after replay"] = l.req("status")[:50]
    # the nonce left over from a session that disconnected after `challenge`
    n2 = J.loads(l.req("challenge").split(" ", 2)[2])["nonce"]
    l.s.close()
    l = L()
    res["leftover-nonce login, garbage proof"] = l.req("login", {"proof": "00" * 32})
    # c) malformed
    l.s.close(); time.sleep(0.1)
    l = L()
    out = {}
    for name, raw in [("bad utf8", b"1 status {\"a\":\"\xff\xfe\"}\n"), ("cesu", b"1 status {\"a\":\"\xed\xa0\x80\"}\n"),
                      ("overlong", b"1 st\xc0\xafatus\n"), ("nul", b"1 status\x00\n"), ("iac", b"\xff\xfb\x01\xff\xfd\x03\n"),
                      ("badjson", b"1 status {\"a\":\n"), ("nested", b"1 status " + b"[" * 5000 + b"\n"),
                      ("deep obj", b"1 status " + b'{"a":' * 3000 + b"1" + b"}" * 3000 + b"\n"),
                      ("huge", b"1 status " + b"x" * 300000 + b"\n")]:
        try:
            l.s.sendall(raw)
            l.s.sendall(b"ping1 challenge\n")
            r = l.until(b"ping1 ")
            out[name] = r[:40]
        except Exception as e:
            out[name] = repr(e); l.s.close(); time.sleep(0.1); l = L()
    res["malformed"] = out
    # d) second client while first is connected
    l2s = socket.create_connection(b.console, timeout=5)
    res["second client"] = l2s.recv(200)[:60]
    l2s.close()
    l.s.close(); time.sleep(0.1)
    # e) lockout by wrong proofs: count; and whether the menus' password entry shares it
    l = L()
    for i in range(6):
        l.req("challenge"); r = l.req("login", {"proof": "11" * 32})
    res["6th wrong"] = r[:60]
    print("alive", b.alive())
finally:
    for k, v in res.items(): print(k, "->", v)
    b.stop()
