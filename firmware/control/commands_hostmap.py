# The command table's host side: which LUN shows which system drive (lun_*), which initiator sees
# which LUNs (mask_*) and the iSCSI target's CHAP account (chap_*).
from hw import nvram
from control import args as check
from hw import events
from control.errors import CmdError


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


def lun_list(ctl, args):
    return {"map": [{"port": i // nvram.LUNS, "lun": i % nvram.LUNS, "sd": v,
                     "backup": ctl.cfg.sd[v] is not None and ctl.cfg.sd[v].is_log()}
                    for i, v in enumerate(ctl.cfg.lunmap) if v != nvram.UNMAPPED]}


def lun_map(ctl, args):
    port = check.integer(args, "port", 0, nvram.PORTS - 1)
    lun = check.integer(args, "lun", 0, nvram.LUNS - 1)
    sd = check.system_drive(ctl, args)
    cur = ctl.cfg.lunmap[port * nvram.LUNS + lun]
    if cur != nvram.UNMAPPED and cur != sd:
        raise CmdError("LUN_IN_USE", "port %d LUN %d already maps SD%d; unmap it first" % (port, lun, cur))
    ctl.cfg.lunmap[port * nvram.LUNS + lun] = sd
    ctl.save()
    ctl.map_luns()
    return {}


def lun_unmap(ctl, args):
    port = check.integer(args, "port", 0, nvram.PORTS - 1)
    lun = check.integer(args, "lun", 0, nvram.LUNS - 1)
    if ctl.cfg.lunmap[port * nvram.LUNS + lun] == nvram.UNMAPPED:
        raise CmdError("NOT_MAPPED", "port %d LUN %d is not mapped" % (port, lun))
    ctl.cfg.lunmap[port * nvram.LUNS + lun] = nvram.UNMAPPED
    ctl.save()
    ctl.map_luns()
    return {}


def chap_set(ctl, args):
    user = check.text(args, "user", "the CHAP user", nvram.CHAP_USER_MAX)
    secret = check.text(args, "secret", "the CHAP secret", nvram.CHAP_SECRET_MAX,
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
    return check.text(args, "secret", "the mask's CHAP secret", nvram.CHAP_SECRET_MAX,
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
            raise CmdError("BAD_ARGUMENT", "%s is not [port 0-1, lun 0-7]" % events.value_text(x))
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
        raise CmdError("NOT_MASKED", "no mask for initiator %s" % events.value_text(name))
    ctl.cfg.mask_secrets.pop(name, None)     # a secret goes with its mask
    ctl.save()
    return {}
