# The command table's system drives, disks and controller parameters: sd_*, log_*, disk_*,
# params_*. Each command validates its arguments, changes the configuration, writes NV memory and
# answers a dict, or raises CmdError with a stable code and a message that says what to do.
from micropython import const
from hw import nvram
from hw import levels
from hw import xor
from hw import events
from storage import raid
from snapshot import engine as snapshot
from control import args as check
from control import commands_pair as pair
from control.errors import CmdError

SEEK_DATA = const(3)      # lseek(2) whence values on Linux
SEEK_HOLE = const(4)
ENXIO = const(6)

STRIPE_KB = nvram.STRIPE_KB


def luns_of(ctl, sd):
    return [[i // nvram.LUNS, i % nvram.LUNS] for i, v in enumerate(ctl.cfg.lunmap) if v == sd]


def luns_text(ctl, sd):
    # the LUNs of a drive as people write them: "port 0 LUN 1, port 1 LUN 1"
    return ", ".join("port %d LUN %d" % (p, l) for p, l in luns_of(ctl, sd))


def listed(values):
    return ", ".join(str(v) for v in values)


def _no_snapshot(ctl, sd, what):
    eng = ctl.engine
    if eng.state == snapshot.ACTIVE and sd in (eng.primary_sd, eng.log_sd):
        raise CmdError("SNAPSHOT_ACTIVE", "SD%d is in the active snapshot; %s after it ends" % (sd, what))


def _drive_info(ctl, sd):
    e = ctl.cfg.sd[sd]
    d = ctl.drives.get(sd)
    return {"sd": sd, "raid": e.raid, "level": levels.LEVEL_NAMES.get(e.level(), "?"),
            "status": levels.STATUS_NAMES.get(e.status, "OFFLINE"), "blocks": e.blocks,
            "mb": e.blocks // 2048, "log": e.is_log(), "wb": e.write_back(), "stripe_kb": e.stripe_kb,
            "chunk_kb": e.chunk_kb if e.is_log() else 0,
            "members": [{"slot": ctl.slot_of(v[0], v[1]), "name": "%d:%d" % (v[0], v[1]),
                         "start": v[2], "blocks": v[3]} for v in e.vdrive],
            "luns": luns_of(ctl, sd), "built": d is not None, "incomplete": bool(ctl.lops.incomplete[sd])}


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
        level = levels.LEVEL_WORDS.get(level.upper())
    if level not in levels.LEVELS:
        raise CmdError("BAD_LEVEL", "raid must be %s, got %s" % (levels.LEVELS_TEXT, events.value_text(args.get("raid"))))
    stripe_kb = check.integer(args, "stripe_kb", 8, 256, 64)
    if stripe_kb not in STRIPE_KB:
        raise CmdError("BAD_ARGUMENT", "stripe_kb must be one of %s" % listed(STRIPE_KB))
    sb = stripe_kb * 2
    if "sd" in args:
        sd = check.integer(args, "sd", 0, nvram.MAX_SD - 1)
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
                raise CmdError("BAD_ARGUMENT", "extent %s is not [slot, start, blocks]" % events.value_text(x))
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
    err = levels.validate(level, n)
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
            want = check.integer(args, "mb", 1, 1 << 30) * 2048
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
    blocks = min(cap, check.integer(args, "mb", 1, 1 << 30) * 2048) if "mb" in args else cap
    wb = args.get("wb", False)
    if not isinstance(wb, bool):
        raise CmdError("BAD_ARGUMENT", "wb must be true or false")
    dry = args.get("dry_run", False)
    if not isinstance(dry, bool):
        raise CmdError("BAD_ARGUMENT", "dry_run must be true or false")
    if dry:
        return {"sd": sd, "blocks": blocks}     # what would be created: every check above passed
    vd = [(m[0] // ctl.tpc, m[0] % ctl.tpc, m[1], m[2]) for m in members]
    _zero_extents(ctl, members)
    # of a pair, the controller that creates a drive owns it (its affinity; sd_owner moves it)
    ctl.cfg.sd[sd] = nvram.SystemDriveEntry(level | (nvram.WB_MSK if wb else 0), vd, blocks, stripe_kb,
                                            affinity=ctl.number or 0)
    ctl.save()
    ctl.rebuild_drives(sd)
    ctl.lop_mgr.drive_changed(sd)
    ctl.refresh_status()
    ctl.events.log("info", "SD%d CREATED %s %d MB" % (sd, levels.LEVEL_NAMES[level], blocks // 2048))
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
    sd = check.system_drive(ctl, args)
    _no_snapshot(ctl, sd, "delete it")
    if luns_of(ctl, sd):
        raise CmdError("LUN_IN_USE", "SD%d is mapped to %s; unmap them first" % (sd, luns_text(ctl, sd)))
    if ctl.lops.ops and any(sd in op.drives for op in ctl.lops.ops):
        raise CmdError("LOP_ACTIVE", "a long operation runs on SD%d" % sd)
    was_log = ctl.cfg.sd[sd].is_log()
    ctl.cache.discard(sd)
    ctl.cfg.sd[sd] = None
    ctl.save()
    if was_log:
        ctl.engine.detach_log()
    ctl.rebuild_drives(sd)
    ctl.lop_mgr.drive_changed(sd)
    ctl.events.log("info", "SD%d DELETED" % sd)
    return {}


def sd_policy(ctl, args):
    sd = check.system_drive(ctl, args)
    wb = args.get("wb")
    if not isinstance(wb, bool):
        raise CmdError("BAD_ARGUMENT", "wb must be true (write-back) or false (write-through)")
    e = ctl.cfg.sd[sd]
    if not wb:
        ctl.flush_drive(sd)
    e.raid = (e.raid & ~nvram.WB_MSK) | (nvram.WB_MSK if wb else 0)
    ctl.save()
    ctl.rebuild_drives(sd)
    return {}


def log_set(ctl, args):
    sd = check.system_drive(ctl, args)
    if ctl.engine.state == snapshot.ACTIVE:
        raise CmdError("SNAPSHOT_ACTIVE", "a snapshot is active; LOG can change after it ends")
    for i, e in enumerate(ctl.cfg.sd):
        if e is not None and e.is_log() and i != sd:
            raise CmdError("LOG_EXISTS", "SD%d is already the log drive; clear it first" % i)
    if luns_of(ctl, sd) and not ctl.cfg.sd[sd].is_log():
        raise CmdError("LUN_IN_USE", "SD%d is mapped to %s; unmap them first (its LUNs become backup LUNs)"
                       % (sd, luns_text(ctl, sd)))
    chunk = check.integer(args, "chunk_kb", 4, snapshot.MAX_CHUNK_KB, snapshot.DEFAULT_CHUNK_KB)
    if chunk not in snapshot.CHUNK_KB_CHOICES:
        raise CmdError("BAD_ARGUMENT", "chunk_kb must be one of %s" % listed(snapshot.CHUNK_KB_CHOICES))
    e = ctl.cfg.sd[sd]
    if e.blocks < snapshot.HDR_BLOCKS + chunk * 2 + 1:
        raise CmdError("TOO_SMALL", "SD%d is too small to hold one %d KB chunk" % (sd, chunk))
    e.raid |= nvram.LOG
    e.chunk_kb = chunk
    ctl.save()
    ctl.engine.log = None          # re-attach with the new chunk size
    ctl.rebuild_drives(sd)
    ctl.lop_mgr.clear_incomplete(sd, "it became the log drive")     # its data is the log's now
    ctl.events.log("info", "SD%d SET TO LOG (chunk %d KB)" % (sd, chunk))
    return {}


def log_clear(ctl, args):
    sd = check.system_drive(ctl, args)
    e = ctl.cfg.sd[sd]
    if not e.is_log():
        raise CmdError("NOT_LOG", "SD%d is not the log drive" % sd)
    if ctl.engine.state == snapshot.ACTIVE:
        raise CmdError("SNAPSHOT_ACTIVE", "a snapshot is active; LOG can change after it ends")
    if luns_of(ctl, sd):
        raise CmdError("LUN_IN_USE", "SD%d has backup LUNs %s; unmap them first" % (sd, luns_text(ctl, sd)))
    e.raid &= ~nvram.LOG
    ctl.save()
    ctl.engine.detach_log()
    ctl.rebuild_drives(sd)
    ctl.events.log("info", "SD%d LOG CLEARED" % sd)
    return {}


def disk_list(ctl, args):
    # free_mb: the largest free region, the most a new drive can take of the disk
    return {"disks": [{"slot": s, "name": ctl.names[s], "state": ctl.iop.state(s),
                       "mb": ctl.iop.disk_blocks // 2048, "free_mb": _free_region(ctl, s, None)[1] // 2048}
                      for s in range(len(ctl.names))]}


def disk_op(op):
    def run(ctl, args):
        s = check.integer(args, "slot", 0, len(ctl.names) - 1)
        getattr(ctl.iop, op)(s)
        ctl.events.log("warn", "DISK %s %s" % (ctl.names[s], op.upper() + ("D" if op.endswith("e") else "ED")))
        ctl.refresh_status()
        if op == "replace":
            return {"rebuild": ctl.lop_mgr.auto_rebuild(s)}     # the drives whose rebuild started
        return {}
    return run


def params_get(ctl, args):
    return dict({"auto_rebuild": ctl.cfg.auto_rebuild()}, **pair.params(ctl))


def params_set(ctl, args):
    # controller parameters in NV memory; only those named change
    known = ("auto_rebuild", "failback") if ctl.pair is not None else ("auto_rebuild",)
    for k in args:
        if k not in known:
            raise CmdError("BAD_ARGUMENT", "no controller parameter %s (there is: %s)"
                           % (events.value_text(k), ", ".join(known)))
    if "auto_rebuild" in args:
        if not isinstance(args["auto_rebuild"], bool):
            raise CmdError("BAD_ARGUMENT", "auto_rebuild must be true or false")
        ctl.cfg.set_auto_rebuild(args["auto_rebuild"])
    if "failback" in args:
        pair.set_failback(ctl, args["failback"])
    if args:
        ctl.save()
    return params_get(ctl, args)
