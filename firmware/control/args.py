# Argument checks shared by the command table: each answers the value or raises CmdError
# BAD_ARGUMENT / NV_LIMIT / NO_SUCH_DRIVE with the message the console and the CLI show.
from hw import nvram
from hw import events
from control.errors import CmdError


def integer(args, key, lo, hi, default=None):
    v = args.get(key, default)
    if v is None:
        raise CmdError("BAD_ARGUMENT", "'%s' is required" % key)
    if type(v) is not int or not lo <= v <= hi:
        raise CmdError("BAD_ARGUMENT", "'%s' must be an integer %d..%d, got %s" % (key, lo, hi, events.value_text(v)))
    return v


def text(args, key, what, most, least=0):
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


def system_drive(ctl, args, key="sd"):
    # a defined system drive
    sd = integer(args, key, 0, nvram.MAX_SD - 1)
    if ctl.cfg.sd[sd] is None:
        raise CmdError("NO_SUCH_DRIVE", "system drive %d is not defined" % sd)
    return sd

