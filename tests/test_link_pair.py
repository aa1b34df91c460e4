"""The back-end link between two real firmware processes: both controllers make blocking calls to
each other at the same time and each answers the other's light requests inline while it waits
(neither waits for the other for ever); a request the partner's reader handles, whose handler
calls back before it answers, keeps its payload intact while that call reads on."""
from link_pair import done, run_pair

CALLS = 300


def test_two_controllers_calling_each_other_at_once_do_not_deadlock():
    zero, one = run_pair("cross", CALLS)
    z, o = done(zero), done(one)
    nested = CALLS // 8                       # every 8th of controller 0's calls is answered after a call back
    assert z["calls"] == o["calls"] == CALLS
    assert o["served"] == CALLS and o["nested"] == nested
    assert z["served"] == CALLS + nested      # controller 1's calls and its calls back
    downs = {ln for ln in (zero + one).splitlines() if ln.startswith("LINK DOWN")}
    assert downs <= {"LINK DOWN closed by command", "LINK DOWN closed by partner: partner shutting down"}, downs
