from common import *
import subprocess
b = boot("/tmp/atk/c2esc")
try:
    nm = "iqn.2026-11.org.example:\x1b]0;PWNED\x07\x1b[2J\x1b[31mEVIL\u202e"
    c = Initiator(*b.portals[0], name=nm)
    try: c.login(); print("login ok"); c.logout()
    except Exception as e: print("login:", e)
    c = Initiator(*b.portals[0], name=nm)
    try: c.login(target="iqn.nope"); 
    except Exception as e: print("login2:", e)
    p = subprocess.run(["/work/wt/attack/.venv/bin/raidboard", "--port", "socket://%s:%d" % tuple(b.console), "events", "-n", "6"], capture_output=True, timeout=30)
    print("ESC in CLI output:", b"\x1b" in p.stdout, b"\x07" in p.stdout)
    print(p.stdout[-600:])
    # VT-100 menus: event log screen raw bytes
    s = socket.create_connection(b.console, timeout=3); time.sleep(0.5)
    raw = b""
    try:
        while True:
            d = s.recv(65536)
            if not d: break
            raw += d
    except Exception: pass
    print("monitor screen contains attacker ESC]0:", b"\x1b]0;PWNED" in raw)
    s.close()
finally:
    b.stop()
