"""StorCLI habits against a real board (host/README.md "StorCLI-style paths" and "JSON output"):
every StorCLI form the board has, StorCLI's JSON frame around every answer — success, refusal,
usage error, unreachable board — one key per fact, and ISO 8601 times."""
import json
import re
import socket
import subprocess
from importlib import metadata

from harness import answer
from test_cli import RAIDBOARD, rb, rbj

DUPLICATES = (("pct", "percent"), ("word", "words"), ("name", "op"))
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def failure(text):
    """The Command Status of a failed command's one JSON document."""
    doc = json.loads(text)          # the whole of stdout is one document
    status = doc["Controllers"][0]["Command Status"]
    assert status["Status"] == "Failure" and status["Controller"] == 0, status
    return status


def test_show_all_and_the_J_suffix(board):
    st = rbj(board, "/c0", "show", "all")
    assert st["model"].startswith("DAC960") and st["drives"]
    sd0 = answer(rb(board, "/c0/v0", "show", "all", "J")[0])
    assert sd0["sd"] == 0 and [m["name"] for m in sd0["members"]] == ["0:0", "0:1", "0:2", "0:3"]
    everything = answer(rb(board, "/c0/vall", "show", "J")[0])
    assert [d["sd"] for d in everything["drives"]] == [0, 1]
    text, _ = rb(board, "/c0/v0", "show", "all")
    assert "RAID5" in text and "START" in text


def test_a_slot_path_shows_that_slot_only(board):
    # /c0/eC/sT: C is the drive channel, T the target
    one = answer(rb(board, "/c0/e1/s0", "show", "J")[0])
    assert one["name"] == "1:0" and one["slot"] == 4
    assert answer(rb(board, "/c0/s2", "show", "J")[0])["slot"] == 2
    text, _ = rb(board, "/c0/e0/s1", "show")
    assert "0:1" in text and "0:2" not in text and "1:0" not in text
    _, err = rb(board, "/c0/e2/s3", "show", rc=2)        # a DAC960SX test board fills 6 of 12 slots
    assert "no disk slot named '2:3'" in err
    assert answer(rb(board, "/c0/p0/l1", "show", "J")[0]) == {"port": 0, "lun": 1, "sd": 1, "backup": True}


def test_add_vd_takes_storcli_drive_lists(make_board):
    b = make_board(populated_slots=8)
    r = rbj(b, "/c0", "add", "vd", "r1", "drives=1:2-1:3", "size=16MB")
    d = rbj(b, "sd", "show", "sd%d" % r["sd"])
    assert d["raid"] & 0x0F == 1 and d["mb"] == 16 and [m["name"] for m in d["members"]] == ["1:2", "1:3"]
    rbj(b, "/c0/v%d" % r["sd"], "del", "--force")
    r = rbj(b, "/c0", "add", "vd", "type=raid0", "drives=1:2,1:3", "strip=32", "wb")
    d = rbj(b, "sd", "show", "sd%d" % r["sd"])
    assert d["raid"] & 0x0F == 0 and d["wb"] is True and [m["name"] for m in d["members"]] == ["1:2", "1:3"]
    for words, said in ((["r1", "drives=1:2-2:0"], "a range stays on one channel"),
                        (["r1", "drives=1:3-1:2"], "runs backwards"),
                        (["r1", "drives=1:0-1:99999999"], "at most 8 members"),
                        (["r4", "drives=1:2,1:3"], "not a RAID type this board has"),
                        (["drives=1:2,1:3"], "needs a RAID type"),
                        (["r1", "drives=1:2,1:3", "pdcache=on"], "'pdcache=on' is not an option"),
                        (["r1", "drives=1:2,1:3", "strip=big"], "strip='big': write the stripe size in KB"),
                        (["r1", "drives=1:2,1:3", "size=lots"], "size='lots': write it as N, NMB or NGB"),
                        (["r1", "drives=x:y"], "'x:y' is not C:T")):
        _, err = rb(b, "/c0", "add", "vd", *words, rc=2)
        assert said in err, (words, err)


def test_start_init_and_cc_and_their_progress(board):
    text, _ = rb(board, "/c0/v0", "show", "cc")
    assert "no check runs on sd0" in text
    assert rbj(board, "/c0/v0", "show", "cc") == {"lops": []}
    assert "check started on sd0" in rb(board, "/c0/v0", "start", "cc")[0]
    rb(board, "lop", "status", "sd0", "--wait")
    [cc] = rbj(board, "/c0/v0", "show", "cc")["lops"]
    assert cc["op"] == "check" and cc["state"] == "COMPLETED" and cc["percent"] == 100
    # init wipes the drive: asked first, as `lop start init` is
    _, err = rb(board, "/c0/v0", "start", "init", rc=8)
    assert "initialize sd0? all its data is lost" in err
    assert rbj(board, "/c0/v0", "show", "init") == {"lops": []}
    assert "init started on sd0" in rb(board, "/c0/v0", "--force", "start", "init", "full")[0]
    rb(board, "lop", "status", "sd0", "--wait")
    assert [o["op"] for o in rbj(board, "/c0/v0", "show", "init")["lops"]] == ["init"]
    text, _ = rb(board, "/c0/v1", "show", "rebuild")
    assert "no rebuild runs on sd1" in text


def test_a_storcli_path_as_a_drive_argument_is_that_drive(board):
    assert rbj(board, "snapshot", "start", "/c0/v0")["generation"] >= 1
    assert rbj(board, "snapshot", "status")["primary"] == 0
    rbj(board, "snapshot", "stop", "--force")
    _, err = rb(board, "snapshot", "start", "/c1/v0", rc=2)
    assert "there is no controller 1: this board is one controller, /c0" in err


def test_forms_the_board_has_not_are_named_not_leaked(board):
    for argv in (["/c0/v0", "frob"], ["/c0/e1/s0", "start", "init"], ["/c0/v0", "show", "bgi"],
                 ["/c0/vall", "del"], ["/c0", "add", "jbod"]):
        _, err = rb(board, *argv, rc=2)
        assert "not a StorCLI form this board has; they are:" in err and "/c0/vN start init [full]|cc" in err, err
        assert "unrecognized arguments" not in err
    _, err = rb(board, "/c2/v0", "show", rc=2)
    assert "there is no controller 2: this board is one controller, /c0" in err


def test_every_answer_is_one_json_document_success_or_failure(board, tmp_path):
    doc = json.loads(rb(board, "--json", "status")[0])
    status = doc["Controllers"][0]["Command Status"]
    assert status["Description"].endswith(" --json status")
    assert status == {"Controller": 0, "Status": "Success", "Description": status["Description"]}
    # a refusal of the board
    s = failure(rb(board, "--json", "sd", "delete", "sd7", "--force", rc=1)[0])
    assert s["Error Code"] == "NO_SUCH_DRIVE" and s["Exit Code"] == 1 and s["Error Message"] == "system drive 7 is not defined"
    assert "raidboard sd list" in s["What To Do"]
    # usage errors, also those found before the line is parsed and StorCLI's J
    for argv in (["--json", "sd", "show", "sd9"], ["-j", "no-such-command"], ["/c0/v0", "frob", "J"], ["-j"]):
        s = failure(rb(board, *argv, rc=2)[0])
        assert s["Error Code"] == "USAGE" and s["Exit Code"] == 2 and s["Error Message"], argv
    # not confirmed
    s = failure(rb(board, "--json", "/c0/v1", "del", rc=8)[0])
    assert s["Error Code"] == "NOT_CONFIRMED" and "delete sd1?" in s["Error Message"]
    # a board nobody runs
    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0))
        port = sk.getsockname()[1]
    p = subprocess.run([RAIDBOARD, "--json", "--port", "socket://127.0.0.1:%d" % port, "status"],
                       capture_output=True, text=True, timeout=30)
    s = failure(p.stdout)
    assert p.returncode == 3 and s["Error Code"] == "UNREACHABLE" and "connection refused" in s["Error Message"]


def walk(v, key=None):
    """(key, value) of every value in a JSON answer, and each dict met."""
    if isinstance(v, dict):
        yield None, v
        for k, x in v.items():
            yield from walk(x, k)
    elif isinstance(v, list):
        for x in v:
            yield from walk(x, key)
    else:
        yield key, v


def test_answers_say_each_fact_once_with_iso_times(board):
    rbj(board, "snapshot", "start", "sd0")
    rbj(board, "lop", "start", "check", "sd0")
    rb(board, "lop", "status", "--wait")
    times = 0
    for argv in (["status"], ["lop", "status"], ["sd", "list"], ["snapshot", "status"], ["events"]):
        for key, v in walk(rbj(board, *argv)):
            if key is None:
                assert not [pair for pair in DUPLICATES if set(pair) <= set(v)], (argv, v)
            elif key in ("time", "started", "ended", "finished") and v is not None:
                assert isinstance(v, str) and ISO_UTC.match(v), (argv, key, v)
                times += 1
            elif key == "percent" or key.endswith("pct"):
                assert round(v, 1) == v, (argv, key, v)
    assert times >= 3       # events, the check's start and end


def test_version_names_the_cli_and_the_firmware(tmp_path):
    p = subprocess.run([RAIDBOARD, "--version"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0
    assert p.stdout.splitlines() == ["raidboard %s" % metadata.version("raidboard"), "firmware raidboard-fw 0.1"]
    p = subprocess.run([RAIDBOARD, "--json", "--version"], capture_output=True, text=True, timeout=30)
    assert answer(p.stdout) == {"raidboard": metadata.version("raidboard"), "firmware": "raidboard-fw 0.1"}
    p = subprocess.run([RAIDBOARD, "--version"], capture_output=True, text=True, timeout=30,
                       env={"PATH": "/usr/bin:/bin", "RAIDBOARD_FIRMWARE": str(tmp_path / "main.py")})
    assert p.returncode == 0 and "firmware not found" in p.stdout


def test_a_watch_that_ends_in_a_lost_snapshot_ends_its_json_lines_with_the_failure(board):
    rbj(board, "snapshot", "start", "sd0")
    for slot in (4, 5):                                     # the log drive sd1's two disks
        rb(board, "disk", "fail", slot, "--force")
    out, _ = rb(board, "--json", "snapshot", "watch", "--count", "1", rc=10)
    sample, end = out.splitlines()
    assert answer(sample)["last"]["how"] == "log failed"
    s = failure(end)
    assert s["Error Code"] == "SNAPSHOT_LOST" and s["Exit Code"] == 10 and "log failed" in s["Error Message"]
