"""Attack campaign (issue 9): a hostile tenant and the identity LUN masking trusts.

LUN masking is keyed by the InitiatorName a host sends at login, and CHAP has one board-wide
user/secret, so nothing binds a name to a host: tenant A (who knows the shared CHAP secret, or
with CHAP off) logs in under tenant B's name and reads and writes B's LUNs, or under the console's
own name (`iqn.1998-06.com.mylex:console`) and gets the console's mask. firmware/vendor.md and
host/README.md present masks as what keeps tenants apart; nothing says the name is unauthenticated.
"""
import os

import pytest

from test_iscsi_initiator import BootedBoard, Initiator

HOST_A = "iqn.2026-11.org.example:tenant-a"
HOST_B = "iqn.2026-11.org.example:tenant-b"
CONSOLE = "iqn.1998-06.com.mylex:console"
SECRET = "shared-secret-12"


def login(b, name, port=0, chap=None):
    c = Initiator(*b.portals[port], name=name)
    c.login(chap=chap)
    return c


def two_tenants(make_board, chap=False):
    b = BootedBoard(make_board(disk_mb=16, populated_slots=12))
    b.command("sd_create", {"raid": 0, "slots": [6, 7, 8]})
    b.command("lun_map", {"port": 0, "lun": 2, "sd": 2})
    b.command("mask_set", {"initiator": HOST_A, "luns": [[0, 0]]})
    b.command("mask_set", {"initiator": HOST_B, "luns": [[0, 2]]})
    if chap:
        b.command("chap_set", {"user": "tenants", "secret": SECRET})
    return b


@pytest.mark.xfail(strict=True, reason="finding: masking trusts the InitiatorName; tenant A logs in "
                   "as tenant B (same shared CHAP secret) and reads/writes B's LUN")
def test_tenant_a_cannot_read_tenant_b_lun_by_claiming_b_name(make_board):
    b = two_tenants(make_board, chap=True)
    creds = ("tenants", SECRET)
    tb = login(b, HOST_B, chap=creds)
    theirs = os.urandom(4096)
    assert tb.write(2, 0, theirs)["status"] == 0
    tb.logout()
    a = login(b, HOST_A, chap=creds)
    assert a.read(2, 0, 8)["status"] == 2            # masked, as documented
    a.logout()
    # the attack: the same host, the same shared CHAP credentials, B's name
    spoof = login(b, HOST_B, chap=creds)
    r = spoof.read(2, 0, 8)
    spoof.logout()
    assert r["data"] != theirs, "tenant A read tenant B's data by sending B's InitiatorName"


@pytest.mark.xfail(strict=True, reason="finding: an iSCSI host may log in as the console's own "
                   "initiator iqn.1998-06.com.mylex:console and gets the console's mask")
def test_an_iscsi_host_cannot_log_in_as_the_console_initiator(make_board):
    b = two_tenants(make_board)
    # what host/README.md suggests so that `raidboard cdb` keeps working once masks exist
    b.command("mask_set", {"initiator": CONSOLE, "luns": [[0, 0], [0, 1], [0, 2]]})
    try:
        c = login(b, CONSOLE)
    except Exception:
        return                                       # refused: the console name is not a host's
    r = c.command(0, bytes([0xA0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]), read_len=256)
    c.logout()
    n = int.from_bytes(r["data"][:4], "big") // 8
    assert n == 0, "an iSCSI host got the console's LUNs: %d" % n
