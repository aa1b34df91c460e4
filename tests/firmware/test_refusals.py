# Every refusal of the command table reads as a sentence the console, the LCD's VT-100 screen and
# the CLI can show: a value a request sent is echoed as JSON (null, true, "x"), the board's own
# data in words ("port 0 LUN 0, port 1 LUN 0", "8, 16, 32"); never a Python repr (None, True,
# 'x', [[0, 0], [1, 0]], (8, 16)).
import fw
from control import commands
from control.errors import CmdError

KEYS = ("sd", "slot", "slots", "port", "lun", "raid", "mb", "stripe_kb", "wb", "chunk_kb", "initiator",
        "luns", "secret", "user", "op", "to", "target", "rate", "full", "fix", "id", "cells", "n", "cdb",
        "data", "auto_rebuild", "extents", "standby", "key")
VALUES = (None, True, [1, [2]], {"a": None}, "x", 2.5, 1)
# what a Python repr puts in a message and neither JSON nor the board's wording does
REPR = ("None", "True", "False", "'x'", "[[", "{'", "(8, ", "(4, ", " b'")


def refusals(ctl, args):
    # (command, message) of each command of the table that refuses args
    out = []
    for name in sorted(commands.COMMANDS):
        try:
            ctl.command(name, args)
        except CmdError as e:
            out.append((name, e.message))
    return out


def reprs(found):
    return [(n, msg) for n, msg in found if any(r in msg for r in REPR)]


def test_no_refusal_shows_a_python_repr_whatever_a_request_sends():
    ctl = fw.boot()
    bad = []
    seen = 0
    for v in VALUES:
        for k in KEYS:
            found = refusals(ctl, {k: v})
            seen += len(found)
            bad += reprs(found)
        found = refusals(ctl, dict((k, v) for k in KEYS))
        seen += len(found)
        bad += reprs(found)
    assert seen > 1000, seen
    assert not bad, bad[:10]


def test_a_drive_in_use_names_its_luns_in_words():
    ctl = fw.boot()
    assert refused(ctl, "sd_delete", {"sd": 0}) == "SD0 is mapped to port 0 LUN 0, port 1 LUN 0; unmap them first"
    assert refused(ctl, "log_clear", {"sd": 1}) == "SD1 has backup LUNs port 0 LUN 1, port 1 LUN 1; unmap them first"
    ctl.command("lun_unmap", {"port": 1, "lun": 1})
    assert refused(ctl, "log_clear", {"sd": 1}) == "SD1 has backup LUNs port 0 LUN 1; unmap them first"
    ctl.command("lun_unmap", {"port": 0, "lun": 1})
    ctl.command("log_clear", {"sd": 1})
    assert refused(ctl, "log_set", {"sd": 0}) == \
        "SD0 is mapped to port 0 LUN 0, port 1 LUN 0; unmap them first (its LUNs become backup LUNs)"


def refused(ctl, name, args):
    try:
        ctl.command(name, args)
    except CmdError as e:
        assert e.code == "LUN_IN_USE", (e.code, e.message)
        return e.message
    raise AssertionError("%s %s was accepted" % (name, args))


def test_choices_are_listed_in_words_and_sent_values_as_json():
    ctl = fw.boot()
    for name, args, want in (
            ("sd_create", {"raid": 5, "slots": [0, 1, 2], "stripe_kb": 24}, "stripe_kb must be one of 8, 16, 32, 64, 128, 256"),
            ("sd_create", {"raid": None}, "got null"),
            ("sd_policy", {"sd": [0]}, "'sd' must be an integer 0..7, got [0]"),
            ("lop_start", {"op": "copy", "sd": True, "to": 2}, "'sd' must be a system drive 0..7, got true"),
            ("mask_clear", {"initiator": "iqn.x"}, 'no mask for initiator "iqn.x"')):
        try:
            ctl.command(name, args)
            raise AssertionError("%s %s was accepted" % (name, args))
        except CmdError as e:
            assert want in e.message, (want, e.message)
