"""The `raidboard` command against a booted board (fixture `board` of tests/conftest.py).

Every query runs with --json and its output is parsed; every change is read back from the board.
The CLI runs as its own process (the installed console script), as a user would run it.
"""
import os
import subprocess
import sys
from pathlib import Path
from harness import answer, answers


RAIDBOARD = str(Path(sys.executable).with_name("raidboard"))


def rb(board, *argv, rc=0, timeout=60, env=None):
    """Run `raidboard --port <board console> argv...` (with `env` added to the environment); assert
    the exit code; return (stdout, stderr)."""
    url = "socket://%s:%d" % tuple(board.console)
    p = subprocess.run([RAIDBOARD, "--port", url] + [str(a) for a in argv], capture_output=True, text=True,
                       timeout=timeout, env=dict(os.environ, RAIDBOARD_PORT="", **(env or {})))
    assert p.returncode == rc, "raidboard %s -> %d (want %d)\nstdout:\n%s\nstderr:\n%s" % (
        " ".join(map(str, argv)), p.returncode, rc, p.stdout, p.stderr)
    return p.stdout, p.stderr


def rbj(board, *argv, rc=0):
    out, _ = rb(board, "--json", *argv, rc=rc)
    return answer(out, "Success" if rc == 0 else "Failure")


def drives(board):
    return {d["sd"]: d for d in rbj(board, "sd", "list")["drives"]}


def lunmap(board):
    return {(m["port"], m["lun"]): m["sd"] for m in rbj(board, "lun", "list")["map"]}


def test_status_json_and_text(board):
    st = rbj(board, "status")
    assert st["model"].startswith("DAC960")
    assert isinstance(st["drives"], list) and st["drives"]
    assert {"state"} <= set(st["snapshot"])
    text, _ = rb(board, "status")
    assert "sd%d" % st["drives"][0]["sd"] in text
    assert "snapshot:" in text


def test_sd_list_and_show(board):
    ds = drives(board)
    assert ds, "the factory board has system drives"
    for sd, d in ds.items():
        assert d["status"] in ("ONLINE", "CRITICAL", "OFFLINE")
        assert d["members"]
    sd = min(ds)
    one = rbj(board, "sd", "show", "sd%d" % sd)
    assert one["sd"] == sd and one["members"] == ds[sd]["members"]
    text, _ = rb(board, "sd", "list")
    assert "sd%d" % sd in text and "STATUS" in text
    # StorCLI-style addressing reaches the same data
    assert rbj(board, "/c0/v%d" % sd, "show")["sd"] == sd
    assert [d["sd"] for d in rbj(board, "/c0/vall", "show")["drives"]] == sorted(ds)


def test_disk_list(board):
    disks = rbj(board, "disk", "list")["disks"]
    assert len(disks) >= 6
    assert all({"slot", "name", "state"} <= set(d) for d in disks)
    assert rbj(board, "/c0/eall/sall", "show")["disks"] == disks


def test_lun_map_and_unmap(board):
    before = lunmap(board)
    free = next((p, l) for p in (1, 0) for l in range(7, -1, -1) if (p, l) not in before)
    sd = min(drives(board))
    out = rbj(board, "lun", "map", "%d/%d" % free, "sd%d" % sd)
    assert out == {}
    assert lunmap(board)[free] == sd
    rbj(board, "lun", "unmap", "%d/%d" % free, "--force")
    assert lunmap(board) == before
    # unmapping it again is refused by the board: exit 1, the code and a hint on stderr
    _, err = rb(board, "lun", "unmap", "%d/%d" % free, "--force", rc=1)
    assert "refused" in err


def test_reconfigure_log_drive_and_create_drives(board):
    """Factory board: sd1 is the RAID 1 log drive over slots 4,5 with backup LUNs 0/1 and 1/1.
    Take it apart and build it again smaller, with a JBOD next to it, all through the CLI."""
    ds = drives(board)
    log_sd = next(sd for sd, d in ds.items() if d["log"])
    members = [m["slot"] for m in ds[log_sd]["members"]]
    names = [m["name"] for m in ds[log_sd]["members"]]
    backup_luns = sorted(pl for pl, sd in lunmap(board).items() if sd == log_sd)
    assert backup_luns
    # the board refuses to clear LOG while backup LUNs are mapped, and says why
    _, err = rb(board, "log", "clear", "sd%d" % log_sd, rc=1)
    assert "LUN_IN_USE" in err and "what to do" in err
    for pl in backup_luns:
        rbj(board, "lun", "unmap", "%d/%d" % pl, "--force")
    assert rbj(board, "log", "clear", "sd%d" % log_sd) == {}
    assert drives(board)[log_sd]["log"] is False
    rbj(board, "sd", "delete", "sd%d" % log_sd, "--force")
    assert log_sd not in drives(board)

    # RAID 1 over half of the same disks, named by channel:target, at the same drive number
    disk_mb = {d["slot"]: d["mb"] for d in rbj(board, "disk", "list")["disks"]}
    half = disk_mb[members[0]] // 2
    r = rbj(board, "sd", "create", "--raid", "1", "--slots", ",".join(names), "--mb", half,
            "--sd", "sd%d" % log_sd)
    assert r["sd"] == log_sd
    d = drives(board)[log_sd]
    assert d["raid"] & 0x0F == 1 and d["mb"] == half and [m["slot"] for m in d["members"]] == members
    # a JBOD in the space left on the last disk; write policy both ways; then delete it
    jb = rbj(board, "sd", "create", "--raid", "jbod", "--slots", str(members[-1]), "--mb", "8")["sd"]
    d = drives(board)[jb]
    assert d["raid"] & 0x0F == 7 and d["mb"] == 8 and d["wb"] is False
    rbj(board, "sd", "policy", "sd%d" % jb, "wb")
    assert drives(board)[jb]["wb"] is True
    rbj(board, "sd", "policy", "sd%d" % jb, "write-through")
    assert drives(board)[jb]["wb"] is False
    rbj(board, "/c0/v%d" % jb, "del", "--force")
    assert jb not in drives(board)

    # LOG again, with its chunk size, and the backup LUNs back
    rbj(board, "log", "set", "sd%d" % log_sd, "--chunk-kb", "64", "--force")
    d = drives(board)[log_sd]
    assert d["log"] is True and d["chunk_kb"] == 64
    for pl in backup_luns:
        rbj(board, "lun", "map", "%d/%d" % pl, "sd%d" % log_sd)
    assert sorted(pl for pl, sd in lunmap(board).items() if sd == log_sd) == backup_luns
    text, _ = rb(board, "sd", "list")
    assert "LOG" in text and "%d MB" % half in text


def test_snapshot_start_status_watch_stop(board):
    ds = drives(board)
    log = [sd for sd, d in ds.items() if d["log"]]
    primary = [sd for sd, d in ds.items() if not d["log"]][0]
    assert log
    assert rbj(board, "snapshot", "status")["state"] == "IDLE"
    r = rbj(board, "snapshot", "start", "sd%d" % primary)
    assert "generation" in r
    st = rbj(board, "snapshot", "status")
    assert st["state"] == "ACTIVE" and st["primary"] == primary and st["log"] in log
    # a second initiate is refused with its code
    _, err = rb(board, "snapshot", "start", "sd%d" % primary, rc=1)
    assert "SNAPSHOT_ACTIVE" in err
    # watch prints one JSON sample per line
    out, _ = rb(board, "--json", "snapshot", "watch", "--count", "2", "--interval", "0.1")
    samples = answers(out)
    assert len(samples) == 2 and all(s["state"] == "ACTIVE" for s in samples)
    _, err = rb(board, "snapshot", "watch", "--count", "1")
    assert "log usage" in err
    text, _ = rb(board, "snapshot", "status")
    assert "ACTIVE" in text and "sd%d" % primary in text
    assert rbj(board, "snapshot", "stop", "--force") == {}
    assert rbj(board, "snapshot", "status")["state"] == "IDLE"
    _, err = rb(board, "snapshot", "stop", "--force", rc=1)
    assert "NO_SNAPSHOT" in err and "was terminated (command)" in err
    assert rbj(board, "snapshot", "status")["last"]["how"] == "terminated"


def test_cdb_pass_through(board):
    port, lun = sorted(lunmap(board))[0]
    pl = "%d/%d" % (port, lun)
    inq = rbj(board, "cdb", pl, "12 00 00 00 24 00")
    assert inq["status"] == 0 and inq["sense"] is None
    data = bytes.fromhex(inq["data"])
    assert len(data) == 36 and data[0] & 0x1F == 0  # direct-access block device
    cap = rbj(board, "cdb", pl, "25000000000000000000")
    last_lba = int.from_bytes(bytes.fromhex(cap["data"])[:4], "big")
    assert cap["status"] == 0 and last_lba > 0
    text, _ = rb(board, "cdb", pl, "120000002400")
    assert "GOOD" in text and "00000000  " in text
    # READ(10) one block beyond the end: CHECK CONDITION, decoded sense, exit 6
    lba = (last_lba + 1).to_bytes(4, "big").hex()
    bad = rbj(board, "cdb", pl, "28 00 %s 00 00 01 00" % lba, rc=6)
    assert bad["status"] == 2 and bad["sense"]["key_name"] == "ILLEGAL REQUEST"
    text, _ = rb(board, "cdb", pl, "2800%s00000100" % lba, rc=6)
    assert "CHECK CONDITION" in text and "ILLEGAL REQUEST" in text


def test_cdb_names_the_boards_own_sense_and_return_words(board):
    # lop/README.md Table 10: Get Long Operation Status on a board where no copy ran
    r = rbj(board, "cdb", "0/0", "20 00 43 01 00 00 00 00 02 00")
    assert r["word"] == "word 0x0105 no copy in progress"
    # scsi/vendor.md Table 4: Terminate with no snapshot active
    text, _ = rb(board, "cdb", "0/0", "20 00 61 00 00 00 00 00 00 00", rc=6)
    assert "VENDOR SPECIFIC (key 0x9), ASC/ASCQ 0x81/0x0C initiate: an initialization" in text, text
    assert "terminate: no snapshot active" in text


def test_cdb_write_read_round_trip(board, tmp_path):
    port, lun = sorted(lunmap(board))[0]
    pl = "%d/%d" % (port, lun)
    block = bytes(range(256)) * 2
    f = tmp_path / "blk.bin"
    f.write_bytes(block)
    rbj(board, "cdb", pl, "2a000000001000000100", "--data-file", f)  # WRITE(10) LBA 0x1000
    got = tmp_path / "got.bin"
    r = rbj(board, "cdb", pl, "28000000001000000100", "--out", got)
    assert got.read_bytes() == block and bytes.fromhex(r["data"]) == block
    rbj(board, "cdb", pl, "2a000000001000000100", "--data", "00" * 512)
    assert bytes.fromhex(rbj(board, "cdb", pl, "28000000001000000100")["data"]) == bytes(512)


def test_cdb_usage_errors(board):
    _, err = rb(board, "cdb", "0/0", "zz", rc=2)
    assert "not hex" in err
    _, err = rb(board, "cdb", "0/0", "0000", rc=2)
    assert "6 to 16 bytes" in err
    _, err = rb(board, "cdb", "9/0", "000000000000", rc=2)
    assert "port" in err
    _, err = rb(board, "cdb", "0/0", "2a000000000000000100", "--data-file", "/nonexistent/x", rc=2)
    assert "--data-file" in err


def test_events(board):
    sd = min(drives(board))
    port_lun = next((p, l) for p in (1, 0) for l in range(7, -1, -1) if (p, l) not in lunmap(board))
    rbj(board, "lun", "map", "%d/%d" % port_lun, "sd%d" % sd)  # configuration changes are events
    rbj(board, "lun", "unmap", "%d/%d" % port_lun, "--force")
    evs = rbj(board, "events", "-n", "5")["events"]
    assert 1 <= len(evs) <= 5
    assert all({"seq", "level", "text"} <= set(e) for e in evs)
    seqs = [e["seq"] for e in evs]
    assert seqs == sorted(seqs)
    text, _ = rb(board, "events", "-n", "2")
    assert evs[-1]["text"] in text
    # --follow prints the recent ones, then whatever arrives, one JSON object per line
    out, _ = rb(board, "--json", "events", "--follow", "--seconds", "1", "-n", "3")
    followed = answers(out)
    assert followed and followed[-1]["seq"] >= evs[-1]["seq"]


def test_disk_fail_and_replace(board):
    ds = drives(board)
    # a member of a redundant drive
    d = next(d for d in ds.values() if d["raid"] & 0x0F in (1, 3, 5, 6))
    slot = d["members"][-1]["slot"]
    rbj(board, "disk", "fail", slot, "--force")
    disks = {x["slot"]: x for x in rbj(board, "disk", "list")["disks"]}
    assert disks[slot]["state"] == "failed"
    assert drives(board)[d["sd"]]["status"] == "CRITICAL"
    out, _ = rb(board, "disk", "replace", slot, "--force")
    assert "automatic rebuild of sd%d started" % d["sd"] in out, out
    disks = {x["slot"]: x for x in rbj(board, "disk", "list")["disks"]}
    assert disks[slot]["state"] != "failed"
    _, err = rb(board, "disk", "fail", "99", "--force", rc=1)
    assert "slot" in err


def test_automatic_rebuild_setting(board):
    assert rbj(board, "disk", "autorebuild") == {"auto_rebuild": True}
    assert "off" in rb(board, "/c0", "set", "autorebuild=off")[0]
    assert rbj(board, "/c0", "show", "autorebuild") == {"auto_rebuild": False}
    assert rbj(board, "nvram", "show")["auto_rebuild"] is False
    rb(board, "disk", "autorebuild", "on")
    assert rbj(board, "status")["params"] == {"auto_rebuild": True}
    rb(board, "disk", "autorebuild", "maybe", rc=2)


def test_call_raw_command(board):
    assert rbj(board, "call", "lun_list")["map"] == rbj(board, "lun", "list")["map"]
    _, err = rb(board, "call", "no_such_command", rc=1)
    assert "UNKNOWN_COMMAND" in err
    _, err = rb(board, "call", "lun_list", "[1]", rc=2)
    assert "JSON object" in err


def test_refusals_and_usage_errors(board):
    _, err = rb(board, "sd", "delete", "sd7", "--force", rc=1)
    assert "NO_SUCH_DRIVE" in err and "what to do" in err
    _, err = rb(board, "sd", "delete", "sd9", rc=2)
    assert "sd0..sd7" in err
    _, err = rb(board, "lun", "map", "0-1", "sd0", rc=2)
    assert "PORT/LUN" in err
    _, err = rb(board, "sd", "create", "--raid", "4", "--slots", "0", rc=2)
    assert "RAID level" in err
    _, err = rb(board, "no-such-command", rc=2)
    assert "--help" in err
    rb(board, "/c0/v0", "explode", rc=2)


def test_cannot_reach_board(tmp_path):
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens here now
    p = subprocess.run([RAIDBOARD, "--port", "socket://127.0.0.1:%d" % port, "status"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 3 and "raidboard boot" in p.stderr
    p = subprocess.run([RAIDBOARD, "--state", str(tmp_path), "status"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 3 and "no board recorded" in p.stderr


def test_help_teaches():
    p = subprocess.run([RAIDBOARD, "--help"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and "examples:" in p.stdout and "exit codes" in p.stdout
    p = subprocess.run([RAIDBOARD, "cdb", "--help"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and "READ CAPACITY" in p.stdout


def test_controller_paths_are_told_apart_from_file_paths(tmp_path):
    """Only a whole /cN[/vN|/eN/sN...] argument is a controller path; /check/board.json is a file."""
    from raidboard.storcli import storcli
    assert storcli(["/c0/v1", "show"]) == ["sd", "show", "1"]
    for path in ("/check/work/boards/dac960sx.json", "/c0x", "/cache", "/c0/v1/../x"):
        assert storcli(["boot", path, "state"]) == ["boot", path, "state"]
    p = subprocess.run([RAIDBOARD, "/c2", "show"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "there is no controller 2: this board is one controller, /c0" in p.stderr


# every command that destroys data or configuration (host/README.md, "Commands that ask first")
DESTRUCTIVE = [
    ["sd", "delete", "sd1"], ["/c0/v1", "del"], ["log", "set", "sd0"], ["lun", "unmap", "0/1"],
    ["/c0/p0/l1", "unmap"], ["mask", "clear", "iqn.2026-01.test:a"], ["chap", "clear"], ["snapshot", "stop"],
    ["lop", "start", "init", "sd0"], ["lop", "start", "copy", "sd1", "--to", "sd0"],
    ["lop", "start", "resync", "sd1", "--to", "sd0"], ["disk", "fail", "0"], ["disk", "remove", "0:1"],
    ["disk", "replace", "2"], ["/c0/e0/s3", "fail"], ["call", "sd_delete", '{"sd": 1}'],
    ["/c0/v0", "start", "init"], ["/c0/v0", "start", "init", "full"],
    ["call", "lop_start", '{"op": "init", "sd": 0}'], ["lop", "start", "rebuild", "sd0", "--arg", "standby=5"],
    ["call", "chap_set", '{"user": "", "secret": ""}'],
]


def board_config(board):
    nv = rbj(board, "nvram", "show")
    return nv, rbj(board, "disk", "list"), rbj(board, "snapshot", "status"), rbj(board, "lop", "status")


def test_destructive_commands_in_a_script_need_force(board):
    rbj(board, "mask", "set", "iqn.2026-01.test:a", "0/0")
    rbj(board, "snapshot", "start", "sd0")
    before = board_config(board)
    for argv in DESTRUCTIVE:
        _, err = rb(board, *argv, rc=8)
        assert "not done: no terminal to ask on; add --force" in err, (argv, err)
    assert board_config(board) == before
    rb(board, "sd", "delete", "sd7", "--force", rc=1)      # --force: the board is asked (and refuses)


def on_a_terminal(board, argv, answer):
    """Run raidboard with a terminal on stdin, answer the question; return (exit code, stderr)."""
    import pty
    master, slave = pty.openpty()
    url = "socket://%s:%d" % tuple(board.console)
    p = subprocess.Popen([RAIDBOARD, "--port", url] + argv, stdin=slave, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=dict(os.environ, RAIDBOARD_PORT=""))
    os.close(slave)
    os.write(master, answer)
    out, err = p.communicate(timeout=60)
    os.close(master)
    return p.returncode, err


def test_destructive_command_asks_on_a_terminal_and_no_is_the_default(board):
    for answer in (b"\n", b"n\n", b"maybe\n"):
        rc, err = on_a_terminal(board, ["lun", "unmap", "0/1"], answer)
        assert rc == 8 and "unmap port 0 LUN 1? the hosts using it lose it [y/N]" in err, err
    assert [0, 1] in [[m["port"], m["lun"]] for m in rbj(board, "lun", "list")["map"]]
    rc, err = on_a_terminal(board, ["lun", "unmap", "0/1"], b"y\n")
    assert rc == 0, err
    assert [0, 1] not in [[m["port"], m["lun"]] for m in rbj(board, "lun", "list")["map"]]


def test_chap_secret_never_comes_from_the_command_line(board, tmp_path):
    _, err = rb(board, "chap", "set", "backup", "s3cret-secret12", rc=2)     # where ps would show it
    assert "unrecognized arguments" in err
    _, err = rb(board, "chap", "set", "backup", rc=2)                        # no file, no $VAR, no terminal
    assert "--secret-file" in err and "RAIDBOARD_CHAP_SECRET" in err
    assert rbj(board, "call", "chap_get") == {"user": "", "secret_set": False}
    secret = tmp_path / "chap.secret"
    secret.write_text("s3cret-secret12\n")
    rb(board, "chap", "set", "backup", "--secret-file", secret)
    assert rbj(board, "call", "chap_get") == {"user": "backup", "secret_set": True}


def test_status_says_how_much_of_the_heap_is_in_use(board):
    # the board's fixed memory is made at boot: the buffer, the index, the iSCSI buffers (8 MiB)
    import json
    buffer_kb = json.loads(board.board_file.read_text())["buffer_kb"]
    heap = rbj(board, "status")["heap"]
    assert heap["used"] > (buffer_kb + 8192) * 1024 and heap["free"] > 0
    assert heap["used"] + heap["free"] <= board.heap_kb * 1024
