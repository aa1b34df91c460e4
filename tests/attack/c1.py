from common import *
import random, itertools
random.seed(1)
b = boot("/tmp/atk/c1")
stats = {"cmds": 0, "findings": []}
def find(msg):
    stats["findings"].append(msg); print("FINDING", msg, flush=True)
try:
    for p, l in ((0, 0), (1, 0)):
        cmd(b, "lun_unmap", {"port": p, "lun": l})
    cmd(b, "sd_delete", {"sd": 0})
    # A: sd0 raid5 [0..3] 17MB/disk at start; B: sd2 raid5 [0..3] right after; sd3 raid0 [0,1] B too
    print(cmd(b, "sd_create", {"raid": 5, "slots": [0,1,2,3], "mb": 17, "sd": 0}))
    print(cmd(b, "sd_create", {"raid": 5, "slots": [0,1,2,3], "mb": 17, "sd": 2}))
    print(cmd(b, "sd_create", {"raid": 1, "slots": [0,1], "mb": 8, "sd": 3}))
    cmd(b, "lun_map", {"port": 0, "lun": 0, "sd": 0}); cmd(b, "lun_map", {"port": 0, "lun": 2, "sd": 2})
    cmd(b, "lun_map", {"port": 1, "lun": 3, "sd": 3})
    cmd(b, "mask_set", {"initiator": A, "luns": [[0, 0]]})
    cmd(b, "mask_set", {"initiator": B, "luns": [[0, 2], [0, 1], [1, 1], [1, 3]]})
    bb = tenant(b, B)
    PAT = b"TENANT-B-SECRET!" * 32  # 512 bytes
    for _ in range(3): print("pre", bb.command(2, bytes(6))["sense"])
    rc = bb.command(2, bytes([0x9E, 0x10] + [0]*8 + [0, 0, 0, 32, 0, 0]), read_len=32)
    capB = struct.unpack(">Q", rc["data"][:8])[0] + 1
    for lba in (0, 1, 100, capB - 1):
        assert bb.write(2, lba, PAT)["status"] == 0
    rc = bb.command(1, bytes([0x9E, 0x10] + [0]*8 + [0, 0, 0, 32, 0, 0]), read_len=32)
    # B writes pattern also to sd3
    bbp1 = tenant(b, B, port=1)
    for lba in (0, 5):
        assert bbp1.write(3, lba, PAT)["status"] == 0
    # B holds a PR registration + reservation on its LUN 2
    key = struct.pack(">Q", 0xB0B0B0B0)
    po = bytes([0x5F, 0, 0, 0, 0, 0, 0, 0, 24, 0])
    print("B register", bb.command(2, po, data_out=bytes(8) + key + bytes(8))["status"])
    print("B reserve", bb.command(2, bytes([0x5F, 1, 0x01, 0, 0, 0, 0, 0, 24, 0]), data_out=key + bytes(16))["status"])
    print("snap", cmd(b, "snapshot_start", {"sd": 2}))
    a = tenant(b, A)
    rc = a.command(0, bytes([0x9E, 0x10] + [0]*8 + [0, 0, 0, 32, 0, 0]), read_len=32)
    capA = struct.unpack(">Q", rc["data"][:8])[0] + 1
    print("capA", capA, "capB", capB)
    def run(lun, cdb, data_out=None, read_len=65536):
        stats["cmds"] += 1
        try:
            r = a.command(lun, cdb, data_out=data_out, read_len=read_len)
        except Exception as e:
            find("A conn error %r on lun %d cdb %s" % (e, lun, bytes(cdb).hex())); return None
        if b"TENANT-B" in r["data"]:
            find("B data in A's data-in: lun %d cdb %s" % (lun, bytes(cdb).hex()))
        return r
    # 1) every opcode at every masked LUN
    for lun in range(1, 8):
        for op in range(256):
            ln = (6, 10, 10, 16, 16, 12, 16, 16)[op >> 5]
            cdb = bytearray(ln); cdb[0] = op
            if op in (0x12,): cdb[4] = 96
            if op == 0x03: cdb[4] = 18
            if op == 0xA0: cdb[9] = 255
            for v in range(3):
                c = bytearray(cdb)
                if v == 1:
                    c[1:] = bytes(random.getrandbits(8) for _ in range(ln - 1))
                if v == 2 and op == 0x20:
                    c[2] = random.choice([0x43, 0x44, 0x60, 0x61])
                r = run(lun, bytes(c))
                if r is None: a = tenant(b, A); continue
                ok = r["status"] == 2 and sense_key(r["sense"]) in ((5, 0x25, 0), (5, 0x20, 0), (5, 0x24, 0))
                if op in (0x12, 0xA0, 0x03) and r["status"] in (0, 2):
                    if op == 0x12 and r["status"] == 0 and r["data"][:1] not in (b"\x7f",):
                        find("INQUIRY masked lun %d pq %r" % (lun, r["data"][:1]))
                    if op == 0x03 and r["status"] == 0 and r["data"][2:3] != b"\x05":
                        find("REQUEST SENSE masked lun %d gives %s" % (lun, r["data"][:18].hex()))
                    if op == 0xA0 and r["status"] == 0 and r["data"][8:] .strip(b"\0") not in (b"",) and r["data"][9:10] != b"\x00":
                        find("REPORT LUNS lists %s" % r["data"][:40].hex())
                    continue
                if not ok:
                    find("masked lun %d op %02x -> status %d sense %s" % (lun, op, r["status"], r["sense"] and r["sense"].hex()))
    print("phase1 cmds", stats["cmds"], flush=True)
    # 2) direct commands on own LUN naming every drive
    for s in range(256 if False else 9):
        for d in range(9):
            for op in (0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0xFF):
                c = bytes([0x20, 0, 0x44, op, s, d, 0, 0, 2, 0])
                r = run(0, c, read_len=64)
                w = r and r["status"] == 0 and r["data"]
                if w and w not in (b"\x01\x05", b"\x00\x02"):
                    find("LOP start op %d %d->%d word %s" % (op, s, d, r["data"].hex()))
                if r and r["status"] not in (0, 2):
                    find("LOP start op %d %d->%d status %d" % (op, s, d, r["status"]))
        r = run(0, bytes([0x20, 0, 0x43, 1, 0, 0, 0, 0, 2, 0]), read_len=64)
        print("lopstatus", s, r and (r["status"], r["data"].hex(), r["sense"] and r["sense"].hex()))
    for c in (bytes([0x20, 0, 0x60] + [0]*7), bytes([0x20, 0, 0x61] + [0]*7), bytes([0x20, 0xE0, 0x61] + [0]*7)):
        r = run(0, c, read_len=64); print("snapcmd", c.hex(), r["status"], r["sense"] and r["sense"].hex())
    print("snapshot after A", cmd(b, "snapshot_status"))
    # 3) boundary I/O on own LUN
    for lba, n in ((capA - 1, 2), (capA, 1), (capA - 1, 0xFFFF), (2**64 - 1, 2), (2**63, 1), (2**32 - 1, 2), (capA + 10, 1)):
        for op in (0x88, 0x8F, 0x90, 0x9E):
            if op == 0x9E:
                c = struct.pack(">BBQIBB", 0x9E, 0x12, lba, 64, 0, 0)
            else:
                c = struct.pack(">BBQIBB", op, 0, lba, n, 0, 0)
            r = run(0, c, read_len=min(n, 64) * 512)
            if r and r["status"] == 0 and op == 0x88:
                find("read beyond end GOOD lba %d n %d" % (lba, n))
        for op in (0x8A, 0x93, 0x89):
            data = b"\xAA" * 512 * (2 if op == 0x89 else 1)
            nn = 1
            c = struct.pack(">BBQIBB", op, 0, lba, nn, 0, 0)
            if op == 0x89:
                c = bytes([0x89, 0]) + struct.pack(">Q", lba) + bytes([0, 0, 0, 1, 0, 0])
            r = run(0, c, data_out=data, read_len=0)
            if r and r["status"] == 0 and lba >= capA:
                find("write beyond end GOOD op %02x lba %d" % (op, lba))
    for lba in (capA - 1,):
        for c in (bytes([0x08, (lba >> 16) & 0x1F, (lba >> 8) & 0xFF, lba & 0xFF, 0, 0]),):
            r = run(0, c, read_len=256 * 512)
            print("read6 0 blocks", r["status"], r["sense"] and r["sense"].hex())
    # WRITE SAME 16 covering whole A with NDOB / 0 blocks
    r = run(0, bytes([0x93, 0x01]) + struct.pack(">QI", 0, 0) + b"\0\0", data_out=b"\0"*512, read_len=0)
    print("ws16 0 blocks", r["status"], r["sense"] and r["sense"].hex())
    # 4) PR against B: A on own LUN tries preempt with B's key etc (per-LU keys), PR IN
    for sa in range(4):
        r = run(0, bytes([0x5E, sa, 0, 0, 0, 0, 0, 0x10, 0, 0]), read_len=4096)
        if r and key in r["data"]:
            find("PR IN sa %d on A's LUN shows B's key" % sa)
    for sa in range(8):
        r = run(0, bytes([0x5F, sa, 0x01, 0, 0, 0, 0, 0, 24, 0]), data_out=key + key + bytes(8), read_len=0)
    # 5) TMF from A at B's LUNs
    for f in (1, 2, 3, 4, 5, 6, 7, 8):
        for lun in (1, 2, 3):
            try:
                resp = a.tmf(f, lun=lun)
            except Exception as e:
                find("tmf %d lun %d: %r" % (f, lun, e)); a = tenant(b, A); continue
    # B's reservation still there?
    r = bb.command(2, bytes([0x5E, 1, 0, 0, 0, 0, 0, 0x10, 0, 0]), read_len=4096)
    print("B PR read reservation", r["data"].hex())
    if key not in r["data"]:
        find("B's reservation gone after A's attack")
    r = bb.command(2, bytes([0x00]*6))
    print("B TUR", r["status"], r["sense"] and r["sense"].hex())
    for lba in (0, 1, 100, capB - 1):
        if bb.read(2, lba, 1)["data"] != PAT:
            find("B data changed at %d" % lba)
    if bbp1.read(3, 0, 1)["data"] != PAT: find("B sd3 changed")
    print("snapshot", cmd(b, "snapshot_status"))
    print("lop", cmd(b, "lop_status", {}))
    print("mask", cmd(b, "mask_list"))
finally:
    print("STATS", stats["cmds"], len(stats["findings"]))
    b.stop()
