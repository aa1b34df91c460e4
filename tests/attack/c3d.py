from common import *
import threading
b = boot("/tmp/atk/c3d")
both = 0; tries = 0
try:
    for i in range(40):
        res = [None, None]
        def go(k):
            try:
                s = socket.create_connection(b.console, timeout=3); s.sendall(b"#RB1\n1 status\n")
                buf = b""
                while b"1 OK" not in buf and b"IN_USE" not in buf:
                    d = s.recv(65536)
                    if not d: break
                    buf += d
                res[k] = (b"1 OK" in buf, s)
            except Exception as e:
                res[k] = (False, None)
        ts = [threading.Thread(target=go, args=(k,)) for k in range(2)]
        for t in ts: t.start()
        for t in ts: t.join()
        tries += 1
        if res[0][0] and res[1][0]: both += 1
        for r in res:
            if r[1]: r[1].close()
        time.sleep(0.15)
finally:
    print("races", tries, "both served", both); b.stop()
