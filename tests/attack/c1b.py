from common import *
import random
random.seed(11)
b = boot("/tmp/atk/c1b")
st = {"cmds": 0, "leaks": 0, "states": []}
try:
    for p, l in ((0, 0), (1, 0)):
        cmd(b, "lun_unmap", {"port": p, "lun": l})
    cmd(b, "sd_delete", {"sd": 0})
    cmd(b, "sd_create", {"raid": 5, "slots": [0,1,2,3], "mb": 17, "sd": 0})
    cmd(b, "sd_create", {"raid": 5, "slots": [0,1,2,3], "mb": 17, "sd": 2})
    cmd(b, "sd_create", {"raid": 0, "slots": [0,1,2,3], "mb": 4, "sd": 3, "wb": True})
    cmd(b, "lun_map", {"port": 0, "lun": 0, "sd": 0}); cmd(b, "lun_map", {"port": 0, "lun": 2, "sd": 2})
    cmd(b, "lun_map", {"port": 0, "lun": 3, "sd": 3})
    cmd(b, "mask_set", {"initiator": A, "luns": [[0, 0], [0, 3]]})
    cmd(b, "mask_set", {"initiator": B, "luns": [[0, 2], [0, 1]]})
    bb = tenant(b, B); a = tenant(b, A)
    PAT = b"TENANT-B-SECRET!" * 4096   # 64 KiB
    for lba in range(0, 4096, 128):
        bb.write(2, lba, PAT)
    def probe(tag):
        for k in range(150):
            bb.read(2, random.randrange(0, 4096 - 128), 128)          # B's data through the core buffer
            lun = random.choice([0, 3])
            op = random.choice(["read", "read", "r6", "caw", "gls", "ms", "inq", "rs", "rc", "rdd", "ver", "ws"])
            lba = random.randrange(0, 30000)
            if op == "read": c = struct.pack(">BBQIBB", 0x88, 0, lba, random.choice([0, 1, 7, 128]), 0, 0); rl = 65536
            elif op == "r6": c = bytes([0x08, 0, (lba >> 8) & 0xff, lba & 0xff, 0, 0]); rl = 65536
            elif op == "caw": c = bytes([0x89, 0]) + struct.pack(">Q", lba) + bytes([0, 0, 0, 1, 0, 0]); rl = 0
            elif op == "gls": c = struct.pack(">BBQIBB", 0x9E, 0x12, lba, 65535, 0, 0); rl = 65536
            elif op == "ms": c = bytes([0x5A, 0, 0x3F, 0xFF, 0, 0, 0, 0xFF, 0xFF, 0]); rl = 65536
            elif op == "inq": c = bytes([0x12, 1, random.choice([0, 0x80, 0x83, 0xB0, 0xB1]), 0xFF, 0xFF, 0]); rl = 65536
            elif op == "rs": c = bytes([0x03, 0, 0, 0, 255, 0]); rl = 65536
            elif op == "rc": c = bytes([0x9E, 0x10] + [0] * 8 + [0, 0, 0xFF, 0xFF, 0, 0]); rl = 65536
            elif op == "rdd": c = bytes([0x37, 0, 0x1F, 0, 0, 0, 0, 0xFF, 0xFF, 0]); rl = 65536
            elif op == "ver": c = struct.pack(">BBQIBB", 0x8F, 0x02, lba, 1, 0, 0); rl = 0
            else: c = struct.pack(">BBQIBB", 0x93, 0, lba, 1, 0, 0); rl = 0
            do = None
            if op == "caw": do = os.urandom(1024)
            if op == "ver": do = os.urandom(512)
            if op == "ws": do = os.urandom(512)
            r = a.command(lun, c, data_out=do, read_len=rl); st["cmds"] += 1
            if b"TENANT-B" in r["data"] or (r["sense"] and b"TENANT" in r["sense"]):
                st["leaks"] += 1; print("LEAK", tag, op, c.hex(), flush=True)
        st["states"].append(tag)
    probe("healthy")
    cmd(b, "disk_fail", {"slot": 1}); probe("degraded")
    cmd(b, "disk_replace", {"slot": 1}); probe("rebuilding")
    # B writes while A reads degraded
    cmd(b, "disk_fail", {"slot": 2}); probe("degraded2")
finally:
    print(st); print("alive", b.alive()); b.stop()
