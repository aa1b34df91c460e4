# NV memory (FIG. 4): the configuration structure 135 and the board's settings, in a binary image
# with two banks. An update writes the bank that does NOT hold the current image, with the next
# generation number and a CRC32; a process killed mid-write leaves at worst that bank torn, and the
# other bank still holds the previous image. Format: nvram/README.md (version 2 adds each LUN
# mask's own CHAP secret after the version 1 payload; a version 1 bank reads as masks without one).
import struct
import binascii
from micropython import const
from hw.levels import LEVELS, RAID_MASK, ONLINE, STATUS_NAMES

MAGIC = b"RBNV"
VERSION = const(2)
VERSION_1 = const(1)           # read: the same payload without the mask secrets
HDR = "<4sHHII"                # magic, version, reserved, generation, crc32
HDR_LEN = const(16)
MAX_SD = const(8)
MAX_VDRIVES = const(8)
PORTS = const(2)
LUNS = const(8)
MASKS = const(8)
IQN_LEN = const(224)
UNMAPPED = const(0xFF)

# S_D_E->raid: a level of hw/levels.py (RAID_MASK) plus these flags
WB_MSK = const(0x80)
LOG = const(0x40)

SDE = "<BBBB"                  # status, raid, n_drvs, affinity
VDRIVE = "<BBHII"              # channel, target, reserved, start block, blocks
SDE_LEN = const(4 + MAX_VDRIVES * 12)
SDX = "<IHHI"                  # extension: capacity blocks, stripe KiB, chunk KiB (log), reserved
SDX_LEN = const(12)
LUNMAP_OFF = const(MAX_SD * (SDE_LEN + SDX_LEN))
PW_OFF = const(LUNMAP_OFF + PORTS * LUNS)       # u8 set + sha1 digest (20)
CHAP_OFF = const(PW_OFF + 21)                    # user (64) + secret (32), NUL padded
MASK_OFF = const(CHAP_OFF + 96)                  # MASKS x (initiator 224 + u16 bitmap)
PARAMS_OFF = const(MASK_OFF + MASKS * (IQN_LEN + 2))  # 64 bytes of controller parameters
PAYLOAD_V1_LEN = const(PARAMS_OFF + 64)
MASK_SECRET_OFF = const(PAYLOAD_V1_LEN)              # version 2: MASKS x secret (32), NUL padded
PAYLOAD_LEN = const(MASK_SECRET_OFF + MASKS * 32)
NO_AUTO_REBUILD = const(0x01)   # params byte 0: a replaced disk is not rebuilt by itself
CHAP_USER_LEN = const(64)
CHAP_SECRET_LEN = const(32)
# what the command table lets into the string fields, in UTF-8 bytes (README "String fields")
CHAP_USER_MAX = const(63)
CHAP_SECRET_MIN = const(12)      # RFC 3720 8.2.1: at least 96 bits
CHAP_SECRET_MAX = const(CHAP_SECRET_LEN)
IQN_MAX = const(223)             # RFC 3720 3.2.6.1


class NvramError(Exception):
    pass


class SystemDriveEntry:
    # one S_D_E plus the fields the seed's structure leaves to the firmware (capacity, stripe, chunk)
    def __init__(self, raid, vdrives, blocks, stripe_kb=64, chunk_kb=0, status=ONLINE, affinity=0):
        self.status = status
        self.raid = raid
        self.affinity = affinity
        self.vdrive = list(vdrives)    # [(channel, target, start, blocks)]
        self.blocks = blocks
        self.stripe_kb = stripe_kb
        self.chunk_kb = chunk_kb

    @property
    def n_drvs(self):
        return len(self.vdrive)

    def level(self):
        return self.raid & RAID_MASK

    def is_log(self):
        return bool(self.raid & LOG)

    def write_back(self):
        return bool(self.raid & WB_MSK)

    def to_dict(self):
        return {"status": STATUS_NAMES.get(self.status, "0x%02X" % self.status), "raid": self.raid,
                "level": self.level(), "log": self.is_log(), "wb": self.write_back(),
                "n_drvs": self.n_drvs, "affinity": self.affinity, "blocks": self.blocks,
                "stripe_kb": self.stripe_kb, "chunk_kb": self.chunk_kb,
                "vdrive": [list(v) for v in self.vdrive]}


class Config:
    # the decoded NV memory
    def __init__(self):
        self.sd = [None] * MAX_SD
        self.lunmap = bytearray(b"\xff" * (PORTS * LUNS))   # [port*8 + lun] -> system drive
        self.password = None                                 # sha1 digest or None
        self.chap_user = ""
        self.chap_secret = ""
        self.masks = []                                      # [(initiator, bitmap of port*8+lun)]
        self.mask_secrets = {}                               # masked initiator -> its own CHAP secret
        self.params = bytearray(64)                          # controller parameters (zero: defaults)
        self.generation = 0

    def auto_rebuild(self):
        return not self.params[0] & NO_AUTO_REBUILD

    def set_auto_rebuild(self, on):
        self.params[0] = (self.params[0] & ~NO_AUTO_REBUILD) | (0 if on else NO_AUTO_REBUILD)

    def lun(self, port, lun):
        sd = self.lunmap[port * LUNS + lun]
        return None if sd == UNMAPPED else sd

    def to_dict(self):
        return {"generation": self.generation,
                "system_drives": [None if e is None else e.to_dict() for e in self.sd],
                "lun_map": [{"port": i // LUNS, "lun": i % LUNS, "sd": v}
                            for i, v in enumerate(self.lunmap) if v != UNMAPPED],
                "password_set": self.password is not None, "chap_user": self.chap_user,
                "masks": [{"initiator": m[0], "bitmap": m[1], "secret_set": m[0] in self.mask_secrets}
                          for m in self.masks],
                "auto_rebuild": self.auto_rebuild()}


STRIPE_KB = (8, 16, 32, 64, 128, 256)
CHUNK_KB = (0, 4, 8, 16, 32, 64, 128, 256)        # 0: the default chunk size


def utf8_error(b):
    # -1 when `b` is well-formed UTF-8, else the offset of the first bad byte. MicroPython's own
    # decode lets overlong forms, surrogates (what its JSON makes of "\\ud83d\\ude00") and code
    # points past U+10FFFF through; the host's decoder refuses them, and so must the firmware
    i, n = 0, len(b)
    while i < n:
        c = b[i]
        if c < 0x80:
            i += 1
            continue
        if 0xC2 <= c <= 0xDF:
            k, lo, hi = 1, 0x80, 0xBF
        elif 0xE0 <= c <= 0xEF:
            k = 2
            lo, hi = (0xA0, 0xBF) if c == 0xE0 else (0x80, 0x9F) if c == 0xED else (0x80, 0xBF)
        elif 0xF0 <= c <= 0xF4:
            k = 3
            lo, hi = (0x90, 0xBF) if c == 0xF0 else (0x80, 0x8F) if c == 0xF4 else (0x80, 0xBF)
        else:
            return i
        if i + k >= n:
            return i        # cut short
        if not lo <= b[i + 1] <= hi:
            return i
        for j in range(i + 2, i + k + 1):
            if not 0x80 <= b[j] <= 0xBF:
                return i
        i += k + 1
    return -1


def _str(b, what):
    b = bytes(b)
    n = b.find(b"\0")
    if n >= 0:
        b = b[:n]
    if utf8_error(b) >= 0:
        raise NvramError("%s is not text" % what)
    return b.decode()


def _put_str(p, off, size, s, what):
    # a NUL-padded field of `size` bytes; a longer string would run into the next field
    b = s.encode()
    if len(b) > size:
        raise NvramError("%s is %d bytes, its field holds %d" % (what, len(b), size))
    p[off:off + len(b)] = b


def _check_sd(i, e):
    # a bank with a valid CRC can still hold fields this firmware never writes (another writer,
    # tampering): each is named rather than trusted
    why = None
    if e.raid & RAID_MASK not in LEVELS or e.raid & 0x30:
        why = "raid byte 0x%02X (a level of 0, 1, 3, 5, 6, 7 plus LOG 0x40 / WB_MSK 0x80)" % e.raid
    elif e.status not in STATUS_NAMES:
        why = "status 0x%02X" % e.status
    elif e.stripe_kb not in STRIPE_KB:
        why = "stripe of %d KiB (one of %s)" % (e.stripe_kb, STRIPE_KB)
    elif e.chunk_kb not in CHUNK_KB:
        why = "chunk of %d KiB (one of %s)" % (e.chunk_kb, CHUNK_KB)
    elif not e.blocks:
        why = "capacity of 0 blocks"
    if why:
        raise NvramError("system drive %d: %s" % (i, why))


def encode(cfg, generation):
    # NvramError when a value cannot be held (it would overrun its field); values that fit but do
    # not read back the same are found by verify()
    p = bytearray(PAYLOAD_LEN)
    for i, e in enumerate(cfg.sd):
        off = i * (SDE_LEN + SDX_LEN)
        if e is None:
            continue
        if e.n_drvs > MAX_VDRIVES:
            raise NvramError("system drive %d has %d members, S_D_E holds %d" % (i, e.n_drvs, MAX_VDRIVES))
        struct.pack_into(SDE, p, off, e.status, e.raid, e.n_drvs, e.affinity)
        for j, v in enumerate(e.vdrive):
            struct.pack_into(VDRIVE, p, off + 4 + j * 12, v[0], v[1], 0, v[2], v[3])
        struct.pack_into(SDX, p, off + SDE_LEN, e.blocks, e.stripe_kb, e.chunk_kb, 0)
    p[LUNMAP_OFF:PW_OFF] = cfg.lunmap
    if cfg.password is not None:
        p[PW_OFF] = 1
        p[PW_OFF + 1:PW_OFF + 21] = cfg.password
    _put_str(p, CHAP_OFF, CHAP_USER_LEN, cfg.chap_user, "the CHAP user")
    _put_str(p, CHAP_OFF + CHAP_USER_LEN, CHAP_SECRET_LEN, cfg.chap_secret, "the CHAP secret")
    if len(cfg.masks) > MASKS:
        raise NvramError("%d LUN masks, NV memory holds %d" % (len(cfg.masks), MASKS))
    for i, (name, bits) in enumerate(cfg.masks):
        off = MASK_OFF + i * (IQN_LEN + 2)
        _put_str(p, off, IQN_LEN, name, "LUN mask %d's initiator name" % i)
        struct.pack_into("<H", p, off + IQN_LEN, bits)
        _put_str(p, MASK_SECRET_OFF + i * CHAP_SECRET_LEN, CHAP_SECRET_LEN, cfg.mask_secrets.get(name, ""),
                 "LUN mask %d's secret" % i)
    p[PARAMS_OFF:PARAMS_OFF + 64] = cfg.params
    hdr = bytearray(HDR_LEN)
    struct.pack_into(HDR, hdr, 0, MAGIC, VERSION, 0, generation, 0)
    crc = binascii.crc32(p, binascii.crc32(hdr[:12]))
    struct.pack_into("<I", hdr, 12, crc)
    return hdr + p


def _sd_fields(e):
    return None if e is None else (e.status, e.raid, e.affinity, [tuple(v) for v in e.vdrive],
                                   e.blocks, e.stripe_kb, e.chunk_kb)


def _first_difference(a, b):
    # the name of the first field in which two configurations differ, or None
    for i in range(MAX_SD):
        if _sd_fields(a.sd[i]) != _sd_fields(b.sd[i]):
            return "system drive %d" % i
    for what, x, y in (("the LUN map", bytes(a.lunmap), bytes(b.lunmap)), ("the password", a.password, b.password),
                       ("the CHAP user", a.chap_user, b.chap_user),
                       ("the CHAP secret", a.chap_secret, b.chap_secret),
                       ("the LUN masks", [tuple(m) for m in a.masks], [tuple(m) for m in b.masks]),
                       ("the LUN mask secrets", a.mask_secrets, b.mask_secrets),
                       ("the controller parameters", bytes(a.params), bytes(b.params))):
        if x != y:
            return what
    return None


def verify(cfg, image):
    # an image is written only if it decodes back to exactly `cfg`: whatever a command let through
    # that the format cannot hold (a field overrun, a NUL in a name, a number a field truncates)
    # is refused here instead of costing the configuration at the next boot
    try:
        back = decode(image)
    except NvramError as e:
        raise NvramError("the image would not be readable: %s" % e)
    what = _first_difference(cfg, back)
    if what is not None:
        raise NvramError("%s would not read back as it is" % what)


def _check_shared_blocks(cfg):
    # two system drives (the log drive too) never share blocks of a disk: writes through one would
    # corrupt the other. Overlap within one drive is the drive's own (raid.SystemDrive refuses it)
    ext = []
    for i, e in enumerate(cfg.sd):
        if e is not None:
            for v in e.vdrive:
                ext.append((v[0], v[1], v[2], v[3], i))
    for k in range(len(ext)):
        ch, tg, a, n, i = ext[k]
        for ch2, tg2, a2, n2, i2 in ext[k + 1:]:
            if i2 != i and ch2 == ch and tg2 == tg and a < a2 + n2 and a2 < a + n:
                raise NvramError("system drive %d and system drive %d share blocks of disk %d:%d "
                                 "(extents %d+%d and %d+%d)" % (i, i2, ch, tg, a, n, a2, n2))


def decode(image):
    # -> Config; raises NvramError naming what is wrong with the bank
    if len(image) < HDR_LEN + PAYLOAD_V1_LEN:
        raise NvramError("truncated: %d bytes, a bank needs %d" % (len(image), HDR_LEN + PAYLOAD_V1_LEN))
    magic, version, _, gen, crc = struct.unpack_from(HDR, image, 0)
    if magic != MAGIC:
        raise NvramError("foreign image: magic %r, expected %r" % (bytes(magic), MAGIC))
    if version not in (VERSION_1, VERSION):
        raise NvramError("unsupported version %d (this firmware reads versions 1 and %d)" % (version, VERSION))
    n = PAYLOAD_LEN if version == VERSION else PAYLOAD_V1_LEN
    if len(image) < HDR_LEN + n:
        raise NvramError("truncated: %d bytes, a version %d bank needs %d" % (len(image), version, HDR_LEN + n))
    p = memoryview(image)[HDR_LEN:HDR_LEN + n]
    if binascii.crc32(p, binascii.crc32(memoryview(image)[:12])) != crc:
        raise NvramError("CRC mismatch: the image is damaged")
    cfg = Config()
    cfg.generation = gen
    for i in range(MAX_SD):
        off = i * (SDE_LEN + SDX_LEN)
        status, raid, n, aff = struct.unpack_from(SDE, p, off)
        if n == 0:
            continue
        if n > MAX_VDRIVES:
            raise NvramError("system drive %d: n_drvs %d exceeds %d" % (i, n, MAX_VDRIVES))
        vd = []
        for j in range(n):
            ch, tg, _, start, blocks = struct.unpack_from(VDRIVE, p, off + 4 + j * 12)
            vd.append((ch, tg, start, blocks))
        blocks, stripe_kb, chunk_kb, _ = struct.unpack_from(SDX, p, off + SDE_LEN)
        cfg.sd[i] = SystemDriveEntry(raid, vd, blocks, stripe_kb, chunk_kb, status, aff)
        _check_sd(i, cfg.sd[i])
    _check_shared_blocks(cfg)
    cfg.lunmap[:] = p[LUNMAP_OFF:PW_OFF]
    for i, sd in enumerate(cfg.lunmap):
        if sd != UNMAPPED and sd >= MAX_SD:      # (a drive not defined: the LUN is not presented)
            raise NvramError("LUN map: port %d LUN %d names system drive %d (there are 0..%d)"
                             % (i // LUNS, i % LUNS, sd, MAX_SD - 1))
    if p[PW_OFF]:
        cfg.password = bytes(p[PW_OFF + 1:PW_OFF + 21])
    cfg.chap_user = _str(p[CHAP_OFF:CHAP_OFF + CHAP_USER_LEN], "the CHAP user")
    cfg.chap_secret = _str(p[CHAP_OFF + CHAP_USER_LEN:MASK_OFF], "the CHAP secret")
    for i in range(MASKS):
        off = MASK_OFF + i * (IQN_LEN + 2)
        name = _str(p[off:off + IQN_LEN], "LUN mask %d's initiator name" % i)
        if name:
            cfg.masks.append((name, struct.unpack_from("<H", p, off + IQN_LEN)[0]))
            if version == VERSION:
                _mask_secret(cfg, p, i, name)
    cfg.params[:] = p[PARAMS_OFF:PARAMS_OFF + 64]
    return cfg


def _mask_secret(cfg, p, i, name):
    # the secret of mask slot i (only a slot with a name has one)
    off = MASK_SECRET_OFF + i * CHAP_SECRET_LEN
    secret = _str(p[off:off + CHAP_SECRET_LEN], "LUN mask %d's secret" % i)
    if secret:
        cfg.mask_secrets[name] = secret


class Nvram:
    # the NV memory device: a file of `size` bytes holding bank A at 0 and bank B at size/2
    def __init__(self, path, size):
        if size // 2 < HDR_LEN + PAYLOAD_LEN:
            raise NvramError("NV memory of %d bytes is too small (needs %d)" % (size, 2 * (HDR_LEN + PAYLOAD_LEN)))
        self.path = path
        self.size = size
        self.bank_size = size // 2
        self.bank = -1          # which bank holds the current image
        self.image = None       # the current image (one bank: header + payload)

    def load(self):
        # -> Config. Raises NvramError (whole image unusable) with the reason of each bank.
        with open(self.path, "rb") as f:
            image = f.read()
        if len(image) != self.size:
            raise NvramError("truncated or resized: %d bytes, expected %d" % (len(image), self.size))
        best = None
        errors = []
        for b in (0, 1):
            try:
                cfg = decode(memoryview(image)[b * self.bank_size:(b + 1) * self.bank_size])
            except NvramError as e:
                errors.append("bank %s: %s" % ("AB"[b], e))
                continue
            if best is None or cfg.generation > best.generation:
                best, self.bank = cfg, b
                self.image = bytes(image[b * self.bank_size:b * self.bank_size + HDR_LEN + PAYLOAD_LEN])
        if best is None:
            raise NvramError("; ".join(errors))
        self.notes = errors     # a torn bank next to a good one is normal after a crash
        return best

    def store(self, cfg):
        # write the next generation into the other bank; the current bank stays untouched
        gen = cfg.generation + 1
        data = encode(cfg, gen)
        verify(cfg, data)
        target = 1 - self.bank if self.bank >= 0 else 0
        with open(self.path, "r+b") as f:
            f.seek(target * self.bank_size)
            f.write(data)
        cfg.generation = gen
        self.bank = target
        self.image = data

    def adopt(self, image):
        # the partner's image (a pair keeps one configuration): checked, then written as the next
        # bank with the partner's generation. -> the Config it holds
        cfg = decode(memoryview(image))
        target = 1 - self.bank if self.bank >= 0 else 0
        data = bytes(image[:HDR_LEN + PAYLOAD_LEN])
        with open(self.path, "r+b") as f:
            f.seek(target * self.bank_size)
            f.write(data)
        self.bank = target
        self.image = data
        return cfg

    def current(self):
        # the configuration NV memory holds now (a refused change is undone from it)
        return decode(self.image)

    def create(self, image):
        # a fresh NV memory holding `image` (a factory bank) in bank A; bank B blank
        cfg = decode(image)
        with open(self.path, "wb") as f:
            f.write(image)
            f.write(bytes(self.size - len(image)))
        self.bank = 0
        self.image = bytes(image[:HDR_LEN + PAYLOAD_LEN])
        return cfg
