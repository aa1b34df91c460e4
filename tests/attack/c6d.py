from common import *
import threading, struct
from test_iscsi_initiator import bhs
TMO = 2
b = boot("/tmp/atk/c6d", iscsi_task_timeout_s=TMO)
stop = threading.Event(); ast = {"conns": 0, "reads": 0}
def attacker(i):
    while not stop.is_set():
        try:
            c = Initiator(*b.portals[0], name="iqn.2026-11.org.example:rs%d" % i, source="127.0.0.3", rcvbuf=4096, timeout=5)
            c.login(); ast["conns"] += 1
            for k in range(2):
                p = bhs(0x01, 0x80 | 0x40 | 1, 0, c.next_itt(), [(20, 1 << 20), (24, c.cmdsn), (28, c.expstatsn)])
                p[32:48] = struct.pack(">BBQIBB", 0x88, 0, 0, 2048, 0, 0); c.send(p); c.cmdsn += 1; ast["reads"] += 1
            while not stop.is_set():
                time.sleep(0.2)
                try: c.sock.send(b"")
                except OSError: break
                # never read; the target closes us after the timeout
                try:
                    c.sock.setblocking(False); c.sock.recv(1, socket.MSG_PEEK)
                except BlockingIOError: pass
                except OSError: break
                finally: c.sock.setblocking(True)
        except Exception:
            time.sleep(0.1)
th = [threading.Thread(target=attacker, args=(i,), daemon=True) for i in range(16)]
try:
    for t in th: t.start()
    time.sleep(1.5)
    w = Initiator(*b.portals[1], name="iqn.2026-11.org.example:witness", timeout=60); w.login()
    lat = []; busy = 0; t_end = time.time() + 20
    while time.time() < t_end:
        t0 = time.time(); r = w.read(0, 0, 512); lat.append(time.time() - t0); busy += r["status"] == 8
    lat.sort()
    print("read-stall: witness cmds", len(lat), "BUSY", busy, "worst %.2f p50 %.3f" % (lat[-1], lat[len(lat)//2]), ast)
finally:
    stop.set(); time.sleep(0.3); b.stop()
