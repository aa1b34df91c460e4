from common import *
b = boot("/tmp/atk/c6c")
try:
    cmd(b, "chap_set", {"user": "u", "secret": "right-secret-123"})
    socks = []
    for a in range(4):
        for i in range(16):
            s = socket.socket(); s.bind(("127.0.0.%d" % (20 + a), 0)); s.connect(b.portals[i % 2]); socks.append(s)
    time.sleep(0.5)
    for t in range(3):
        w = Initiator(*b.portals[1], name="iqn.2026-11.org.example:witness", timeout=5)
        try:
            w.login(chap=("u", "right-secret-123")); print("witness login OK at try", t); w.logout(); break
        except Exception as e:
            print("witness login failed:", repr(e)[:80])
        time.sleep(1)
    t0 = time.time()
    alive = sum(1 for s in socks if s.fileno() >= 0)
    print("attacker sockets held (sent nothing, no credentials):", alive)
    print([e["text"] for e in cmd(b, "events", {"n": 4})["events"]])
finally:
    b.stop()
