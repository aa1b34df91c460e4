"""Collects the firmware tests (tests/firmware/test_*.py) and runs each on `micropython`.

The files are MicroPython: pytest only reads their function names (with `ast`), then runs each test
in its own `micropython` process through runner.py, so a crash in one test cannot hide another.
"""
import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
HEAP = "24M"  # a generous board; tests that need a bound set it themselves


def micropython():
    exe = Path(sys.executable).with_name("micropython")
    return str(exe) if exe.exists() else "micropython"


def pytest_pycollect_makemodule(module_path, parent):
    # these files are MicroPython: collect their tests instead of importing them into CPython
    if module_path.parent == HERE:
        return FirmwareFile.from_parent(parent, path=module_path)


class FirmwareFile(pytest.File):
    def collect(self):
        tree = ast.parse(self.path.read_text())
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                yield FirmwareTest.from_parent(self, name=node.name)


class FirmwareFailure(Exception):
    pass


class FirmwareTest(pytest.Item):
    def runtest(self):
        env = dict(os.environ)
        env.setdefault("RB_TMP", str(self.config._tmp_path_factory.mktemp(self.name)))
        proc = subprocess.run(
            [micropython(), "-X", "heapsize=" + HEAP, str(HERE / "runner.py"), str(self.path), self.name],
            capture_output=True, text=True, timeout=600, env=env, cwd=str(HERE),
        )
        out = proc.stdout
        if ("@@RESULT %s PASS" % self.name) in out and proc.returncode == 0:
            return
        raise FirmwareFailure(out + proc.stderr)

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, FirmwareFailure):
            return "micropython test failed:\n" + str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, 0, "micropython: " + self.name
