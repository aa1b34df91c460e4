from common import *
from test_iscsi_initiator import ISCSIError, bhs, text
b = boot("/tmp/atk/c2l")
res = {}
try:
    cmd(b, "mask_set", {"initiator": B, "luns": [[0, 0]]})
    # uppercase of B
    for nm in (B.upper(), B + " ", B + "\u0130", "IQN.2026-11.org.example:tenant-b", B.replace("tenant", "tenan\u0074")):
        try:
            c = tenant(b, nm); r = c.command(0, bytes([0xA0,0,0,0,0,0,0,0,1,0,0,0]), read_len=256)
            res[repr(nm)] = r["data"][:4].hex(); c.close()
        except Exception as e: res[repr(nm)] = repr(e)
    # NUL inside name value
    for nm in (B + "\x00x", "\x00" + B):
        try:
            c = tenant(b, nm); res[repr(nm)] = "logged in"; c.close()
        except Exception as e: res[repr(nm)] = repr(e)
    # long name
    for n in (223, 224, 8192, 8193):
        nm = "iqn.2026-11.org.example:" + "x" * (n - 24)
        try:
            c = tenant(b, nm); res["len%d" % n] = "logged in"; c.close()
        except Exception as e: res["len%d" % n] = repr(e)
    # discovery session: SCSI command
    c = Initiator(*b.portals[0], name=A); c.login(discovery=True)
    print("sendtargets", c.send_targets())
    try:
        r = c.command(0, bytes([0x28,0,0,0,0,0,0,0,1,0]), read_len=512); res["disc scsi"] = (r["status"], r["data"][:8])
    except Exception as e: res["disc scsi"] = repr(e)
    # normal session SendTargets by masked-out A
    c = tenant(b, A)
    try: res["normal sendtargets"] = c.send_targets()
    except Exception as e: res["normal sendtargets"] = repr(e)
    cmd(b, "chap_set", {"user": "u", "secret": "right-secret-123"})
    c = Initiator(*b.portals[0], name=A)
    try: c.login(discovery=True); res["disc nochap"] = c.send_targets()
    except Exception as e: res["disc nochap"] = repr(e)
    ev = cmd(b, "events", {"n": 64})["events"]
    print("max event len", max(len(e["text"]) for e in ev))
    print("alive", b.alive())
finally:
    for k, v in res.items(): print(k, "->", v)
    b.stop()
