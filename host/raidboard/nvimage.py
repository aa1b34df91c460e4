"""Offline decoder of NV memory images (format: nvram/README.md), for `raidboard nvram dump`.

The host never imports firmware code: this is an independent CPython reading of the documented
format, so a dump is also a check of the firmware's writer. An NV memory file holds two banks
(bank A at offset 0, bank B at half the file); each bank is a header (magic "RBNV", version,
generation, CRC32) and the payload: eight system drive entries (the seed's S_D_E plus an
extension), the LUN map, the password, CHAP, LUN masks and the controller parameters; version 2
adds each mask's own CHAP secret (only whether one is set is ever reported). The bank
with a valid CRC and the higher generation is the current image. A file of one bank (a factory
image) decodes too.
"""
import struct
import zlib

from .model import CHAP_SECRET_MAX, CHAP_USER_MAX, DRIVE_STATUS, ISCSI_NAME_MAX, LEVELS, LUNS, MAX_MEMBERS, \
    MAX_SD, PORTS

MAGIC = b"RBNV"
VERSION = 2                         # version 1: the same payload without the mask secrets
HEADER = struct.Struct("<4sHHII")   # magic, version, reserved, generation, crc32
MAX_VDRIVES = MAX_MEMBERS
SDE = struct.Struct("<BBBB")        # status, raid, n_drvs, affinity
VDRIVE = struct.Struct("<BBHII")    # channel, target, reserved, start block, blocks
SDE_LEN = SDE.size + MAX_VDRIVES * VDRIVE.size
SDX = struct.Struct("<IHHI")        # capacity blocks, stripe KiB, chunk KiB, reserved
SD_SLOT = SDE_LEN + SDX.size
LUNMAP_OFF = MAX_SD * SD_SLOT
PW_OFF = LUNMAP_OFF + PORTS * LUNS  # u8 "set" + 20-byte SHA-1 digest
CHAP_OFF = PW_OFF + 21              # user 64 + secret 32, NUL padded
CHAP_USER_LEN = CHAP_USER_MAX + 1
CHAP_LEN = CHAP_USER_LEN + CHAP_SECRET_MAX
MASKS, IQN_LEN = 8, ISCSI_NAME_MAX + 1
MASK_OFF = CHAP_OFF + CHAP_LEN      # MASKS x (initiator name, u16 bitmap of port*8+lun)
PARAMS_OFF = MASK_OFF + MASKS * (IQN_LEN + 2)
PARAMS_LEN = 64
PAYLOAD_V1_LEN = PARAMS_OFF + PARAMS_LEN
MASK_SECRET_OFF = PAYLOAD_V1_LEN    # version 2: MASKS x secret, NUL padded
PAYLOAD_LEN = MASK_SECRET_OFF + MASKS * CHAP_SECRET_MAX
NO_AUTO_REBUILD = 0x01             # params byte 0
BANK_MIN = HEADER.size + PAYLOAD_V1_LEN   # a version 1 bank
BANK_LEN = HEADER.size + PAYLOAD_LEN      # a version 2 bank, what the firmware writes
UNMAPPED = 0xFF

RAID_MASK, LOG, WB_MSK = 0x0F, 0x40, 0x80


class BankError(Exception):
    pass


STRIPE_KB = (8, 16, 32, 64, 128, 256)
CHUNK_KB = (0, 4, 8, 16, 32, 64, 128, 256)


def _cstr(b, what):
    try:
        return bytes(b).split(b"\0", 1)[0].decode("utf-8")
    except UnicodeDecodeError:
        raise BankError("%s is not text" % what)


def _check_drive(i, raid, status, stripe_kb, chunk_kb, cap):
    # the field rules of nvram/README.md ("Valid values"): a bank breaking one is not used
    why = None
    if raid & RAID_MASK not in LEVELS or raid & 0x30:
        why = "raid byte 0x%02X (a level of 0, 1, 3, 5, 6, 7 plus LOG 0x40 / WB_MSK 0x80)" % raid
    elif status not in DRIVE_STATUS:
        why = "status 0x%02X" % status
    elif stripe_kb not in STRIPE_KB:
        why = "stripe of %d KiB (one of %s)" % (stripe_kb, STRIPE_KB)
    elif chunk_kb not in CHUNK_KB:
        why = "chunk of %d KiB (one of %s)" % (chunk_kb, CHUNK_KB)
    elif not cap:
        why = "capacity of 0 blocks"
    if why:
        raise BankError("system drive %d: %s" % (i, why))


def _check_shared_blocks(drives):
    # two system drives (the log drive too) never share blocks of a disk; within one drive that
    # is the drive's own fault (it cannot be built), not the bank's
    ext = [(v["channel"], v["target"], v["start"], v["blocks"], d["sd"]) for d in drives for v in d["vdrive"]]
    for k, (ch, tg, a, n, i) in enumerate(ext):
        for ch2, tg2, a2, n2, i2 in ext[k + 1:]:
            if i2 != i and (ch2, tg2) == (ch, tg) and a < a2 + n2 and a2 < a + n:
                raise BankError("system drive %d and system drive %d share blocks of disk %d:%d "
                                "(extents %d+%d and %d+%d)" % (i, i2, ch, tg, a, n, a2, n2))


def _mask_secret_set(payload, k):
    # whether mask slot k has its own CHAP secret; the secret itself is never returned
    off = MASK_SECRET_OFF + k * CHAP_SECRET_MAX
    return bool(_cstr(payload[off:off + CHAP_SECRET_MAX], "LUN mask %d's secret" % k))


def decode_bank(bank):
    """One bank -> dict; raises BankError naming what is wrong."""
    if len(bank) < BANK_MIN:
        raise BankError("truncated: %d bytes, a bank needs %d" % (len(bank), BANK_MIN))
    if not any(bank[:HEADER.size]):
        raise BankError("blank (never written)")
    magic, version, _, generation, crc = HEADER.unpack_from(bank, 0)
    if magic != MAGIC:
        raise BankError("foreign image: magic %r, expected %r" % (magic, MAGIC))
    if version not in (1, VERSION):
        raise BankError("unsupported version %d (this decoder reads versions 1 and %d)" % (version, VERSION))
    size = PAYLOAD_LEN if version == VERSION else PAYLOAD_V1_LEN
    if len(bank) < HEADER.size + size:
        raise BankError("truncated: %d bytes, a version %d bank needs %d" % (len(bank), version, HEADER.size + size))
    payload = bytes(bank[HEADER.size:HEADER.size + size])
    calc = zlib.crc32(payload, zlib.crc32(bytes(bank[:12]))) & 0xFFFFFFFF
    if calc != crc:
        raise BankError("CRC mismatch: stored 0x%08X, computed 0x%08X (damaged)" % (crc, calc))
    drives = []
    for i in range(MAX_SD):
        off = i * SD_SLOT
        status, raid, n, affinity = SDE.unpack_from(payload, off)
        if n == 0:
            continue
        if n > MAX_VDRIVES:
            raise BankError("system drive %d: n_drvs %d exceeds %d" % (i, n, MAX_VDRIVES))
        vd = []
        for j in range(n):
            ch, tg, _, start, blocks = VDRIVE.unpack_from(payload, off + SDE.size + j * VDRIVE.size)
            vd.append({"channel": ch, "target": tg, "start": start, "blocks": blocks})
        cap, stripe_kb, chunk_kb, _ = SDX.unpack_from(payload, off + SDE_LEN)
        _check_drive(i, raid, status, stripe_kb, chunk_kb, cap)
        drives.append({"sd": i, "status": DRIVE_STATUS.get(status, "0x%02X" % status), "status_code": status,
                       "raid": raid, "level": raid & RAID_MASK,
                       "level_name": LEVELS.get(raid & RAID_MASK, "unknown %d" % (raid & RAID_MASK)),
                       "log": bool(raid & LOG), "wb": bool(raid & WB_MSK), "n_drvs": n,
                       "affinity": affinity, "blocks": cap, "stripe_kb": stripe_kb, "chunk_kb": chunk_kb,
                       "vdrive": vd})
    _check_shared_blocks(drives)
    lunmap = [{"port": k // LUNS, "lun": k % LUNS, "sd": v}
              for k, v in enumerate(payload[LUNMAP_OFF:LUNMAP_OFF + PORTS * LUNS]) if v != UNMAPPED]
    for m in lunmap:
        if m["sd"] >= MAX_SD:
            raise BankError("LUN map: port %d LUN %d names system drive %d (there are 0..%d)"
                            % (m["port"], m["lun"], m["sd"], MAX_SD - 1))
    masks = []
    for k in range(MASKS):
        off = MASK_OFF + k * (IQN_LEN + 2)
        name = _cstr(payload[off:off + IQN_LEN], "LUN mask %d's initiator name" % k)
        if name:
            bits = struct.unpack_from("<H", payload, off + IQN_LEN)[0]
            masks.append({"initiator": name, "bitmap": bits,
                          "luns": [[b // LUNS, b % LUNS] for b in range(PORTS * LUNS) if bits >> b & 1],
                          "secret_set": version == VERSION and _mask_secret_set(payload, k)})
    params = payload[PARAMS_OFF:PARAMS_OFF + PARAMS_LEN]
    return {"magic": magic.decode("latin-1"), "version": version, "generation": generation,
            "crc32": "0x%08X" % crc, "system_drives": drives, "lun_map": lunmap,
            "password_set": bool(payload[PW_OFF]),
            "chap_user": _cstr(payload[CHAP_OFF:CHAP_OFF + CHAP_USER_LEN], "the CHAP user"),
            "chap_secret_set": bool(_cstr(payload[CHAP_OFF + CHAP_USER_LEN:CHAP_OFF + CHAP_LEN], "the CHAP secret")),
            "masks": masks, "auto_rebuild": not params[0] & NO_AUTO_REBUILD}


def dump(image):
    """Whole NV memory file (or one bank) -> {size, banks:[{bank, offset, ok, error|image}], current}."""
    n = len(image)
    if n < BANK_MIN:
        return {"size": n, "banks": [], "current": None,
                "error": "truncated: %d bytes, an image needs at least %d" % (n, BANK_MIN)}
    offsets = [0]
    if n >= 2 * BANK_MIN:
        offsets.append(n // 2)
    banks = []
    for k, off in enumerate(offsets):
        end = off + n // 2 if len(offsets) == 2 else n
        entry = {"bank": "AB"[k], "offset": off}
        try:
            entry["image"] = decode_bank(memoryview(image)[off:end])
            entry["ok"] = True
        except BankError as e:
            entry["ok"] = False
            entry["error"] = str(e)
        banks.append(entry)
    good = [b for b in banks if b["ok"]]
    current = max(good, key=lambda b: b["image"]["generation"]) if good else None
    d = {"size": n, "banks": banks, "current": current["bank"] if current else None}
    if current is None:
        d["error"] = "no valid bank: " + "; ".join("bank %s: %s" % (b["bank"], b["error"]) for b in banks)
    return d


def shown(s):
    """A string from NV memory or the board as a terminal may print it: control characters (which an
    image from another writer, an event or any board text can hold) and every other non-printable
    character as \\uXXXX, never as the escape sequences they would be. The CLI prints all text from
    the board through it (render.out, render.event_line, errors.report)."""
    return "".join(c if c.isprintable() else "\\u%04x" % ord(c) for c in str(s))


def text(d):
    lines = ["NV memory image %s: %d bytes" % (d.get("file", ""), d["size"])]
    for b in d["banks"]:
        cur = " (current)" if b["bank"] == d.get("current") else ""
        if not b["ok"]:
            lines.append("bank %s at 0x%X: %s" % (b["bank"], b["offset"], b["error"]))
            continue
        im = b["image"]
        lines.append("bank %s at 0x%X%s: version %d, generation %d, CRC %s ok"
                     % (b["bank"], b["offset"], cur, im["version"], im["generation"], im["crc32"]))
    if d.get("current") is None:
        lines.append(d.get("error", "no valid bank"))
        return "\n".join(lines)
    im = next(b for b in d["banks"] if b["bank"] == d["current"])["image"]
    lines.append("")
    lines.append("system drives (S_D_E):")
    if not im["system_drives"]:
        lines.append("  none")
    for s in im["system_drives"]:
        flags = [f for f, on in (("LOG", s["log"]), ("WB", s["wb"])) if on]
        lines.append("  sd%d  raid=0x%02X %s%s  status %s  n_drvs %d  affinity %d  %d blocks (%d MB)  "
                     "stripe %d KiB%s" % (s["sd"], s["raid"], s["level_name"], "".join("|" + f for f in flags),
                                          s["status"], s["n_drvs"], s["affinity"], s["blocks"],
                                          s["blocks"] * 512 // 1048576, s["stripe_kb"],
                                          ("  chunk %d KiB" % s["chunk_kb"]) if s["chunk_kb"] else ""))
        for j, v in enumerate(s["vdrive"]):
            lines.append("      vdrive[%d] disk %d:%d  start %d  blocks %d"
                         % (j, v["channel"], v["target"], v["start"], v["blocks"]))
    lines.append("LUN map:")
    if not im["lun_map"]:
        lines.append("  none")
    for m in im["lun_map"]:
        lines.append("  port %d LUN %d -> sd%d" % (m["port"], m["lun"], m["sd"]))
    lines.append("password: %s" % ("set" if im["password_set"] else "none"))
    lines.append("CHAP: %s" % (("user %s" % shown(im["chap_user"])) if im["chap_user"] else "none"))
    for m in im["masks"]:
        lines.append("mask: %s -> %s%s" % (shown(m["initiator"]), " ".join("%d/%d" % tuple(x) for x in m["luns"])
                                           or "no LUNs", "  (own CHAP secret)" if m["secret_set"] else ""))
    lines.append("automatic rebuild: %s" % ("on" if im["auto_rebuild"] else "off"))
    return "\n".join(lines)
