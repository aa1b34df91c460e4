from common import *
import threading
b = boot("/tmp/atk/c3c")
def witness(sec):
    w = Initiator(*b.portals[1], name="iqn.2026-11.org.example:witness", timeout=60); w.login()
    lat = []; bad = 0; t_end = time.time() + sec; i = 0
    while time.time() < t_end:
        t0 = time.time()
        r = w.read(0, (i * 8) % 10000, 8) if i % 2 else w.write(0, (i * 8) % 10000, bytes(4096))
        lat.append(time.time() - t0); bad += r["status"] != 0; i += 1
    w.logout(); lat.sort()
    return "n %d bad %d p50 %.4f worst %.3f" % (len(lat), bad, lat[len(lat)//2], lat[-1])
try:
    print("baseline", witness(5))
    # 1) never-reading client with big responses
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096); s.connect(b.console)
    s.setblocking(False)
    s.sendall(b"#RB1\n")
    sent = 0
    stop = threading.Event()
    def pump():
        global sent
        req = b"".join(b"%d nvram_dump\n%d status\n%d events {\"n\":64}\n" % (i, i, i) for i in range(50))
        while not stop.is_set():
            try:
                s.send(req); sent += 150
            except BlockingIOError:
                time.sleep(0.01)
            except OSError:
                break
    th = threading.Thread(target=pump, daemon=True); th.start()
    print("non-reader", witness(10), "requests sent", sent)
    # can someone else get the console? (expected: IN_USE, documented)
    s2 = socket.create_connection(b.console, timeout=5)
    try: print("second:", s2.recv(100)[:40])
    except Exception as e: print("second:", e)
    s2.close()
    stop.set(); th.join(); s.close(); time.sleep(0.5)
    # 2) flooding client (garbage + keystrokes), reading everything
    s = socket.create_connection(b.console); stop.clear()
    def flood():
        junk = os.urandom(65536)
        while not stop.is_set():
            try: s.sendall(junk)
            except OSError: break
    def drain():
        s.settimeout(0.5)
        while not stop.is_set():
            try:
                if not s.recv(1 << 16): break
            except socket.timeout: pass
            except OSError: break
    t1 = threading.Thread(target=flood, daemon=True); t2 = threading.Thread(target=drain, daemon=True)
    t1.start(); t2.start()
    print("flood", witness(10))
    stop.set(); s.close(); t1.join(2); t2.join(2); time.sleep(0.5)
    # console usable again?
    print("console after", cmd(b, "status")["model"] if True else None)
finally:
    print("alive", b.alive()); b.stop()
