"""LUN masking and CHAP set from the `raidboard` CLI, seen by a real initiator (libiscsi's
iscsi-ls): masks live in NV memory and survive a restart."""
import json
import subprocess
import sys
from pathlib import Path

from harness import need_tool
from test_iscsi_initiator import Initiator

RAIDBOARD = str(Path(sys.executable).with_name("raidboard"))
HOST_A = "iqn.2026-11.org.example:host-a"
HOST_B = "iqn.2026-11.org.example:host-b"


def rb(board, *argv):
    p = subprocess.run([RAIDBOARD, "--port", "socket://%s:%d" % board.console, "--json"] + list(argv),
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def luns_seen(board, name, auth=""):
    # libiscsi's iscsi-ls: discovery, login, REPORT LUNS, then TEST UNIT READY on each LUN (so the
    # backup LUN must be ready: the tests keep a snapshot active)
    host, tcp = board.portals[0]
    p = subprocess.run(["iscsi-ls", "-s", "-i", name, "iscsi://%s%s:%d" % (auth, host, tcp)],
                       capture_output=True, text=True, timeout=60)
    # (it lists the target on both portals: the LUN numbers seen on either)
    return sorted({int(l.split("Lun:")[1].split()[0]) for l in p.stdout.splitlines() if "Lun:" in l})


def report_luns(board, name, port):
    c = Initiator(*board.portals[port], name=name)
    c.login()
    r = c.command(0, bytes([0xA0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]), read_len=256)
    c.logout()
    d = r["data"]
    return [d[8 + 8 * i + 1] for i in range(int.from_bytes(d[:4], "big") // 8)]


def test_masks_decide_which_luns_an_initiator_sees(board):
    need_tool("iscsi-ls", "libiscsi-bin")
    rb(board, "snapshot", "start", "sd0")
    assert luns_seen(board, HOST_A) == [0, 1]                  # no mask: everything mapped
    rb(board, "mask", "set", HOST_A, "0/1", "1/1")
    assert luns_seen(board, HOST_A) == [1]
    assert luns_seen(board, HOST_B) == []                      # once masks exist, unlisted sees none
    rb(board, "mask", "set", HOST_B, "0/0", "1/1")             # per port
    assert report_luns(board, HOST_B, 0) == [0] and report_luns(board, HOST_B, 1) == [1]
    assert rb(board, "mask", "list")["masks"][0] == {"initiator": HOST_A, "luns": [[0, 1], [1, 1]]}
    board.restart()
    assert luns_seen(board, HOST_A) == [1]
    rb(board, "mask", "clear", HOST_A, "--force")
    rb(board, "mask", "clear", HOST_B, "--force")
    assert luns_seen(board, HOST_B) == [0, 1]


def test_chap_from_the_cli(board):
    need_tool("iscsi-ls", "libiscsi-bin")
    rb(board, "snapshot", "start", "sd0")
    rb(board, "chap", "set", "backup", "s3cret-secret12")
    assert luns_seen(board, HOST_A) == []                      # refused without credentials
    assert luns_seen(board, HOST_A, auth="backup%s3cret-secret12@") == [0, 1]
    rb(board, "chap", "clear", "--force")
    assert luns_seen(board, HOST_A) == [0, 1]
