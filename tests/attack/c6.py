from common import *
import threading, struct
from test_iscsi_initiator import bhs
TMO = int(sys.argv[1]) if len(sys.argv) > 1 else 2
DUR = float(sys.argv[2]) if len(sys.argv) > 2 else 30
NADDR = int(sys.argv[3]) if len(sys.argv) > 3 else 3
b = boot("/tmp/atk/c6", iscsi_task_timeout_s=TMO)
stop = threading.Event()
astats = {"sent": 0, "busy": 0, "check": 0, "closed": 0, "reconnect": 0}
def attacker(src, idx):
    name = "iqn.2026-11.org.example:evil%d" % idx
    while not stop.is_set():
        try:
            c = Initiator(*b.portals[0], name=name, source=src, timeout=5)
            c.login(ops={"InitialR2T": "Yes", "ImmediateData": "No"})
        except Exception:
            astats["reconnect"] += 1; time.sleep(0.2); continue
        def rd():
            try:
                while not stop.is_set():
                    r = c.recv()
                    if r.op == 0x21:
                        if r.bhs[3] == 8: astats["busy"] += 1
                        elif r.bhs[3] == 2: astats["check"] += 1
            except Exception:
                pass
        t = threading.Thread(target=rd, daemon=True); t.start()
        try:
            while not stop.is_set() and t.is_alive():
                itt = c.next_itt()
                cdb = struct.pack(">BBQIBB", 0x8A, 0, 0, 2048, 0, 0)   # WRITE(16) 1 MiB, data never sent
                p = bhs(0x01, 0x80 | 0x20 | 1, 0, itt, [(20, 1 << 20), (24, c.cmdsn), (28, c.expstatsn)])
                p[32:48] = cdb
                c.send(p); c.cmdsn += 1; astats["sent"] += 1
                time.sleep(0.05)
        except Exception:
            pass
        astats["closed"] += 1
        c.close()
threads = []
try:
    for a in range(NADDR):
        for i in range(16):
            th = threading.Thread(target=attacker, args=("127.0.0.%d" % (10 + a), a * 16 + i), daemon=True)
            th.start(); threads.append(th)
    time.sleep(2)
    w = Initiator(*b.portals[1], name="iqn.2026-11.org.example:witness", timeout=120)
    w.login()
    lat = []; wbusy = 0; wother = 0; n = 0
    t_end = time.time() + DUR
    data = os.urandom(256 * 1024)
    while time.time() < t_end:
        t0 = time.time()
        if n % 2:
            r = w.read(0, 0, 512)
        else:
            r = w.write(0, 4096, data)
        dt = time.time() - t0; lat.append(dt); n += 1
        if r["status"] == 8: wbusy += 1
        elif r["status"] != 0: wother += 1
    lat.sort()
    print("TMO", TMO, "attackers", NADDR * 16, "witness cmds", n, "BUSY", wbusy, "other", wother,
          "worst %.2f s" % lat[-1], "p50 %.3f" % lat[len(lat)//2], "p90 %.3f" % lat[int(len(lat)*0.9)], "attacker", astats)
finally:
    stop.set(); time.sleep(0.5)
    print("alive", b.alive())
    b.stop()
