from common import *
import subprocess, random
random.seed(7)
RB = "/work/wt/attack/.venv/bin/raidboard"
b = boot("/tmp/atk/c4c")
res = {"tries": 0, "ok": 0, "refused": 0, "login_fail": 0, "restarts": 0}
try:
    pool = "aäöü€😀\u2028\u202e\u0301\ufeffZ9 -'\"\\%$#"
    for i in range(25):
        user = "".join(random.choice(pool) for _ in range(random.randint(1, 12)))
        secret = "".join(random.choice(pool) for _ in range(random.randint(6, 16)))
        res["tries"] += 1
        p = subprocess.run([RB, "--port", "socket://%s:%d" % tuple(b.console), "chap", "set", user],
                           env=dict(os.environ, RAIDBOARD_CHAP_SECRET=secret, RAIDBOARD_PORT=""),
                           capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
        if p.returncode != 0:
            res["refused"] += 1; continue
        res["ok"] += 1
        if i % 3 == 0:
            b.restart(); res["restarts"] += 1
        got = cmd(b, "chap_get")
        if got["user"] != user: print("USER DIVERGE", repr(user), repr(got)); res.setdefault("div", 0)
        c = Initiator(*b.portals[0], name=A)
        try:
            c.login(chap=(user, secret)); c.logout()
        except Exception as e:
            res["login_fail"] += 1; print("login fail", repr(user), repr(secret), e)
            time.sleep(1.1)
finally:
    print(res); b.stop()
