"""A half-made copy never looks like a backup, on a booted board: after `lop stop` or a kill -9 of
a copy, the destination's LUN answers NOT READY 02/04/80 (TEST UNIT READY, READ) over iSCSI until a
copy completes or the operator clears the mark; status shows INCOMPLETE; a copy started through the
log drive is found by the primary's and the destination's numbers too."""
import subprocess

import test_iscsi_initiator as I
from test_lop import RAIDBOARD, INITIATE, lboard, login, reboot  # noqa: F401 (fixture)
from harness import answer

TUR = bytes(6)
READ = bytes([0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0])
INCOMPLETE = (0x02, 0x04, 0x80)
DEST = 2


def answers(c):
    # (status, key/ASC/ASCQ) of TEST UNIT READY and READ(10) on the destination's LUN
    return [(r["status"], I.sense_key(r["sense"])) for r in
            (c.command(DEST, TUR), c.command(DEST, READ, read_len=512))]


def cli(b, *argv):
    url = "socket://%s:%d" % tuple(b.b.console)
    return subprocess.run([RAIDBOARD, "--port", url] + list(argv), capture_output=True, text=True, timeout=60)


def test_a_stopped_or_killed_copy_leaves_its_destination_not_ready_until_a_copy_completes(lboard):
    b = lboard
    c = login(b)
    assert c.command(0, INITIATE)["status"] == 0
    b.command("lop_start", {"op": "rate", "rate": 1})        # never done before we stop it
    p = cli(b, "lop", "start", "copy", "sd1", "--to", "sd2", "--force")
    assert p.returncode == 0, p.stderr
    # started through the log drive, stopped by the primary's number
    p = cli(b, "lop", "stop", "sd0")
    assert p.returncode == 0 and "TERMINATED" in p.stdout, p.stderr
    assert answers(c) == [(2, INCOMPLETE)] * 2
    p = cli(b, "cdb", "0/2", TUR.hex())
    assert p.returncode == 6 and "incomplete copy" in p.stdout, p.stdout
    p = cli(b, "sd", "list")
    assert [ln.split()[2] for ln in p.stdout.splitlines() if ln.startswith("sd2")] == ["INCOMPLETE"], p.stdout
    assert [d["incomplete"] for d in answer(cli(b, "--json", "status").stdout)["drives"]] == [False, False, True]

    # a kill -9 in the middle of the next copy: it resumes (BUSY); stopped, then killed again,
    # the destination still is no backup
    b.command("lop_start", {"op": "copy", "sd": 1, "to": DEST})
    reboot(b)
    c = login(b)
    assert [st for st, _ in answers(c)] == [0x08, 0x08]
    assert cli(b, "lop", "stop", "sd2").returncode == 0
    reboot(b)
    c = login(b)
    assert answers(c) == [(2, INCOMPLETE)] * 2

    # a copy that completes makes it a backup, for good
    b.command("lop_start", {"op": "rate", "rate": 100})
    b.command("lop_start", {"op": "copy", "sd": 0, "to": DEST})
    p = cli(b, "lop", "status", "sd2", "--wait", "--interval", "0.1")   # waits by the destination too
    assert p.returncode == 0 and "COMPLETED" in p.stderr + p.stdout, p.stderr
    assert answers(c) == [(0, None)] * 2
    reboot(b)
    c = login(b)
    assert answers(c) == [(0, None)] * 2


def test_the_operator_clears_the_mark_only_when_asked_for_certain(lboard):
    b = lboard
    c = login(b)
    assert c.command(0, INITIATE)["status"] == 0
    b.command("lop_start", {"op": "rate", "rate": 1})
    b.command("lop_start", {"op": "copy", "sd": 1, "to": DEST})
    b.command("lop_stop", {"sd": 1})
    p = cli(b, "lop", "clear", "sd2")                     # a script without --force: nothing done
    assert p.returncode == 8 and "--force" in p.stderr
    assert answers(c) == [(2, INCOMPLETE)] * 2
    p = cli(b, "lop", "clear", "sd0", "--force")
    assert p.returncode != 0 and "NOT_INCOMPLETE" in p.stderr
    p = cli(b, "lop", "clear", "sd2", "--force")
    assert p.returncode == 0, p.stderr
    assert answers(c) == [(0, None)] * 2
