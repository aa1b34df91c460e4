# Drives a controller through its SCSI core for the model-based test (tests/test_snapshot_model.py).
# One request per stdin line, one JSON answer per stdout line:
#   write LUN LBA N SEED   -> {"status", "sense"}      blocks tagged with (block, SEED)
#   read LUN LBA N         -> {"status", "sense", "tags": [seed per block, or -1 if not a whole tag]}
#   cdb LUN HEX            -> {"status", "sense"}
#   reboot                 -> {}                       drop the controller unflushed, boot again
#   status                 -> the snapshot status
# Arguments: STATE LOG_BLOCKS CHUNK_KB (a small log drive, so overflows happen)
import sys
import json
import struct

sys.path.insert(0, __file__.rsplit("/", 1)[0])
sys.path.insert(0, __file__.rsplit("/", 1)[0] + "/../../firmware")
import fw


def rw10(op, lba, n):
    return bytes((op, 0)) + lba.to_bytes(4, "big") + b"\0" + n.to_bytes(2, "big") + b"\0"


def answer(st, sn, extra=None):
    d = {"status": st, "sense": bytes(sn[2:3] + sn[12:14]).hex() if sn else ""}
    if extra:
        d.update(extra)
    print(json.dumps(d))


def main():
    state = sys.argv[1]
    log_blocks, chunk_kb = int(sys.argv[2]), int(sys.argv[3])
    ctl = fw.boot(state)
    if ctl.cfg.sd[1].chunk_kb != chunk_kb:
        for port in (0, 1):
            ctl.command("lun_unmap", {"port": port, "lun": 1})
        ctl.command("log_clear", {"sd": 1})
        ctl.command("sd_delete", {"sd": 1})
        ctl.command("sd_create", {"raid": 1, "extents": [[4, 0, log_blocks], [5, 0, log_blocks]], "sd": 1})
        ctl.command("log_set", {"sd": 1, "chunk_kb": chunk_kb})
        ctl.command("lun_map", {"port": 0, "lun": 1, "sd": 1})
    print(json.dumps({"capacity": ctl.engine.max_slots}))
    buf = bytearray(256 * 512)
    while True:
        line = sys.stdin.readline()
        if not line:
            return
        w = line.split()
        if w[0] == "write":
            lun, lba, n, seed = int(w[1]), int(w[2]), int(w[3]), int(w[4])
            for i in range(n):
                buf[i * 512:(i + 1) * 512] = struct.pack("<II", lba + i, seed) * 64
            st, sn, _ = ctl.execute(("iqn.model", 0, lun), rw10(0x2A, lba, n), memoryview(buf)[:n * 512])
            answer(st, sn)
        elif w[0] == "read":
            lun, lba, n = int(w[1]), int(w[2]), int(w[3])
            st, sn, d = ctl.execute(("iqn.model", 0, lun), rw10(0x28, lba, n))
            tags = []
            for i in range(len(d) // 512):
                blk = d[i * 512:(i + 1) * 512]
                b_, s_ = struct.unpack_from("<II", blk, 0)
                whole = blk[8:] == blk[:504] and b_ in (lba + i, 0)
                tags.append(s_ if whole else -1)
            answer(st, sn, {"tags": tags})
        elif w[0] == "cdb":
            st, sn, _ = ctl.execute(("iqn.model", 0, int(w[1])), bytes.fromhex(w[2]))
            answer(st, sn)
        elif w[0] == "reboot":
            ctl = fw.reboot(ctl)
            print("{}")
        elif w[0] == "status":
            print(json.dumps(ctl.engine.status()))


main()
