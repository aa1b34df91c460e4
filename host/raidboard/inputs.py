"""What the user typed, checked before anything is sent: system drive, PORT/LUN, RAID level, disk
slot and hex arguments, and the strings NV memory holds (refused here naming the field and its
limit, as the board would refuse them: nvram/README.md "String fields")."""
import re

from .errors import UsageError
from .model import ISCSI_NAME, ISCSI_NAME_MAX, LUNS, MAX_SD, PORTS, RAID_NAMES

STORCLI_DRIVE = re.compile(r"/c(\d+)/v(\d+)/?")


def parse_sd(s):
    """A system drive: sdN, N, vN or StorCLI's /c0/vN."""
    t = str(s).strip().lower()
    storcli = STORCLI_DRIVE.fullmatch(t)
    if storcli and storcli.group(1) != "0":
        raise UsageError("%s: there is no controller %s: this board is one controller, /c0" % (s, storcli.group(1)))
    if storcli:
        t = storcli.group(2)
    elif t.startswith("sd"):
        t = t[2:]
    elif t.startswith("v"):  # StorCLI-style virtual drive
        t = t[1:]
    if not t.isdigit() or not 0 <= int(t) < MAX_SD:
        raise UsageError("%r is not a system drive: use sd0..sd7, 0..7 or /c0/v0../c0/v7" % s)
    return int(t)


def parse_portlun(s):
    t = str(s).strip()
    parts = t.replace(":", "/").split("/")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise UsageError("%r is not PORT/LUN: write it like 0/1 (host port 0 or 1, LUN 0..7)" % s)
    port, lun = int(parts[0]), int(parts[1])
    if not port < PORTS or not lun < LUNS:
        raise UsageError("%r: host port must be 0 or 1 and LUN 0..7" % s)
    return port, lun


def parse_raid(s):
    t = str(s).strip().lower()
    if t.startswith("raid"):
        t = t[4:]
    if t not in RAID_NAMES:
        raise UsageError("%r is not a RAID level: use 0, 1, 3, 5, 0+1 (6) or jbod (7)" % s)
    return RAID_NAMES[t]


def resolve_slot(sess, s):
    """A disk slot by index (3) or by channel:target name (1:0)."""
    t = str(s).strip()
    if t.isdigit():
        return int(t)
    if ":" in t:
        disks = sess.call("disk_list").get("disks", [])
        for d in disks:
            if str(d.get("name")) == t:
                return d["slot"]
        raise UsageError("no disk slot named %r (see `raidboard disk list`)" % s)
    raise UsageError("%r is not a disk slot: use its index (0, 1, ...) or channel:target (0:1)" % s)


def read_hex(s, what):
    t = "".join(str(s).split())
    if t.lower().startswith("0x"):
        t = t[2:]
    try:
        return bytes.fromhex(t)
    except ValueError:
        raise UsageError("%s %r is not hex (write bytes as hex digits, e.g. 2800000000000000010000)" % (what, s))


def nv_text(value, what, most, least=0):
    """`value` if NV memory can hold it: UTF-8 text without control characters, least..most bytes."""
    try:
        n = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise UsageError("%s is not UTF-8 text" % what)
    bad = next((i for i, c in enumerate(value) if c < " " or "\x7f" <= c <= "\x9f"), None)
    if bad is not None:
        raise UsageError("%s has control character U+%04X at %d" % (what, ord(value[bad]), bad + 1))
    if not least <= n <= most:
        raise UsageError("%s is %d bytes in UTF-8; NV memory holds %s bytes"
                         % (what, n, ("%d to %d" % (least, most)) if least else "at most %d" % most))
    return value


def iscsi_name(name):
    """`name` if it is an iSCSI name in its normalized form (RFC 3720 3.2.6, RFC 3722)."""
    nv_text(name, "the initiator name", ISCSI_NAME_MAX)
    bad = next((c for c in name if not (c in "-.:" or "a" <= c <= "z" or "0" <= c <= "9")), None)
    if bad is not None:
        raise UsageError("the initiator name: U+%04X is not allowed: an iSCSI name has a-z 0-9 - . : only "
                         "(lowercase, RFC 3722)" % ord(bad))
    if not ISCSI_NAME.fullmatch(name):
        raise UsageError("the initiator name %r is not an iSCSI name: iqn.yyyy-mm.reversed.domain[:name], "
                         "eui. + 16 hex digits or naa. + 16 or 32 hex digits (RFC 3720 3.2.6)" % name)
    return name
