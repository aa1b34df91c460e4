"""The firmware's layers (firmware/README.md "Architecture"), checked on its source with `ast`: no
import circle, no import from a higher layer, no import inside a function, no reaching for another
module's or object's underscore names. Each failure lists every place, file:line and what."""
import pytest

import layers
import layers_fw

ROOT = layers_fw.FIRMWARE

# another object's underscore names, each with its reason in a comment on its line
ALLOWED_PRIVATE_ACCESS = [
    ("endpoints.ioready", "asyncio.core._io_queue"),   # MicroPython's asyncio: no public wait on a raw fd
    ("endpoints.ioready", "asyncio.core._task_queue"),  # whether a task is ready, so the scheduler polls instead of sleeping
    ("endpoints.ioready", "_queue._dequeue"),           # a kept socket stays registered between its waits
    ("endpoints.ioready", "type(_queue)._dequeue"),     # (asyncio's own, for every other object)
]


def report(found):
    return "\n" + "\n".join(map(str, found))


def test_the_firmware_is_found():
    # a moved tree must not make every check below pass on nothing
    assert {"hw.nvram", "storage.raid", "control.controller", "main"} <= set(layers.modules(ROOT, ""))


def test_no_import_circle():
    found = layers.import_cycles(ROOT, "")
    assert not found, report(found)


def test_no_import_from_a_higher_layer():
    found = layers_fw.upward_violations(ROOT)
    assert not found, report(found)


def test_imports_at_the_top():
    found = layers.function_imports(ROOT, "")
    assert not found, report(found)


def test_no_underscore_names_of_others():
    found = layers.private_access(ROOT, "", ALLOWED_PRIVATE_ACCESS)
    assert not found, report(found)


@pytest.mark.parametrize("importer, target, allowed", [
    ("storage.raid", "hw.nvram", True),
    ("hw.nvram", "storage.raid", False),
    ("lop.ops", "control.controller", False),
    ("control.commands", "control.controller", True),
    ("endpoints.console.menu", "endpoints.console.access", True),
    ("endpoints.console.uart", "endpoints.listen", True),
    ("endpoints.iscsi.target", "endpoints.console.uart", False),
    ("main", "endpoints.iscsi.target", True),
    ("factory", "storage.raid", True),
    ("scsi.sbc", "main", False),
])
def test_the_layer_rule_itself(importer, target, allowed):
    assert layers_fw.may_import(importer, target) is allowed


def test_the_layer_check_finds_an_import_from_above(tmp_path):
    # a small tree with one such import, so a check that finds nothing is known to be looking
    for rel, text in {
        "hw/__init__.py": "",
        "hw/disk.py": "import struct\nfrom storage import pool\n",
        "storage/__init__.py": "",
        "storage/pool.py": "from hw import disk\n",
    }.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    assert [v.split(": ", 1)[1] for v in layers_fw.upward_violations(tmp_path)] == [
        "hw.disk imports storage.pool (layer storage is above hw)"]
