# Factory-default NV memory for a board: what a new board boots with (ARCHITECTURE "Factory default").
#   micropython firmware/factory.py BOARD.json OUT.bin
# System drive 0 = RAID 5 over slots 0-3 (the primary), system drive 1 = RAID 1 over slots 4-5
# with LOG set (the log drive, smaller than the primary); on both host ports LUN 0 -> SD0 and
# LUN 1 -> SD1 (the backup LUN).
import sys
from hw import nvram
from storage import raid
from hw import board as boardmod

STRIPE_KB = 64


def default_config(b):
    if b["populated_slots"] < 6:
        raise ValueError("the factory layout needs 6 populated slots, the board has %d" % b["populated_slots"])
    tpc = b["targets_per_channel"]
    blocks = b["disk_mb"] * 2048
    per = blocks // (STRIPE_KB * 2) * (STRIPE_KB * 2)
    cfg = nvram.Config()

    def vd(slots, n):
        return [(s // tpc, s % tpc, 0, n) for s in slots]

    cfg.sd[0] = nvram.SystemDriveEntry(nvram.RAID5, vd(range(4), per),
                                       raid.capacity(raid.RAID5, 4, per, STRIPE_KB * 2), STRIPE_KB)
    cfg.sd[1] = nvram.SystemDriveEntry(nvram.RAID1 | nvram.LOG, vd((4, 5), blocks),
                                       raid.capacity(raid.RAID1, 2, blocks, STRIPE_KB * 2), STRIPE_KB,
                                       chunk_kb=64)
    for port in range(nvram.PORTS):
        cfg.lunmap[port * nvram.LUNS + 0] = 0
        cfg.lunmap[port * nvram.LUNS + 1] = 1
    return cfg


def main(argv):
    if len(argv) != 3:
        print("usage: micropython firmware/factory.py BOARD.json OUT.bin")
        return 2
    b = boardmod.load(argv[1])
    image = nvram.encode(default_config(b), 1)
    with open(argv[2], "wb") as f:
        f.write(image)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
