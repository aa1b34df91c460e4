"""Every refusal the front panel can show has an authored 20-column short form: the codes the
firmware raises (CmdError in control/ and the console, Refused in lop/, the Table 2 rows of
snapshot_refusal, the initiator-name checks) and the menus' own, read from the source with `ast`,
each in endpoints/console/lcd.py SHORT with two lines of at most 20 columns. The menus' texts
themselves are walked on the board by tests/firmware/test_lcd_text.py."""
import ast
import re

from layers_fw import FIRMWARE

LCD = FIRMWARE / "endpoints" / "console" / "lcd.py"
CODE = re.compile(r"^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$")
# functions whose returned tuples carry a code to a CmdError (controller.snapshot_refusal, hostmap.iscsi_name_error)
CODE_RETURNS = {"snapshot_refusal", "iscsi_name_error"}


def short_table():
    for node in ast.parse(LCD.read_text()).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "SHORT":
            return ast.literal_eval(node.value)
    raise AssertionError("no SHORT table in lcd.py")


def text(node):
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def codes_in(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "id", None)
            i = {"CmdError": 0, "Refused": 1}.get(name)
            if i is not None and len(node.args) > i and text(node.args[i]):
                yield text(node.args[i])
        elif isinstance(node, ast.FunctionDef) and node.name in CODE_RETURNS:
            for r in ast.walk(node):
                if isinstance(r, ast.Return) and isinstance(r.value, ast.Tuple):
                    yield from filter(None, (text(e) for e in r.value.elts))
        elif isinstance(node, ast.Assign) and getattr(node.targets[0], "attr", None) == "message" \
                and isinstance(node.value, ast.Tuple) and len(node.value.elts) == 3 \
                and getattr(node.value.elts[0], "value", None) is False:
            yield text(node.value.elts[1])      # the menus' own refusals: self.message = (False, CODE, ...)


def firmware_codes():
    found = set()
    for path in FIRMWARE.rglob("*.py"):
        if "iscsi" in path.parts:
            continue        # iSCSI login refusals are login status classes, never on the panel
        found |= {c for c in codes_in(ast.parse(path.read_text())) if c and CODE.match(c)}
    return found


def test_every_refusal_code_has_an_authored_short_form():
    codes = firmware_codes()
    assert {"LUN_IN_USE", "IS_LOG_DRIVE", "NO_BASE", "CANCELLED", "PASSWORDS_DIFFER"} <= codes, codes
    missing = sorted(codes - set(short_table()))
    assert not missing, missing


def test_each_short_form_is_two_lines_of_at_most_20_columns():
    for code, lines in short_table().items():
        assert len(lines) == 2, code
        for line in lines:
            assert 0 < len(line) <= 20 and line == line.strip() and line.isascii(), (code, line)
