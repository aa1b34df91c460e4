# Factory-default NV memory for a board: what a new board boots with (nvram/README.md "Factory images").
#   micropython firmware/factory.py BOARD.json OUT.bin
# System drive 0 = RAID 5 over slots 0-3 (the primary), system drive 1 = RAID 1 over slots 4-5
# with LOG set (the log drive, smaller than the primary); on both host ports LUN 0 -> SD0 and
# LUN 1 -> SD1 (the backup LUN).
import sys
from hw import nvram
from hw import board as boardmod
from hw.levels import RAID1, RAID5
from storage import raid

STRIPE_KB = 64


def default_config(b):
    if b["populated_slots"] < 6:
        raise ValueError("the factory layout needs 6 populated slots, the board has %d" % b["populated_slots"])
    tpc = b["targets_per_channel"]
    blocks = b["disk_mb"] * 2048
    per = blocks // (STRIPE_KB * 2) * (STRIPE_KB * 2)
    cfg = nvram.Config()

    def entry(level, slots, extent, flags=0, chunk_kb=0):
        return nvram.SystemDriveEntry(level | flags, [(s // tpc, s % tpc, 0, extent) for s in slots],
                                      raid.capacity(level, len(slots), extent, STRIPE_KB * 2), STRIPE_KB,
                                      chunk_kb=chunk_kb)

    cfg.sd[0] = entry(RAID5, range(4), per)
    cfg.sd[1] = entry(RAID1, (4, 5), blocks, nvram.LOG, 64)
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
