"""Attack campaign (issue 9): a hostile tenant and the identity LUN masking trusts.

LUN masking is keyed by the InitiatorName a host sends at login, so the name must be bound to a
host by a credential: tenant A, who knows the board-wide CHAP secret, logs in under tenant B's name
and reads B's LUN -- unless B's mask carries its own CHAP secret, which then replaces the board's
for that name (firmware/endpoints/iscsi/README.md "Login"). No iSCSI host may log in under the
console's own name (`iqn.1998-06.com.mylex:console`) and get the console's mask.
"""
import os
import subprocess

import pytest

from harness import need_tool
from test_iscsi_initiator import IQN, BootedBoard, Initiator, ISCSIError

HOST_A = "iqn.2026-11.org.example:tenant-a"
HOST_B = "iqn.2026-11.org.example:tenant-b"
CONSOLE = "iqn.1998-06.com.mylex:console"
SECRET = "shared-secret-12"
SECRET_B = "tenant-b-own-secret"
ATTACKER = "127.0.0.2"     # A's own address: its CHAP failures delay only its own next attempts


def login(b, name, port=0, chap=None, source=None):
    c = Initiator(*b.portals[port], name=name, source=source)
    c.login(chap=chap)
    return c


def two_tenants(make_board, chap=False):
    # A on LUN 0, B on LUN 2 of port 0; with `chap`, a board-wide CHAP credential both know and
    # B's mask has its own secret that only B knows
    b = BootedBoard(make_board(disk_mb=16, populated_slots=12))
    b.command("sd_create", {"raid": 0, "slots": [6, 7, 8]})
    b.command("lun_map", {"port": 0, "lun": 2, "sd": 2})
    b.command("mask_set", {"initiator": HOST_A, "luns": [[0, 0]]})
    b.command("mask_set", {"initiator": HOST_B, "luns": [[0, 2]]})
    if chap:
        b.command("chap_set", {"user": "tenants", "secret": SECRET})
        b.command("mask_set", {"initiator": HOST_B, "luns": [[0, 2]], "secret": SECRET_B})
    return b


def report_luns(c):
    r = c.command(0, bytes([0xA0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]), read_len=256)
    d = r["data"]
    return [d[8 + 8 * i + 1] for i in range(int.from_bytes(d[:4], "big") // 8)]


def test_tenant_a_cannot_read_tenant_b_lun_by_claiming_b_name(make_board):
    b = two_tenants(make_board, chap=True)
    creds = ("tenants", SECRET)
    tb = login(b, HOST_B, chap=(HOST_B, SECRET_B))
    theirs = os.urandom(4096)
    assert tb.write(2, 0, theirs)["status"] == 0
    tb.logout()
    a = login(b, HOST_A, chap=creds, source=ATTACKER)
    assert a.read(2, 0, 8)["status"] == 2            # masked, as documented
    a.logout()
    # the attack: the same host, the board-wide CHAP credentials, B's name
    with pytest.raises(ISCSIError, match="status 0x0201"):
        login(b, HOST_B, chap=creds, source=ATTACKER)


def test_a_mask_secret_binds_the_name_and_survives_a_restart(make_board):
    b = two_tenants(make_board, chap=True)
    assert b.command("mask_list")["masks"] == [
        {"initiator": HOST_A, "luns": [[0, 0]], "secret_set": False},
        {"initiator": HOST_B, "luns": [[0, 2]], "secret_set": True}]
    b.b.restart()
    b = BootedBoard(b.b)
    # B's own secret but the board's user name: CHAP_N must be the masked initiator's name
    with pytest.raises(ISCSIError, match="status 0x0201"):
        login(b, HOST_B, chap=("tenants", SECRET_B), source=ATTACKER)
    tb = login(b, HOST_B, chap=(HOST_B, SECRET_B))
    assert report_luns(tb) == [2]
    tb.logout()
    # a mask without a secret still takes the board-wide credential
    a = login(b, HOST_A, chap=("tenants", SECRET))
    assert report_luns(a) == [0]
    a.logout()


def test_a_mask_secret_is_required_even_with_board_chap_off(make_board):
    b = two_tenants(make_board)
    b.command("mask_set", {"initiator": HOST_B, "luns": [[0, 2]], "secret": SECRET_B})
    with pytest.raises(ISCSIError, match="status 0x0201"):
        login(b, HOST_B, source=ATTACKER)            # no security stage: not acceptable for B
    spoof = Initiator(*b.portals[0], name=HOST_B, source=ATTACKER)
    with pytest.raises(ISCSIError, match="status 0x0201"):    # AuthMethod before the name: still B's
        spoof._login_pdu(1, 0, 1, True, [("AuthMethod", "None"), ("InitiatorName", HOST_B),
                                         ("SessionType", "Normal"), ("TargetName", IQN)])
    assert report_luns(login(b, HOST_A)) == [0]      # A's mask has none: no credential, as before
    tb = login(b, HOST_B, chap=(HOST_B, SECRET_B))
    assert report_luns(tb) == [2]
    tb.logout()


def test_libiscsi_logs_in_with_a_mask_secret(make_board):
    need_tool("iscsi-ls", "libiscsi-bin")
    b = two_tenants(make_board, chap=True)
    host, tcp = b.portals[0]

    def iscsi_ls(user, secret):
        p = subprocess.run(["iscsi-ls", "-s", "-i", HOST_B, "iscsi://%s%%%s@%s:%d" % (user, secret, host, tcp)],
                           capture_output=True, text=True, timeout=60)
        return {int(l.split("Lun:")[1].split()[0]) for l in p.stdout.splitlines() if "Lun:" in l}
    assert iscsi_ls(HOST_B, SECRET_B) == {2}
    assert iscsi_ls("tenants", SECRET) == set()


def test_an_iscsi_host_cannot_log_in_as_the_console_initiator(make_board):
    b = two_tenants(make_board)
    # what host/README.md suggests so that `raidboard cdb` keeps working once masks exist
    b.command("mask_set", {"initiator": CONSOLE, "luns": [[0, 0], [0, 1], [0, 2]]})
    with pytest.raises(ISCSIError, match="status 0x0202"):     # authorization failure
        login(b, CONSOLE)
    with pytest.raises(ISCSIError, match="status 0x0202"):
        Initiator(*b.portals[1], name=CONSOLE).login(discovery=True)
    # the console itself still reaches its LUNs
    r = b.command("cdb", {"port": 0, "lun": 0, "cdb": "a00000000000000001000000"})
    assert int(r["data"][:8], 16) // 8 == 3
    assert report_luns(login(b, HOST_A)) == [0]        # and hosts log in as before
