"""The firmware's layers (firmware/README.md), checked on its source with `ast`: no import circle, no
import from a higher layer, no import inside a function, no reaching for another module's or
object's underscore names. Each failure lists every place, file:line and what."""
import pytest

import layers_fw

MODULES = layers_fw.modules()


def report(found):
    return "\n" + "\n".join(found)


def test_the_firmware_is_found():
    # a moved tree must not make every check below pass on nothing
    assert {"hw.nvram", "storage.raid", "control.controller", "main"} <= set(MODULES)


@pytest.mark.parametrize("check", [
    layers_fw.circle_violations,              # no import circle
    layers_fw.upward_violations,              # no import from a higher layer
    layers_fw.function_import_violations,     # no import inside a function
    layers_fw.private_access_violations,      # no underscore name of another module or object
], ids=["no_import_circle", "no_import_from_a_higher_layer", "no_import_inside_a_function",
        "no_underscore_name_of_another_module_or_object"])
def test_layers(check):
    found = check(MODULES)
    assert not found, report(found)


@pytest.mark.parametrize("importer, target, allowed", [
    ("storage.raid", "hw.nvram", True),
    ("hw.nvram", "storage.raid", False),
    ("lop.ops", "control.controller", False),
    ("control.config", "control.controller", True),
    ("endpoints.console.menu", "endpoints.console.access", True),
    ("endpoints.console.uart", "endpoints.listen", True),
    ("endpoints.iscsi.target", "endpoints.console.uart", False),
    ("main", "endpoints.iscsi.target", True),
    ("factory", "storage.raid", True),
    ("scsi.sbc", "main", False),
])
def test_the_layer_rule_itself(importer, target, allowed):
    assert layers_fw.may_import(importer, target) is allowed


def test_each_check_finds_what_it_is_for(tmp_path):
    # a small tree with one of each fault, so a check that finds nothing is known to be looking
    for rel, text in {
        "hw/__init__.py": "",
        "hw/disk.py": "import struct\nfrom storage import pool\n_SIZE = 1\n",
        "storage/__init__.py": "",
        "storage/pool.py": ("from hw import disk\nfrom hw.disk import _SIZE\n\n\ndef grow(d):\n"
                            "    from hw import disk as again\n    d._seq += disk._SIZE\n    return self_of(d)._n\n"),
    }.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    mods = layers_fw.modules(tmp_path)
    circles = layers_fw.circle_violations(mods)
    assert len(circles) == 1 and "hw.disk" in circles[0] and "storage.pool" in circles[0], circles
    assert [v.split(": ", 1)[1] for v in layers_fw.upward_violations(mods)] == [
        "hw.disk imports storage.pool (layer storage is above hw)"]
    assert [v.split(":")[2] for v in layers_fw.function_import_violations(mods)] == [" from hw import disk inside grow()"]
    found = layers_fw.private_access_violations(mods)
    assert [v.split(":")[1] for v in found] == ["2", "7", "7", "8"], found
