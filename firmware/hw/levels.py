# RAID levels and system drive status: the one place the firmware spells them. The numbers are the
# S_D_E's (nvram/README.md): NV memory stores them, storage/raid.py lays drives out by them, the
# command table and the console show them by the names below.
from micropython import const

# S_D_E->raid & RAID_MASK (the seed's defines)
RAID0 = const(0)
RAID1 = const(1)
RAID3 = const(3)
RAID5 = const(5)
RAID6 = const(6)               # RAID 0+1 in this family
NORAID = const(7)              # JBOD
RAID_MASK = const(0x0F)
LEVELS = (RAID0, RAID1, RAID3, RAID5, RAID6, NORAID)
LEVEL_NAMES = {RAID0: "RAID0", RAID1: "RAID1", RAID3: "RAID3", RAID5: "RAID5", RAID6: "RAID0+1", NORAID: "JBOD"}
LEVELS_TEXT = "0, 1, 3, 5, 6 (RAID 0+1) or 7 (JBOD)"
# what sd_create takes for a level: its number, its name, or the names other families give it
LEVEL_WORDS = {"RAID6": RAID6, "RAID10": RAID6}
LEVEL_WORDS.update({str(lv): lv for lv in LEVELS})
LEVEL_WORDS.update({name: lv for lv, name in LEVEL_NAMES.items()})
MAX_MEMBERS = const(16)


def validate(level, n):
    # None when n members suit the level, else why not
    if level not in LEVEL_NAMES:
        return "unknown RAID level %r (%s)" % (level, LEVELS_TEXT)
    if level == NORAID and n != 1:
        return "JBOD takes exactly 1 disk, got %d" % n
    if level == RAID0 and n < 2:
        return "RAID0 needs at least 2 disks, got %d" % n
    if level == RAID1 and n != 2:
        return "RAID1 takes exactly 2 disks, got %d" % n
    if (level == RAID3 or level == RAID5) and n < 3:
        return "%s needs at least 3 disks, got %d" % (LEVEL_NAMES[level], n)
    if level == RAID6 and (n < 4 or n % 2):
        return "RAID0+1 needs an even number of disks, at least 4, got %d" % n
    if n > MAX_MEMBERS:
        return "at most %d disks in a system drive, got %d" % (MAX_MEMBERS, n)
    return None


# S_D_E->status (values of the DAC960 family) and the names SystemDrive.status(), the command
# table and every view use for them
ONLINE = const(0x03)
CRITICAL = const(0x04)
OFFLINE = const(0xFF)
STATUS_NAMES = {ONLINE: "ONLINE", CRITICAL: "CRITICAL", OFFLINE: "OFFLINE"}
STATUS_CODES = {name: code for code, name in STATUS_NAMES.items()}
