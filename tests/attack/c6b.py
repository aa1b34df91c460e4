from common import *
import random, struct
from test_iscsi_initiator import bhs, text, ISCSIError
random.seed(6)
b = boot("/tmp/atk/c6b")
st = {"pdus": 0, "closed": 0, "answered": 0, "witness_bad": 0, "mrdsl": {}}
try:
    w = tenant(b, "iqn.2026-11.org.example:witness", port=1)
    # huge / odd MaxRecvDataSegmentLength claims
    for v in ["16777215", "16777216", "4294967295", "0", "511", "512", "-1", "99999999999999999999", "0x1000", "1e6"]:
        c = Initiator(*b.portals[0], name=A)
        try:
            got = c.login(ops={"MaxRecvDataSegmentLength": v}); c.target_mrdsl = int(got.get("MaxRecvDataSegmentLength", 8192))
            r = c.read(0, 0, 2048)
            st["mrdsl"][v] = (r["status"], len(r["data"]), r["pdus"])
        except Exception as e:
            st["mrdsl"][v] = repr(e)[:60]
        c.close()
    # random malformed PDUs in full-feature phase
    for i in range(400):
        c = tenant(b, A)
        kind = random.randrange(6)
        try:
            if kind == 0:
                raw = bytearray(os.urandom(48)); raw[0] = random.choice([0x01, 0x05, 0x04, 0x40, 0x42, 0x46, 0x10, 0x3f, 0x1c]) | random.choice([0, 0x40])
                raw[4] = random.randrange(4); raw[5:8] = random.randrange(0, 300000).to_bytes(3, "big")
                c.send_raw(bytes(raw) + os.urandom(random.randrange(0, 2000)))
            elif kind == 1:   # cmdsn abuse
                for sn in (c.cmdsn + 64, c.cmdsn - 1, 0xFFFFFFFF, c.cmdsn + 0x80000000):
                    p = bhs(0x01, 0x80 | 0x40 | 1, 0, c.next_itt(), [(20, 512), (24, sn & 0xFFFFFFFF), (28, c.expstatsn)])
                    p[32:48] = struct.pack(">BBQIBB", 0x88, 0, 0, 1, 0, 0); c.send(p)
            elif kind == 2:   # data-out for unknown itt / ttt, wrong offsets
                p = bhs(0x05, 0x80, 0, random.getrandbits(32), [(20, random.getrandbits(32)), (28, c.expstatsn), (36, 0), (40, random.getrandbits(32))])
                c.send(p, os.urandom(random.choice([0, 512, 4096])))
            elif kind == 3:   # write with EDTL huge and offsets overlapping
                itt = c.next_itt()
                p = bhs(0x01, 0x20 | 1, 0, itt, [(20, 0xFFFFFFFF), (24, c.cmdsn), (28, c.expstatsn)])
                p[32:48] = struct.pack(">BBQIBB", 0x8A, 0, 0, 0xFFFFFFFF, 0, 0); c.send(p, os.urandom(4096)); c.cmdsn += 1
                for off in (0, 4096, 2**31, 2**32 - 512):
                    c.send(bhs(0x05, 0, 0, itt, [(20, 0xFFFFFFFF), (28, c.expstatsn), (36, 0), (40, off)]), os.urandom(512))
            elif kind == 4:   # AHS garbage on a SCSI command (extended CDB lengths)
                ahs = struct.pack(">HBB", random.choice([0, 1, 2, 0xFFFF, 300]), random.choice([1, 2, 0xFF]), 0) + os.urandom(random.choice([0, 4, 12, 60]))
                ahs += b"\0" * (-len(ahs) % 4)
                p = bhs(0x01, 0x80 | 0x40 | 1, 0, c.next_itt(), [(20, 512), (24, c.cmdsn), (28, c.expstatsn)])
                p[32:48] = bytes([0x7F]) + os.urandom(15); c.send(p, b"", ahs); c.cmdsn += 1
            else:             # text request floods / logout with bad CID / nop with huge ping data
                c.send(bhs(0x04, 0x80, 0, c.next_itt(), [(20, 0xFFFFFFFF), (24, c.cmdsn), (28, c.expstatsn)]), text([("SendTargets", "All")] * 1 + [("X-" + "a" * 60, "b" * 8000)] * 8))
            st["pdus"] += 1
            c.sock.settimeout(0.5)
            try:
                r = c.recv(); st["answered"] += 1
            except (ConnectionError, OSError):
                st["closed"] += 1
            except Exception:
                pass
        except Exception:
            st["closed"] += 1
        c.close()
        if i % 40 == 0:
            r = w.read(0, 0, 8)
            if r["status"] != 0: st["witness_bad"] += 1
    r = w.read(0, 0, 8); print("witness final", r["status"])
finally:
    print(st); print("alive", b.alive())
    ev = cmd(b, "events", {"n": 5}) if b.alive() else None
    b.stop()
    print(open("/tmp/atk/c6b/state/firmware.log").read().count("Traceback"), "tracebacks in firmware.log")
