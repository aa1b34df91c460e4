# The firmware command table (FIG. 4's stored commands, as the console and the host CLI reach them):
# each command validates its arguments, changes the configuration, writes NV memory and answers a
# dict, or raises CmdError with a stable code and a message that says what to do.
from lop import ops as lop
from hw import nvram
from storage import raid
from snapshot import engine as snapshot
from hw import xor
from micropython import const
from control.controller import CmdError

SEEK_DATA = const(3)      # lseek(2) whence values on Linux
SEEK_HOLE = const(4)
ENXIO = const(6)
CONSOLE_INITIATOR = "iqn.1998-06.com.mylex:console"     # the nexus of the console's `cdb`

STRIPE_KB = nvram.STRIPE_KB
LEVELS = {"0": 0, "1": 1, "3": 3, "5": 5, "6": 6, "7": 7, "JBOD": 7, "RAID0": 0, "RAID1": 1,
          "RAID3": 3, "RAID5": 5, "RAID6": 6, "RAID0+1": 6, "RAID10": 6}


def _int(args, key, lo, hi, default=None):
    v = args.get(key, default)
    if v is None:
        raise CmdError("BAD_ARGUMENT", "'%s' is required" % key)
    if type(v) is not int or not lo <= v <= hi:
        raise CmdError("BAD_ARGUMENT", "'%s' must be an integer %d..%d, got %r" % (key, lo, hi, v))
    return v


def _text(args, key, what, most, least=0):
    # a string for a NUL-padded NV memory field, measured in the UTF-8 bytes the field holds
    s = args.get(key, "")
    if not isinstance(s, str):
        raise CmdError("BAD_ARGUMENT", "%s must be a string" % what)
    b = s.encode()
    if nvram.utf8_error(b) >= 0:
        raise CmdError("BAD_ARGUMENT", "%s is not UTF-8 text (a surrogate, an overlong form or a code point "
                                       "past U+10FFFF)" % what)
    for i, c in enumerate(s):
        if c < " " or "\x7f" <= c <= "\x9f":
            raise CmdError("BAD_ARGUMENT", "%s has control character U+%04X at %d" % (what, ord(c), i + 1))
    if not least <= len(b) <= most:
        raise CmdError("NV_LIMIT", "%s is %d bytes in UTF-8; NV memory holds %s bytes"
                       % (what, len(b), ("%d to %d" % (least, most)) if least else ("at most %d" % most)))
    return s


def _hex(s):
    for c in s:
        if c not in "0123456789abcdef":
            return False
    return True


def _iqn_error(rest):
    # iqn.yyyy-mm.reversed.domain[:unique name]
    if len(rest) < 9 or rest[4] != "-" or rest[7] != "." or not (rest[:4] + rest[5:7]).isdigit() \
            or not 1 <= int(rest[5:7]) <= 12:
        return "an iqn. name goes on with the date yyyy-mm and a dot, e.g. iqn.2026-11.com.example:host1"
    auth = rest[8:].split(":", 1)
    for label in auth[0].split("."):
        if not label:
            return "the naming authority after the date is a reversed domain name (labels between dots)"
    if len(auth) == 2 and not auth[1]:
        return "nothing follows the ':' of the naming authority"
    return None


def iscsi_name_error(name):
    # RFC 3720 3.2.6 / RFC 3722: an iSCSI name in its normalized (stringprep) form
    b = name.encode()
    if len(b) > nvram.IQN_MAX:
        return "NV_LIMIT", "%d bytes; an iSCSI name has at most %d" % (len(b), nvram.IQN_MAX)
    for i, c in enumerate(name):
        if not ("a" <= c <= "z" or "0" <= c <= "9" or c in "-.:"):
            return "BAD_ARGUMENT", ("U+%04X at %d is not allowed: an iSCSI name has a-z 0-9 - . : only "
                                    "(lowercase, RFC 3722)" % (ord(c), i + 1))
    kind, rest = name[:4], name[4:]
    why = None
    if kind == "iqn.":
        why = _iqn_error(rest)
    elif kind == "eui.":
        if len(rest) != 16 or not _hex(rest):
            why = "eui. is followed by 16 hex digits"
    elif kind == "naa.":
        if len(rest) not in (16, 32) or not _hex(rest):
            why = "naa. is followed by 16 or 32 hex digits"
    else:
        why = "an iSCSI name begins with iqn., eui. or naa."
    return None if why is None else ("BAD_ARGUMENT", why)


def _sd(ctl, args, key="sd"):
    sd = _int(args, key, 0, nvram.MAX_SD - 1)
    if ctl.cfg.sd[sd] is None:
        raise CmdError("NO_SUCH_DRIVE", "system drive %d is not defined" % sd)
    return sd


def _slot(ctl, args):
    return _int(args, "slot", 0, len(ctl.names) - 1)


def _luns_of(ctl, sd):
    return [[i // nvram.LUNS, i % nvram.LUNS] for i, v in enumerate(ctl.cfg.lunmap) if v == sd]


def _no_snapshot(ctl, sd, what):
    eng = ctl.engine
    if eng.state == snapshot.ACTIVE and sd in (eng.primary_sd, eng.log_sd):
        raise CmdError("SNAPSHOT_ACTIVE", "SD%d is in the active snapshot; %s after it ends" % (sd, what))


def _drive_info(ctl, sd):
    e = ctl.cfg.sd[sd]
    d = ctl.drives.get(sd)
    return {"sd": sd, "raid": e.raid, "level": raid.LEVEL_NAMES.get(e.level(), "?"),
            "status": nvram.STATUS_NAMES.get(e.status, "OFFLINE"), "blocks": e.blocks,
            "mb": e.blocks // 2048, "log": e.is_log(), "wb": e.write_back(), "stripe_kb": e.stripe_kb,
            "chunk_kb": e.chunk_kb if e.is_log() else 0,
            "members": [{"slot": ctl.slot_of(v[0], v[1]), "name": "%d:%d" % (v[0], v[1]),
                         "start": v[2], "blocks": v[3]} for v in e.vdrive],
            "luns": _luns_of(ctl, sd), "built": d is not None}


def sd_list(ctl, args):
    return {"drives": [_drive_info(ctl, sd) for sd in range(nvram.MAX_SD) if ctl.cfg.sd[sd] is not None]}


def _used_extents(ctl, slot):
    out = []
    for e in ctl.cfg.sd:
        if e is None:
            continue
        for v in e.vdrive:
            if ctl.slot_of(v[0], v[1]) == slot:
                out.append((v[2], v[2] + v[3]))
    out.sort()
    return out


def _free_region(ctl, slot, need):
    # first fit: the lowest start where `need` blocks are free on `slot` (need=None: largest region)
    pos, best = 0, (0, 0)
    for a, b in _used_extents(ctl, slot) + [(ctl.iop.disk_blocks, ctl.iop.disk_blocks)]:
        if need is not None and a - pos >= need:
            return pos, need
        if a - pos > best[1]:
            best = (pos, a - pos)
        pos = max(pos, b)
    return best if need is None else None


def sd_create(ctl, args):
    level = args.get("raid")
    if isinstance(level, str):
        level = LEVELS.get(level.upper())
    if level not in (0, 1, 3, 5, 6, 7):
        raise CmdError("BAD_LEVEL", "raid must be 0, 1, 3, 5, 6 (RAID 0+1) or 7 (JBOD), got %r" % (args.get("raid"),))
    stripe_kb = _int(args, "stripe_kb", 8, 256, 64)
    if stripe_kb not in STRIPE_KB:
        raise CmdError("BAD_ARGUMENT", "stripe_kb must be one of %s" % (STRIPE_KB,))
    sb = stripe_kb * 2
    if "sd" in args:
        sd = _int(args, "sd", 0, nvram.MAX_SD - 1)
        if ctl.cfg.sd[sd] is not None:
            raise CmdError("DRIVE_EXISTS", "system drive %d is already defined; delete it first" % sd)
    else:
        free = [i for i in range(nvram.MAX_SD) if ctl.cfg.sd[i] is None]
        if not free:
            raise CmdError("NO_FREE_DRIVE", "all %d system drives are defined" % nvram.MAX_SD)
        sd = free[0]
    if "extents" in args:
        ext = args["extents"]
        if not isinstance(ext, list) or not ext:
            raise CmdError("BAD_ARGUMENT", "extents must be a list of [slot, start, blocks]")
        members = []
        for x in ext:
            if not isinstance(x, list) or len(x) != 3 or any(type(v) is not int or v < 0 for v in x):
                raise CmdError("BAD_ARGUMENT", "extent %r is not [slot, start, blocks]" % (x,))
            members.append(tuple(x))
    else:
        slots = args.get("slots")
        if not isinstance(slots, list) or not slots or any(type(s) is not int for s in slots):
            raise CmdError("BAD_ARGUMENT", "slots must be a list of disk slot numbers")
        members = [(s, 0, 0) for s in slots]
    n = len(members)
    if n > nvram.MAX_VDRIVES:
        raise CmdError("NV_LIMIT", "%d members; NV memory holds at most %d in a system drive (S_D_E vdrive[%d])"
                       % (n, nvram.MAX_VDRIVES, nvram.MAX_VDRIVES))
    err = raid.validate(level, n)
    if err:
        raise CmdError("BAD_LEVEL", err)
    seen = []
    for m in members:
        s = m[0]
        if not 0 <= s < len(ctl.names):
            raise CmdError("NO_SUCH_SLOT", "no disk slot %d (slots 0..%d)" % (s, len(ctl.names) - 1))
        if ctl.iop.state(s) != "online":
            raise CmdError("DISK_NOT_ONLINE", "disk %s is %s" % (ctl.names[s], ctl.iop.state(s)))
        if "extents" not in args and s in seen:
            raise CmdError("BAD_ARGUMENT", "slot %d is named twice" % s)
        seen.append(s)
    ndata = {0: n, 3: n - 1, 5: n - 1, 6: n // 2}.get(level, 1)
    if "extents" in args:
        for s, a, b in members:
            if a + b > ctl.iop.disk_blocks or b < 1:
                raise CmdError("BAD_ARGUMENT", "extent %d+%d does not fit disk %s (%d blocks)"
                               % (a, b, ctl.names[s], ctl.iop.disk_blocks))
            for u, v in _used_extents(ctl, s):
                if a < v and u < a + b:
                    raise CmdError("OVERLAP", "extent %d+%d on disk %s overlaps a defined system drive"
                                   % (a, b, ctl.names[s]))
        for i, (s, a, b) in enumerate(members):
            for s2, a2, b2 in members[i + 1:]:
                if s == s2 and a < a2 + b2 and a2 < a + b:
                    raise CmdError("OVERLAP", "two extents overlap on disk %s" % ctl.names[s])
    else:
        if "mb" in args:
            want = _int(args, "mb", 1, 1 << 30) * 2048
            per = -(-want // ndata)
            if level not in (1, 7):
                per = -(-per // sb) * sb
            regions = [_free_region(ctl, s, per) for s, _, _ in members]
            if None in regions:
                raise CmdError("NO_SPACE", "the disks have no free region of %d MB each" % (per // 2048))
        else:
            regions = [_free_region(ctl, s, None) for s, _, _ in members]
            per = min(r[1] for r in regions)
            if level not in (1, 7):
                per = per // sb * sb
            if per < 1:
                raise CmdError("NO_SPACE", "no free space on the named disks")
        members = [(s, r[0], per) for (s, _, _), r in zip(members, regions)]
    try:
        cap = raid.capacity(level, n, min(m[2] for m in members), sb)
    except ValueError as e:
        raise CmdError("BAD_ARGUMENT", str(e))
    blocks = min(cap, _int(args, "mb", 1, 1 << 30) * 2048) if "mb" in args else cap
    wb = args.get("wb", False)
    if not isinstance(wb, bool):
        raise CmdError("BAD_ARGUMENT", "wb must be true or false")
    vd = [(m[0] // ctl.tpc, m[0] % ctl.tpc, m[1], m[2]) for m in members]
    _zero_extents(ctl, members)
    ctl.cfg.sd[sd] = nvram.SystemDriveEntry(level | (nvram.WB_MSK if wb else 0), vd, blocks, stripe_kb)
    ctl.save()
    ctl._build_drives(sd)
    lop.drive_changed(ctl, sd)
    ctl._refresh_status()
    ctl.events.log("info", "SD%d CREATED %s %d MB" % (sd, raid.LEVEL_NAMES[level], blocks // 2048))
    return {"sd": sd, "blocks": blocks}


def _zero_extents(ctl, members):
    # a new drive starts zeroed, so parity and mirrors agree from the first read. Only what the
    # disk files hold data for is read (holes read as zeros: never written), and of that only
    # blocks that are not zero already are written, so disk files stay sparse and creating a drive
    # on new disks takes no time
    b = ctl.buffer.take()
    if b < 0:
        raise CmdError("BUSY", "the controller buffer is full; try again")
    try:
        buf = ctl.buffer.view(b)
        n = len(buf) >> 9
        for s, a, cnt in members:
            for pos, end in _data_regions(ctl.iop.paths[s], a, a + cnt):
                while pos < end:
                    k = min(n, end - pos)
                    mv = buf[:k << 9]
                    ctl.iop.read(s, pos, mv)
                    if xor.nonzero_sectors(mv, len(mv)):
                        xor.zero(mv, len(mv))
                        ctl.iop.write(s, pos, mv)
                    pos += k
    finally:
        ctl.buffer.give(b)


def _data_regions(path, a, end):
    # [(first, end)] block ranges within a..end that the file holds data for (lseek SEEK_DATA and
    # SEEK_HOLE, on a handle of our own: the IOP's file positions stay as they are); the whole
    # range where the file system cannot tell
    out = []
    try:
        f = open(path, "rb")
    except OSError:
        return [(a, end)]
    try:
        pos = a << 9
        while pos < end << 9:
            try:
                d = f.seek(pos, SEEK_DATA)
            except OSError as e:
                if e.errno == ENXIO:
                    break                    # no data after pos
                return [(a, end)]
            if d >= end << 9:
                break
            h = f.seek(d, SEEK_HOLE)
            out.append((d >> 9, min((h + 511) >> 9, end)))
            pos = h
    finally:
        f.close()
    return out


def sd_delete(ctl, args):
    sd = _sd(ctl, args)
    _no_snapshot(ctl, sd, "delete it")
    if _luns_of(ctl, sd):
        raise CmdError("LUN_IN_USE", "SD%d is mapped to LUNs %s; unmap them first" % (sd, _luns_of(ctl, sd)))
    if ctl.lops.ops and any(sd in op.drives for op in ctl.lops.ops):
        raise CmdError("LOP_ACTIVE", "a long operation runs on SD%d" % sd)
    was_log = ctl.cfg.sd[sd].is_log()
    ctl.cache.discard(sd)
    ctl.cfg.sd[sd] = None
    ctl.save()
    if was_log:
        ctl.engine.detach_log()
    ctl._build_drives(sd)
    lop.drive_changed(ctl, sd)
    ctl.events.log("info", "SD%d DELETED" % sd)
    return {}


def sd_policy(ctl, args):
    sd = _sd(ctl, args)
    wb = args.get("wb")
    if not isinstance(wb, bool):
        raise CmdError("BAD_ARGUMENT", "wb must be true (write-back) or false (write-through)")
    e = ctl.cfg.sd[sd]
    if not wb:
        ctl.flush_drive(sd)
    e.raid = (e.raid & ~nvram.WB_MSK) | (nvram.WB_MSK if wb else 0)
    ctl.save()
    ctl._build_drives(sd)
    return {}


def log_set(ctl, args):
    sd = _sd(ctl, args)
    if ctl.engine.state == snapshot.ACTIVE:
        raise CmdError("SNAPSHOT_ACTIVE", "a snapshot is active; LOG can change after it ends")
    for i, e in enumerate(ctl.cfg.sd):
        if e is not None and e.is_log() and i != sd:
            raise CmdError("LOG_EXISTS", "SD%d is already the log drive; clear it first" % i)
    if _luns_of(ctl, sd) and not ctl.cfg.sd[sd].is_log():
        raise CmdError("LUN_IN_USE", "SD%d has LUNs in use %s; unmap them first (its LUNs become backup LUNs)"
                       % (sd, _luns_of(ctl, sd)))
    chunk = _int(args, "chunk_kb", 4, snapshot.MAX_CHUNK_KB, snapshot.DEFAULT_CHUNK_KB)
    if chunk not in snapshot.CHUNK_KB_CHOICES:
        raise CmdError("BAD_ARGUMENT", "chunk_kb must be one of %s" % (snapshot.CHUNK_KB_CHOICES,))
    e = ctl.cfg.sd[sd]
    if e.blocks < snapshot.HDR_BLOCKS + chunk * 2 + 1:
        raise CmdError("TOO_SMALL", "SD%d is too small to hold one %d KB chunk" % (sd, chunk))
    e.raid |= nvram.LOG
    e.chunk_kb = chunk
    ctl.save()
    ctl.engine.log = None          # re-attach with the new chunk size
    ctl._build_drives(sd)
    ctl.events.log("info", "SD%d SET TO LOG (chunk %d KB)" % (sd, chunk))
    return {}


def log_clear(ctl, args):
    sd = _sd(ctl, args)
    e = ctl.cfg.sd[sd]
    if not e.is_log():
        raise CmdError("NOT_LOG", "SD%d is not the log drive" % sd)
    if ctl.engine.state == snapshot.ACTIVE:
        raise CmdError("SNAPSHOT_ACTIVE", "a snapshot is active; LOG can change after it ends")
    if _luns_of(ctl, sd):
        raise CmdError("LUN_IN_USE", "SD%d has backup LUNs %s; unmap them first" % (sd, _luns_of(ctl, sd)))
    e.raid &= ~nvram.LOG
    ctl.save()
    ctl.engine.detach_log()
    ctl._build_drives(sd)
    ctl.events.log("info", "SD%d LOG CLEARED" % sd)
    return {}


def lun_list(ctl, args):
    return {"map": [{"port": i // nvram.LUNS, "lun": i % nvram.LUNS, "sd": v,
                     "backup": ctl.cfg.sd[v] is not None and ctl.cfg.sd[v].is_log()}
                    for i, v in enumerate(ctl.cfg.lunmap) if v != nvram.UNMAPPED]}


def lun_map(ctl, args):
    port = _int(args, "port", 0, nvram.PORTS - 1)
    lun = _int(args, "lun", 0, nvram.LUNS - 1)
    sd = _sd(ctl, args)
    cur = ctl.cfg.lunmap[port * nvram.LUNS + lun]
    if cur != nvram.UNMAPPED and cur != sd:
        raise CmdError("LUN_IN_USE", "port %d LUN %d already maps SD%d; unmap it first" % (port, lun, cur))
    ctl.cfg.lunmap[port * nvram.LUNS + lun] = sd
    ctl.save()
    ctl._map_luns()
    return {}


def lun_unmap(ctl, args):
    port = _int(args, "port", 0, nvram.PORTS - 1)
    lun = _int(args, "lun", 0, nvram.LUNS - 1)
    if ctl.cfg.lunmap[port * nvram.LUNS + lun] == nvram.UNMAPPED:
        raise CmdError("NOT_MAPPED", "port %d LUN %d is not mapped" % (port, lun))
    ctl.cfg.lunmap[port * nvram.LUNS + lun] = nvram.UNMAPPED
    ctl.save()
    ctl._map_luns()
    return {}


def snapshot_start(ctl, args):
    sd = _sd(ctl, args)
    r = ctl.snapshot_refusal(sd)
    if r is not None:
        raise CmdError(r[1], r[2])
    try:
        ctl._initiate(sd)
    except Exception as e:
        raise CmdError("NOT_READY", "SD%d or the log drive is not ready (%s)" % (sd, e))
    return {"generation": ctl.engine.generation}


def snapshot_stop(ctl, args):
    if ctl.engine.state != snapshot.ACTIVE:
        raise CmdError("NO_SNAPSHOT", "no snapshot is active")
    ctl.engine.terminate()
    return {}


def snapshot_status(ctl, args):
    return ctl.engine.status()


def snapshot_map(ctl, args):
    return {"cells": ctl.engine.copied_map(_int(args, "cells", 1, 4096, 64))}


def disk_list(ctl, args):
    return {"disks": [{"slot": s, "name": ctl.names[s], "state": ctl.iop.state(s),
                       "mb": ctl.iop.disk_blocks // 2048} for s in range(len(ctl.names))]}


def _disk_op(op):
    def run(ctl, args):
        s = _slot(ctl, args)
        getattr(ctl.iop, op)(s)
        ctl.events.log("warn", "DISK %s %s" % (ctl.names[s], op.upper() + ("D" if op.endswith("e") else "ED")))
        ctl._refresh_status()
        if op == "replace":
            return {"rebuild": lop.auto_rebuild(ctl, s)}     # the drives whose rebuild started
        return {}
    return run


def params_get(ctl, args):
    return {"auto_rebuild": ctl.cfg.auto_rebuild()}


def params_set(ctl, args):
    # controller parameters in NV memory; only those named change
    for k in args:
        if k != "auto_rebuild":
            raise CmdError("BAD_ARGUMENT", "no controller parameter %r (there is: auto_rebuild)" % (k,))
    if "auto_rebuild" in args:
        if not isinstance(args["auto_rebuild"], bool):
            raise CmdError("BAD_ARGUMENT", "auto_rebuild must be true or false")
        ctl.cfg.set_auto_rebuild(args["auto_rebuild"])
        ctl.save()
    return params_get(ctl, args)


def events(ctl, args):
    return {"events": ctl.events.recent(_int(args, "n", 1, 64, 10))}


def cdb(ctl, args):
    try:
        c = bytes.fromhex(args.get("cdb", ""))
        data = bytes.fromhex(args.get("data", "") or "")
    except (ValueError, TypeError):
        raise CmdError("BAD_ARGUMENT", "cdb and data must be hex strings")
    if not 6 <= len(c) <= 16:
        raise CmdError("BAD_ARGUMENT", "a CDB is 6 to 16 bytes, got %d" % len(c))
    port = _int(args, "port", 0, nvram.PORTS - 1)
    lun = _int(args, "lun", 0, 255)
    if args.get("initiator", CONSOLE_INITIATOR) != CONSOLE_INITIATOR:
        raise CmdError("BAD_ARGUMENT", "the pass-through runs as the console, %s; masking applies to it"
                       % CONSOLE_INITIATOR)
    status, sns, din = ctl.execute((CONSOLE_INITIATOR, port, lun), c, data)
    return {"status": status, "sense": bytes(sns).hex() if sns else "", "data": bytes(din).hex()}


def chap_set(ctl, args):
    user = _text(args, "user", "the CHAP user", nvram.CHAP_USER_MAX)
    secret = _text(args, "secret", "the CHAP secret", nvram.CHAP_SECRET_MAX,
                   nvram.CHAP_SECRET_MIN if args.get("secret") else 0)     # empty: CHAP off
    ctl.cfg.chap_user, ctl.cfg.chap_secret = (user, secret) if secret else ("", "")
    ctl.save()
    return {}


def chap_get(ctl, args):
    # a secret is never read back: only whether one is set (the iSCSI target reads ctl.cfg)
    return {"user": ctl.cfg.chap_user, "secret_set": bool(ctl.cfg.chap_secret)}


def mask_list(ctl, args):
    # a mask's secret is never read back, only whether it has one
    return {"masks": [{"initiator": n, "luns": [[i // nvram.LUNS, i % nvram.LUNS]
                                                 for i in range(16) if b >> i & 1],
                       "secret_set": n in ctl.cfg.mask_secrets}
                      for n, b in ctl.cfg.masks]}


def _mask_secret(args, name, secrets):
    # the CHAP secret the mask of `name` will have: absent keeps the one it has (changing the LUNs
    # never drops it by accident), "" removes it, anything else must fit NV memory (12 to 32 bytes)
    if "secret" not in args:
        return secrets.get(name, "")
    return _text(args, "secret", "the mask's CHAP secret", nvram.CHAP_SECRET_MAX,
                 nvram.CHAP_SECRET_MIN if args["secret"] else 0)


def mask_set(ctl, args):
    name = args.get("initiator")
    if not isinstance(name, str):
        raise CmdError("BAD_ARGUMENT", "initiator must be an iSCSI name")
    bad = iscsi_name_error(name)
    if bad:
        raise CmdError(bad[0], "the initiator name: %s" % bad[1])
    luns = args.get("luns")
    if not isinstance(luns, list):
        raise CmdError("BAD_ARGUMENT", "luns must be a list of [port, lun]")
    bits = 0
    for x in luns:
        if not isinstance(x, list) or len(x) != 2 or x[0] not in (0, 1) or type(x[1]) is not int or not 0 <= x[1] < 8:
            raise CmdError("BAD_ARGUMENT", "%r is not [port 0-1, lun 0-7]" % (x,))
        bits |= 1 << (x[0] * nvram.LUNS + x[1])
    secret = _mask_secret(args, name, ctl.cfg.mask_secrets)
    masks = [m for m in ctl.cfg.masks if m[0] != name]
    if len(masks) >= nvram.MASKS:
        raise CmdError("TABLE_FULL", "at most %d initiators can be masked" % nvram.MASKS)
    ctl.cfg.masks = masks + [(name, bits)]
    ctl.cfg.mask_secrets.pop(name, None)
    if secret:
        ctl.cfg.mask_secrets[name] = secret
    ctl.save()
    return {}


def mask_clear(ctl, args):
    name = args.get("initiator")
    before = len(ctl.cfg.masks)
    ctl.cfg.masks = [m for m in ctl.cfg.masks if m[0] != name]
    if len(ctl.cfg.masks) == before:
        raise CmdError("NOT_MASKED", "no mask for initiator %r" % (name,))
    ctl.cfg.mask_secrets.pop(name, None)     # a secret goes with its mask
    ctl.save()
    return {}


def nvram_dump(ctl, args):
    return ctl.cfg.to_dict()


def status(ctl, args):
    return {"model": ctl.board["model"], "iqn": ctl.iqn, "drives": sd_list(ctl, args)["drives"],
            "luns": lun_list(ctl, args)["map"], "snapshot": ctl.engine.status(),
            "lops": [op.info() for op in ctl.lops.ops], "events": ctl.events.recent(5),
            "params": params_get(ctl, args)}


COMMANDS = {
    "status": status, "sd_list": sd_list, "sd_create": sd_create, "sd_delete": sd_delete,
    "sd_policy": sd_policy, "log_set": log_set, "log_clear": log_clear, "lun_list": lun_list,
    "lun_map": lun_map, "lun_unmap": lun_unmap, "snapshot_start": snapshot_start,
    "snapshot_stop": snapshot_stop, "snapshot_status": snapshot_status, "snapshot_map": snapshot_map,
    "disk_list": disk_list, "disk_fail": _disk_op("fail"), "disk_remove": _disk_op("remove"),
    "disk_replace": _disk_op("replace"), "events": events, "cdb": cdb,
    "chap_set": chap_set,
    "chap_get": chap_get, "mask_list": mask_list, "mask_set": mask_set, "mask_clear": mask_clear,
    "nvram_dump": nvram_dump, "params_get": params_get, "params_set": params_set,
    "lop_start": lambda ctl, args: lop.command(ctl, "start", args),
    "lop_status": lambda ctl, args: lop.command(ctl, "status", args),
    "lop_stop": lambda ctl, args: lop.command(ctl, "stop", args),
}
