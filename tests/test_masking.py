"""LUN masking and CHAP set from the `raidboard` CLI, seen by a real initiator (libiscsi's
iscsi-ls): masks live in NV memory and survive a restart. Two masked tenants over iSCSI: the direct
commands and task management of one never reach the other's drives."""
import os
import subprocess
import sys
from pathlib import Path

from harness import answer, need_tool
from test_iscsi_initiator import BootedBoard, Initiator, sense_key
from test_lop import lop_start, wait_status, LOP_STATUS, INITIATE

RAIDBOARD = str(Path(sys.executable).with_name("raidboard"))
HOST_A = "iqn.2026-11.org.example:host-a"
HOST_B = "iqn.2026-11.org.example:host-b"


def rb(board, *argv, env=None):
    p = subprocess.run([RAIDBOARD, "--port", "socket://%s:%d" % board.console, "--json"] + list(argv),
                       capture_output=True, text=True, timeout=60, env=dict(os.environ, **(env or {})))
    assert p.returncode == 0, p.stderr
    return answer(p.stdout)


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
    assert rb(board, "mask", "list")["masks"][0] == {"initiator": HOST_A, "luns": [[0, 1], [1, 1]], "secret_set": False}
    board.restart()
    assert luns_seen(board, HOST_A) == [1]
    rb(board, "mask", "clear", HOST_A, "--force")
    rb(board, "mask", "clear", HOST_B, "--force")
    assert luns_seen(board, HOST_B) == [0, 1]


def test_chap_from_the_cli(board):
    need_tool("iscsi-ls", "libiscsi-bin")
    rb(board, "snapshot", "start", "sd0")
    rb(board, "chap", "set", "backup", env={"RAIDBOARD_CHAP_SECRET": "s3cret-secret12"})
    assert luns_seen(board, HOST_A) == []                      # refused without credentials
    assert luns_seen(board, HOST_A, auth="backup%s3cret-secret12@") == [0, 1]
    rb(board, "chap", "clear", "--force")
    assert luns_seen(board, HOST_A) == [0, 1]


def test_a_mask_gets_its_own_secret_from_the_cli_never_from_argv(board, tmp_path):
    secret = "host-b-secret-123"
    f = tmp_path / "b.secret"
    f.write_text(secret + "\n")
    rb(board, "mask", "set", HOST_B, "0/0", "--secret-file", str(f))
    rb(board, "mask", "set", HOST_B, "0/1")                    # new LUNs: the secret stays
    assert rb(board, "mask", "list")["masks"] == [{"initiator": HOST_B, "luns": [[0, 1]], "secret_set": True}]
    shown = subprocess.run([RAIDBOARD, "--port", "socket://%s:%d" % board.console, "mask", "list"],
                           capture_output=True, text=True, timeout=60).stdout
    dumped = subprocess.run([RAIDBOARD, "nvram", "dump", str(board.state / "nvram.bin")],
                            capture_output=True, text=True, timeout=60).stdout
    assert "(own CHAP secret)" in shown and "(own CHAP secret)" in dumped
    assert secret not in shown + dumped
    # too short for CHAP (RFC 3720: 12 bytes at least), from the environment: refused before sending
    p = subprocess.run([RAIDBOARD, "--port", "socket://%s:%d" % board.console, "mask", "set", HOST_B, "0/1"],
                       capture_output=True, text=True, timeout=60, env=dict(os.environ, RAIDBOARD_MASK_SECRET="short"))
    assert p.returncode != 0 and "holds 12 to 32 bytes" in p.stderr
    rb(board, "mask", "set", HOST_B, "0/1", "--no-secret")
    assert rb(board, "mask", "list")["masks"][0]["secret_set"] is False
    rb(board, "mask", "clear", HOST_B, "--force")


def tenant(board, name, port=0, isid=None):
    c = Initiator(*board.portals[port], name=name, isid=isid)
    c.login()
    return c


def word(c, cdb, lun):
    r = c.command(lun, cdb, read_len=2)
    assert r["status"] == 0 and len(r["data"]) == 2, r
    return int.from_bytes(r["data"], "big")


def test_a_tenant_cannot_copy_onto_or_hear_of_another_tenants_drive(make_board):
    # 16 MiB disks, 12 slots: SD0 primary (LUN 0, both ports) and SD1 log (LUN 1) as from the
    # factory; SD2 is tenant B's drive (LUN 2 of port 0), SD3 tenant A's backup drive (LUN 3 of
    # port 1). A sees its primary, the backup LUN and SD3; B sees SD2 only.
    b = BootedBoard(make_board(disk_mb=16, populated_slots=12))
    b.command("sd_create", {"raid": 0, "slots": [6, 7, 8]})
    b.command("sd_create", {"raid": 0, "slots": [9, 10, 11]})
    b.command("lun_map", {"port": 0, "lun": 2, "sd": 2})
    b.command("lun_map", {"port": 1, "lun": 3, "sd": 3})
    b.command("mask_set", {"initiator": HOST_A, "luns": [[0, 0], [1, 0], [0, 1], [1, 3]]})
    b.command("mask_set", {"initiator": HOST_B, "luns": [[0, 2]]})
    a, tb = tenant(b, HOST_A), tenant(b, HOST_B)
    theirs = os.urandom(1 << 20)
    assert tb.write(2, 0, theirs)["status"] == 0
    # the attack: Initiate on A's own LUN, then Start Long Operation copy SD0 -> SD2
    assert a.command(0, INITIATE)["status"] == 0
    assert word(a, bytes.fromhex("20004401000200000200"), 0) == 0x0105   # invalid system drive
    assert word(a, lop_start(1, 2), 0) == 0x0105
    assert b.command("lop_status", {})["lops"] == []
    assert tb.read(2, 0, 2048)["data"] == theirs
    # B sees no LUN of the log drive: for B no log LUN is defined (Table 2)
    r = tb.command(2, INITIATE)
    assert r["status"] == 2 and sense_key(r["sense"]) == (0x09, 0x81, 0x19)
    # A's copy onto its own backup drive runs; B, who sees neither of its drives, hears nothing
    assert word(a, lop_start(0, 3), 0) == 0x0000
    wait_status(b, lambda st: st["copy_word"] == "0x0100")
    assert word(a, LOP_STATUS, 0) == 0x0100
    assert word(tb, LOP_STATUS, 2) == 0x0105
    assert tb.read(2, 0, 2048)["data"] == theirs
    a.logout()
    tb.logout()


def test_a_target_reset_from_one_tenant_leaves_another_tenants_reservation(make_board):
    b = BootedBoard(make_board(disk_mb=16, populated_slots=12))
    b.command("sd_create", {"raid": 0, "slots": [6, 7, 8]})
    b.command("lun_map", {"port": 0, "lun": 2, "sd": 2})
    b.command("mask_set", {"initiator": HOST_A, "luns": [[0, 0]]})
    b.command("mask_set", {"initiator": HOST_B, "luns": [[0, 2]]})
    a, tb = tenant(b, HOST_A), tenant(b, HOST_B)
    assert a.command(0, bytes(6))["status"] == 0          # TEST UNIT READY: A's nexus is known
    assert tb.command(2, bytes([0x16, 0, 0, 0, 0, 0]))["status"] == 0      # RESERVE(6) SD2
    assert a.tmf(6, lun=0) == 0                           # TARGET WARM RESET: function complete
    # B's second session (another I_T nexus) still meets B's reservation
    other = tenant(b, HOST_B, isid=b"\x80\x00\x00\x00\x00\x02")
    assert other.read(2, 0, 1)["status"] == 0x18          # RESERVATION CONFLICT
    assert tb.read(2, 0, 1)["status"] == 0                # and B got no unit attention
    r = a.command(0, bytes(6))                            # A's own LU was reset
    assert r["status"] == 2 and sense_key(r["sense"]) == (0x06, 0x29, 0x02)
    for c in (a, tb, other):
        c.logout()
