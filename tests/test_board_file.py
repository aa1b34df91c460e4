"""A bad board file is refused by `raidboard boot` before the firmware starts: exit code 4 and
"FILE: field: reason", never a traceback or a firmware killed by a signal (boards/README.md)."""
import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from raidboard import boardfile

RAIDBOARD = str(Path(sys.executable).with_name("raidboard"))
REPO = Path(__file__).resolve().parents[1]


def board_in(tmp_path, **changes):
    """boards/dac960sx.json on ephemeral ports with its factory image next to it, then `changes`."""
    d = json.loads((REPO / "boards" / "dac960sx.json").read_text())
    shutil.copy(REPO / "nvram" / "dac960sx-factory.bin", tmp_path / "factory.bin")
    d.update(console="tcp:127.0.0.1:0", management="tcp:127.0.0.1:0", disk_mb=16,
             host_ports=[{"type": "SCSI", "portal": "127.0.0.1:0"}, {"type": "SCSI", "portal": "127.0.0.1:0"}],
             factory_nvram=str(tmp_path / "factory.bin"))
    d.update(changes)
    path = tmp_path / "board.json"
    path.write_text(json.dumps(d))
    return path


def boot(board, state):
    p = subprocess.run([RAIDBOARD, "boot", str(board), str(state), "--detach"], capture_output=True, text=True,
                       timeout=120)
    if p.returncode == 0:
        subprocess.run([RAIDBOARD, "stop", "--state", str(state)], capture_output=True, timeout=60)
    return p.returncode, p.stderr


@pytest.mark.parametrize("field,value,reason", [
    ("heap_kb", 1073741824, "must be 4096..2097152"),              # was SIGSEGV with an empty log
    ("buffer_kb", 256, "must be 816..1048576"),                    # was a traceback: less than one slot
    ("factory_nvram", "/etc/passwd", "next to the board file"),
    ("factory_nvram", "../../../etc/passwd", "nvram"),
    ("factory_nvram", "nvram/../../../etc/passwd", "nvram"),
    ("heap_kb", True, "not an integer"),
    ("heap_kb", 6000, "cannot hold the buffer (3000 KiB), the exception index"),
    ("buffer_kb", 30000, "half the heap"),
    ("model", "DAC960PJ", "DAC960SX, DAC960SF"),
    ("console", "tcp:127.0.0.1:99999", "PORT must be 0..65535"),
    ("console", "tcp:example.invalid:1", "IPv4 address"),
    ("host_ports", [{"type": "SCSI", "portal": "127.0.0.1:5000"}] * 2, "already the host_ports[0]'s"),
    ("host_ports", [{"type": "SCSI", "portal": "127.0.0.1:0", "speed": 1}] * 2, "exactly the fields"),
    ("nvram_kb", 16.5, "not an integer"),
    ("disk_mb", 0, "must be 1.."),
    ("spare_disks", 2, "unknown field"),
    ("management", "udp:127.0.0.1:1", "must be \"tcp:HOST:PORT\""),
    ("management", "tcp:127.0.0.1:65536", "PORT must be 0..65535"),
    ("heap_kb", 7000, "the firmware and its management endpoint: at least 19286 KiB"),
    ("iscsi_task_timeout_s", 0, "must be 1..3600"),
    ("iscsi_task_timeout_s", 2.5, "not an integer"),
])
def test_bad_field_is_refused_before_the_firmware_starts(tmp_path, field, value, reason):
    board = board_in(tmp_path, **{"buffer_kb": 3000, field: value})
    rc, err = boot(board, tmp_path / "state")
    assert rc == 4, err
    assert err.startswith("raidboard: boot failed: %s: %s" % (board, field)), err
    assert reason in err and "Traceback" not in err, err
    assert not (tmp_path / "state").exists()           # refused before anything was made or started


@pytest.mark.parametrize("make,reason", [
    (lambda d: d / "missing.bin", "No such file"),
    (lambda d: (d / "dir.bin").mkdir() or d / "dir.bin", "not a regular file"),
    (lambda d: (d / "short.bin").write_bytes(b"RBNV") and d / "short.bin", "one NV memory bank"),
    (lambda d: (d / "zero.bin").write_bytes(bytes(3173)) and d / "zero.bin", "not a usable NV memory bank"),
])
def test_factory_image_must_be_a_bank_next_to_the_board_or_in_nvram(tmp_path, make, reason):
    board = board_in(tmp_path, factory_nvram=str(make(tmp_path)))
    rc, err = boot(board, tmp_path / "state")
    assert rc == 4 and ": factory_nvram: " in err and reason in err, err


def test_board_file_that_is_a_device_huge_or_nested_too_deep(tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 60000)
    huge = tmp_path / "huge.json"
    huge.write_text(" " * 70000 + "{}")
    for path, reason in (("/dev/zero", "regular file"), (deep, "not JSON"), (huge, "at most 65536 bytes")):
        rc, err = boot(path, tmp_path / "state")
        assert rc == 4 and reason in err and "Traceback" not in err, err


def test_optional_task_timeout_is_accepted(tmp_path):
    rc, err = boot(board_in(tmp_path, iscsi_task_timeout_s=5), tmp_path / "state")
    assert rc == 0, err


def test_shipped_factory_image_by_its_relative_name_boots(tmp_path):
    rc, err = boot(board_in(tmp_path, factory_nvram="nvram/dac960sx-factory.bin"), tmp_path / "state")
    assert rc == 0, err


POOL = [0, -1, 1, 2, 15, 16, 255, 256, 815, 816, 1023, 4096, 8192, 32768, 2 ** 21, 2 ** 31, 2 ** 64, True,
        False, 1.5, None, "", "x", "16", [], {}, [1, 2], "stdio", "tcp:127.0.0.1:0", "tcp:0.0.0.0:0",
        "tcp::1", "tcp:127.0.0.1:-1", "iqn.x", "iqn.\u00e9 x", "/etc/passwd", "../../etc/passwd", "/dev/zero",
        "nvram", "nvram/", "nvram/dac960sx-factory.bin", "nvram/../nvram/dac960sf-factory.bin", "\0",
        "DAC960SF", "DAC960SX", [{"type": "FC", "portal": "127.0.0.1:0"}] * 2, [{"type": "FC"}, 3],
        [{"type": "SCSI", "portal": "localhost:0"}, {"type": "FC", "portal": "127.0.0.1:0"}]]


def test_fuzzed_board_files_are_refused_or_boot(tmp_path):
    r = random.Random(9012)
    fields = sorted(boardfile.FIELDS) + ["extra"]
    accepted = []
    for i in range(400):
        d = json.loads(board_in(tmp_path).read_text())
        for _ in range(r.randrange(1, 4)):
            f = r.choice(fields)
            if r.random() < 0.15:
                d.pop(f, None)
            else:
                d[f] = r.choice(POOL)
        path = tmp_path / ("fuzz%d.json" % i)
        path.write_text(json.dumps(d))
        try:
            boardfile.check(path, REPO)
            accepted.append(path)
        except boardfile.BoardFileError as e:
            assert str(e).startswith("%s: " % path) and str(e).count(": ") >= 2, e
    assert 0 < len(accepted) < 400, len(accepted)
    print("board file fuzz: %d of 400 accepted" % len(accepted))
    # what the host accepts boots, or fails to boot with a message, never a crash
    for n, path in enumerate(accepted[:5]):
        rc, err = boot(path, tmp_path / ("state%d" % n))
        assert rc == 0, err


def test_heap_larger_than_the_machine_is_refused(tmp_path, monkeypatch):
    # the unix port would die of SIGSEGV allocating it, before writing a line of log
    monkeypatch.setattr(boardfile, "_memory_kb", lambda: 16384)
    try:
        boardfile.check(board_in(tmp_path), REPO)
    except boardfile.BoardFileError as e:
        assert ": heap_kb: 40960 KiB is more than this machine's memory (16384 KiB)" in str(e)
    else:
        raise AssertionError("a 40 MiB heap was accepted on a 16 MiB machine")
