"""The host package in layers: no import circle, imports at the top, no module using another's
underscore names (the checks are in layers.py, shared with the firmware's test)."""
from pathlib import Path

import layers

ROOT = Path(__file__).resolve().parents[1] / "host" / "raidboard"
PACKAGE = "raidboard"

# imports kept inside a function, each with its reason in a comment on its line
ALLOWED_FUNCTION_IMPORTS = [
    ("raidboard.shell", "from . import prompt  # the one import kept here: prompt_toolkit costs every "
                        "other command 0.2 s"),
]

# another object's underscore names, each with its reason in a comment on its line
ALLOWED_PRIVATE_ACCESS = [
    ("raidboard.proto", "self.ser._socket"),    # pyserial's socket:// port: its socket has no public name
]


def test_no_import_circle():
    assert layers.import_cycles(ROOT, PACKAGE) == []


def test_imports_at_the_top():
    assert layers.function_imports(ROOT, PACKAGE, ALLOWED_FUNCTION_IMPORTS) == []


def test_no_underscore_names_of_others():
    assert layers.private_access(ROOT, PACKAGE, ALLOWED_PRIVATE_ACCESS) == []


def test_the_checks_see_what_they_look_for(tmp_path):
    # a package that breaks every rule once, so a check that finds nothing is known to look
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from . import b\n\n\ndef f():\n    import json\n    return b._hidden\n")
    (pkg / "b.py").write_text("from .c import thing\n_hidden = 1\n")
    (pkg / "c.py").write_text("def g():\n    from .a import f\n    return f\n\n\nthing = 2\n")
    (pkg / "d.py").write_text("from .b import _hidden\n\n\nclass K:\n    def m(self):\n"
                              "        return self._own, super()._also_own, self.__class__\n")
    cycles = layers.import_cycles(pkg, "pkg")
    assert len(cycles) == 1 and all(m in cycles[0] for m in ("pkg.a", "pkg.b", "pkg.c"))
    assert [x.split(": ", 1)[1] for x in layers.function_imports(pkg, "pkg")] == [
        "import inside a function or class: import json", "import inside a function or class: from .a import f"]
    assert [x.split(": ", 1)[1] for x in layers.private_access(pkg, "pkg")] == [
        "reaches into b._hidden", "imports underscore name _hidden from .b"]
