"""Refusals never show a Python repr: every message of a CmdError (control/) or a Refused (lop/)
in the firmware is formatted without %r, so a value a request sent goes through
hw/events.value_text (its JSON) and the board's own lists through words. The messages these calls
make at run time are exercised by tests/firmware/test_refusals.py."""
import ast

from layers_fw import FIRMWARE

ERRORS = {"CmdError", "Refused"}


def messages(tree):
    # (line, format string) of each %-formatted message given to CmdError or Refused
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ERRORS:
            for a in node.args:
                if isinstance(a, ast.BinOp) and isinstance(a.op, ast.Mod):
                    fmt = a.left
                    while isinstance(fmt, ast.BinOp):       # "a" + "b" % x is not used; "a" "b" is one Constant
                        fmt = fmt.left
                    if isinstance(fmt, ast.Constant) and isinstance(fmt.value, str):
                        yield node.lineno, fmt.value


def test_no_refusal_is_formatted_with_repr():
    found, seen = [], 0
    for path in sorted(FIRMWARE.rglob("*.py")):
        if "iscsi" in path.parts:
            continue        # the login's Refused is iSCSI's own (status class and detail), not a CmdError
        for line, fmt in messages(ast.parse(path.read_text())):
            seen += 1
            if "%r" in fmt:
                found.append("%s:%d: %s" % (path.relative_to(FIRMWARE), line, fmt))
    assert seen > 50, seen
    assert not found, "\n".join(found)
