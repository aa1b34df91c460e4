# A write storm against a booted controller, for the crash tests (run on micropython):
#   storm.py STATE BOARD.json write SEED    boot, snapshot the region once, then write until killed;
#                                           prints "GO seed lba n" before and "ACK seed" after each
#                                           acknowledged write
#   storm.py STATE BOARD.json check         boot, print the (block, seed) tag of every block of the
#                                           region on the primary ("P") and the backup LUN ("B")
# Every block written carries its own tag (block number, write seed) 64 times, so a reader can tell
# exactly which write a block came from, and that it is whole.
import sys
import struct
import random

sys.path.insert(0, __file__.rsplit("/", 1)[0] + "/../../firmware")
from hw import board
from control import controller

REGION = 24 * 2048                    # 24 MiB of the primary
INITIATE = bytes((0x20, 0, 0x60, 0, 0, 0, 0, 0, 0, 0))


def tagged(lba, n, seed, buf):
    for i in range(n):
        buf[i * 512:(i + 1) * 512] = struct.pack("<II", lba + i, seed) * 64
    return memoryview(buf)[:n * 512]


def rw10(op, lba, n):
    return bytes((op, 0)) + lba.to_bytes(4, "big") + b"\0" + n.to_bytes(2, "big") + b"\0"


def main():
    state, bfile, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    b = board.load(bfile)
    ctl = controller.Controller(b, state, __file__.rsplit("/", 1)[0] + "/../..")
    nexus = ("iqn.storm", 0, 0)
    buf = bytearray(128 * 512)
    if mode == "check":
        for lun, tag in ((0, "P"), (1, "B")):
            out = []
            for lba in range(0, REGION, 128):
                st, sn, d = ctl.execute(("iqn.storm", 0, lun), rw10(0x28, lba, 128))
                if st:
                    print(tag, "ERROR", bytes(sn).hex())
                    break
                for i in range(128):
                    blk = d[i * 512:(i + 1) * 512]
                    ok = blk[8:] == blk[:504]
                    b_, s_ = struct.unpack_from("<II", blk, 0)
                    out.append("%d:%d" % (b_, s_) if ok else "torn")
            print(tag, " ".join(out))
        print("STATE", ctl.engine.status()["state"])
        return
    seed = int(sys.argv[4])
    if ctl.engine.state != 1:
        # first run: the initiate image is tag seed 0 everywhere in the region
        for lba in range(0, REGION, 128):
            ctl.execute(nexus, rw10(0x2A, lba, 128), tagged(lba, 128, 0, buf))
        st, sn, _ = ctl.execute(nexus, INITIATE)
        assert st == 0, sn
        print("SNAP")
    random.seed(seed)
    while True:
        n = random.randint(1, 128)
        lba = random.randint(0, REGION - n)
        seed += 1
        print("GO", seed, lba, n)
        st, sn, _ = ctl.execute(nexus, rw10(0x2A, lba, n), tagged(lba, n, seed, buf))
        if st:
            print("FAIL", seed, bytes(sn).hex())
            return
        print("ACK", seed)


main()
