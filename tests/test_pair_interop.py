"""Hosts of the dual-active pair as multipath hosts use it: what a host does through one
controller's port reaches the state the drive's owner keeps for its nexus (task management, the
end of a session), and REPORT TARGET PORT GROUPS on each of the four portals says which group
serves the drive, before and after a failover. The rules: firmware/control/pair.md ("ALUA",
"Task management and sessions")."""
import time

import pytest

import test_iscsi_initiator as I
from test_pair import OPTIMIZED, NON_OPTIMIZED, RTPG, groups, host, pair  # noqa: F401 (fixture)

TUR = bytes(6)
RESERVE6 = bytes([0x16, 0, 0, 0, 0, 0])
RESERVATION_CONFLICT = 0x18
OTHER = "iqn.2026-01.test.raidboard:other"
PORTALS = ((0, 0), (0, 1), (1, 0), (1, 1))
LUN_RESET, TARGET_WARM_RESET = 5, 6


def unit_attention(h):
    """the additional sense code and qualifier of the unit attention a TEST UNIT READY meets (None: GOOD)"""
    r = h.command(0, TUR)
    if r["status"] == 0:
        return None
    assert r["status"] == 2 and r["sense"][2] & 0x0F == 6, r
    return bytes(r["sense"][12:14])


@pytest.mark.parametrize("function,asc", [(LUN_RESET, b"\x29\x03"), (TARGET_WARM_RESET, b"\x29\x02")])
def test_a_reset_through_either_controller_reaches_every_path(pair, function, asc):
    # libiscsi's MultipathIO.Reset: a reset on one path, its unit attention on all of them
    for via in (1, 0):
        paths = [host(pair, 0), host(pair, 1)]
        for h in paths:
            while unit_attention(h) is not None:
                pass
        assert paths[via].tmf(function) == 0
        assert [unit_attention(h) for h in paths] == [asc, asc]
        assert [unit_attention(h) for h in paths] == [None, None]
        for h in paths:
            h.close()


def test_a_reservation_made_through_the_partner_ends_with_its_session(pair):
    a, b = host(pair, 1), host(pair, 0, name=OTHER)      # SD0 is controller 0's: a is forwarded
    for h in (a, b):
        while unit_attention(h) is not None:
            pass
    assert a.command(0, RESERVE6)["status"] == 0
    assert b.command(0, RESERVE6)["status"] == RESERVATION_CONFLICT
    a.logout()
    deadline = time.time() + 30                          # the logout reaches the owner over the link
    while b.command(0, RESERVE6)["status"] == RESERVATION_CONFLICT:
        assert time.time() < deadline, "the reservation outlived its session"
        time.sleep(0.05)


def rtpg_states(pair):
    """{(controller, host port): {group: ALUA state}} as each of the four portals answers"""
    out = {}
    for n, p in PORTALS:
        h = host(pair, n, port=p)
        r = h.command(0, RTPG, read_len=256)
        assert r["status"] == 0, r
        g = groups(r["data"])
        assert {k: v[2] for k, v in g.items()} == {1: [1, 2], 2: [3, 4]}
        assert all(v[1] == (v[0] == OPTIMIZED) for v in g.values())       # PREF on the optimized
        out[(n, p)] = {k: v[0] for k, v in g.items()}
        h.close()
    return out


def test_every_portal_reports_the_serving_group_optimized_before_and_after_a_failover(pair):
    # SD0 is controller 0's: group 1 serves it, group 2 forwards
    assert set(map(str, rtpg_states(pair).values())) == {str({1: OPTIMIZED, 2: NON_OPTIMIZED})}
    pair.kill(0)
    pair.wait(1, lambda s: s["serving"] == [0, 1], "serving both")
    # controller 1 serves the drive through all four ports (controller 0's at their addresses):
    # both groups are its own, both optimized
    assert set(map(str, rtpg_states(pair).values())) == {str({1: OPTIMIZED, 2: OPTIMIZED})}
