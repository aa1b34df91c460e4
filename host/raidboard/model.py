"""The board as the host names it: RAID levels, member rules, drive states, how many drives, ports,
LUNs and members there are, and what NV memory holds (nvram/README.md). One home for these facts:
argument checking, tables, the NV image decoder and the shell's completion all read them here."""
import re

MAX_SD = 8                  # system drives sd0..sd7
MAX_MEMBERS = 8             # disks of one system drive: the S_D_E holds vdrive[8]
PORTS, LUNS = 2, 8          # host ports 0 and 1, LUNs 0..7 on each

# level number (the low nibble of the S_D_E raid byte) -> name
LEVELS = {0: "RAID0", 1: "RAID1", 3: "RAID3", 5: "RAID5", 6: "RAID0+1", 7: "JBOD"}
# what a user may type for a level -> its number
RAID_NAMES = {"0": 0, "1": 1, "3": 3, "5": 5, "6": 6, "0+1": 6, "10": 6, "01": 6, "7": 7, "jbod": 7}
MEMBER_RULES = "RAID 1 needs 2 disks, RAID 3/5 at least 3, RAID 0+1 an even number >= 4"

# S_D_E status byte -> name
DRIVE_STATUS = {0x03: "ONLINE", 0x04: "CRITICAL", 0xFF: "OFFLINE"}

# strings NV memory holds, in UTF-8 bytes (each field is NUL padded: one byte more for the user
# and the initiator name; the secret fills its 32)
CHAP_USER_MAX, CHAP_SECRET_MIN, CHAP_SECRET_MAX, ISCSI_NAME_MAX = 63, 12, 32, 223
# an iSCSI name in its normalized form (RFC 3720 3.2.6, RFC 3722)
ISCSI_NAME = re.compile(r"iqn\.\d{4}-(0[1-9]|1[0-2])\.[a-z0-9-]+(\.[a-z0-9-]+)*(:[a-z0-9.:-]+)?"
                        r"|eui\.[0-9a-f]{16}|naa\.([0-9a-f]{16}|[0-9a-f]{32})")
