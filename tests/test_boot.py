"""Booting a board: the ready line, a bad board file refused with file, field and problem named,
and the factory default layout."""
import json
import subprocess

import pytest

from harness import MICROPYTHON, ROOT


def boot_fails(board_file, tmp_path):
    p = subprocess.run([MICROPYTHON, str(ROOT / "firmware" / "main.py"), str(board_file), str(tmp_path / "s")],
                       capture_output=True, text=True, timeout=30)
    return p.returncode, p.stderr


@pytest.mark.parametrize("field,value,words", [
    ("disk_mb", "big", ["disk_mb", "not an integer"]),
    ("disk_mb", 0, ["disk_mb", "must be 1.."]),
    ("heap_kb", None, ["heap_kb", "missing"]),
    ("populated_slots", 99, ["populated_slots", "only 12 exist"]),
    ("iqn", "dac960", ["iqn", "iSCSI qualified name"]),
    ("host_ports", [{"type": "SCSI", "portal": "127.0.0.1:3260"}], ["host_ports", "exactly two"]),
    ("host_ports", [{"type": "USB", "portal": "127.0.0.1:1"}, {"type": "FC", "portal": "x:2"}],
     ["host_ports[0].type", "SCSI, FC"]),
    ("host_ports", [{"type": "FC", "portal": "127.0.0.1:70000"}, {"type": "FC", "portal": "x:2"}],
     ["host_ports[0].portal", "0..65535"]),
    ("console", "serial", ["console", "tcp:HOST:PORT"]),
    ("buffer_kb", 900000, ["buffer_kb", "half the heap"]),
    ("iscsi_task_timeout_s", 0, ["iscsi_task_timeout_s", "1..3600"]),
    ("iscsi_task_timeout_s", "10", ["iscsi_task_timeout_s", "integer"]),
])
def test_bad_board_file_is_refused_naming_file_field_and_problem(tmp_path, field, value, words):
    d = json.loads((ROOT / "boards" / "dac960sx.json").read_text())
    if value is None:
        del d[field]
    else:
        d[field] = value
    f = tmp_path / "bad.json"
    f.write_text(json.dumps(d))
    rc, err = boot_fails(f, tmp_path)
    assert rc == 3
    assert str(f) in err
    for w in words:
        assert w in err, err


def test_board_file_that_is_not_json(tmp_path):
    f = tmp_path / "bad.json"
    f.write_text("{model: DAC960")
    rc, err = boot_fails(f, tmp_path)
    assert rc == 3 and "not valid JSON" in err and str(f) in err


def test_missing_board_file(tmp_path):
    rc, err = boot_fails(tmp_path / "none.json", tmp_path)
    assert rc == 3 and "cannot read the board file" in err


def test_both_shipped_boards_boot_with_the_factory_layout(make_board):
    for model in ("dac960sx", "dac960sf"):
        b = make_board(model)
        assert b.ready["model"] == model.upper()
        assert len(b.portals) == 2 and b.console[1] > 0
        assert (b.state / "nvram.bin").exists()
        assert len(list(b.state.glob("disk-*.img"))) == 6
