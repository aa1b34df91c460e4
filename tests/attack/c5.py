from common import *
import random, hashlib
seed = int(sys.argv[1]) if len(sys.argv) > 1 else 1
DUR = float(sys.argv[2]) if len(sys.argv) > 2 else 60
random.seed(seed)
b = boot("/tmp/atk/c5", disk_mb=16)
BL = 4096     # blocks of the image under test (2 MiB)
st = {"ops": 0, "backup_reads": 0, "good_same": 0, "wrong": 0, "senses": {}, "faults": [], "restarts": 0, "rounds": 0}
def sk(r): return "%x/%02x/%02x" % ((r["sense"][2] & 15), r["sense"][12], r["sense"][13]) if r["sense"] else "st%d" % r["status"]
try:
    h = tenant(b, A)
    t_end = time.time() + DUR
    while time.time() < t_end:
        st["rounds"] += 1
        # fresh: everything online, primary known image
        for d in cmd(b, "disk_list")["disks"]:
            if d["state"] != "online":
                try: cmd(b, "disk_replace", {"slot": d["slot"]})
                except Exception as e: st["faults"].append("replace %s" % e)
        for _ in range(200):
            sds = cmd(b, "sd_list")["drives"]
            if all(s["status"] == "ONLINE" for s in sds) and not cmd(b, "lop_status", {})["lops"]: break
            time.sleep(0.2)
        try: cmd(b, "snapshot_stop")
        except Exception: pass
        image = bytearray(os.urandom(BL * 512))
        for off in range(0, BL, 256):
            r = h.write(0, off, bytes(image[off * 512:(off + 256) * 512]))
            if r["status"]: print("prime write", r["status"], sk(r))
        try:
            cmd(b, "snapshot_start", {"sd": 0})
        except Exception as e:
            st["faults"].append("start %s" % e); continue
        for step in range(60):
            x = random.random()
            st["ops"] += 1
            if x < 0.35:
                lba = random.randrange(0, BL - 64); n = random.choice([1, 8, 64])
                h.write(0, lba, os.urandom(n * 512))
            elif x < 0.8:
                lba = random.randrange(0, BL - 64); n = random.choice([1, 8, 64])
                r = h.read(1, lba, n); st["backup_reads"] += 1
                if r["status"] == 0:
                    if r["data"] != bytes(image[lba * 512:(lba + n) * 512]):
                        st["wrong"] += 1; print("WRONG DATA lba", lba, n, "round", st["rounds"], "step", step, flush=True)
                    else: st["good_same"] += 1
                else:
                    k = sk(r); st["senses"][k] = st["senses"].get(k, 0) + 1
            elif x < 0.92:
                slot = random.choice([0, 1, 2, 3, 4, 5]); what = random.choice(["disk_fail", "disk_remove", "disk_replace"])
                try:
                    cmd(b, what, {"slot": slot}); st["faults"].append("%s %d" % (what, slot))
                except Exception as e:
                    pass
            elif x < 0.935:
                b.kill(); b.boot(); st["restarts"] += 1
                h = tenant(b, A)
            else:
                r = h.write(1, random.randrange(0, BL), bytes(512))
                k = "W:" + sk(r); st["senses"][k] = st["senses"].get(k, 0) + 1
finally:
    st["faults"] = len(st["faults"])
    print(st); print("alive", b.alive()); b.stop()
