from common import *
import time
from test_iscsi_initiator import ISCSIError
b = boot("/tmp/atk/c2")
try:
    cmd(b, "chap_set", {"user": "u", "secret": "right-secret-123"})
    N = int(sys.argv[1]) if len(sys.argv) > 1 else 65
    ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    checked = {}; refused = {}
    t0 = time.time()
    for r in range(ROUNDS):
        for i in range(N):
            src = "127.0.0.%d" % (2 + i)
            c = Initiator(*b.portals[0], name="iqn.2026-11.org.example:guess", source=src)
            try:
                c.login(chap=("u", "wrong-guess-%d" % r))
            except ISCSIError:
                pass
            st = getattr(c, "status", None)
            if st == 0x0201: checked[src] = checked.get(src, 0) + 1
            elif st == 0x0301: refused[src] = refused.get(src, 0) + 1
            else: print("status", hex(st or 0))
            c.close()
    dt = time.time() - t0
    print("N", N, "rounds", ROUNDS, "secs %.2f" % dt, "checked", sum(checked.values()), "refused", sum(refused.values()),
          "max checked per addr", max(checked.values()) if checked else 0)
finally:
    b.stop()
