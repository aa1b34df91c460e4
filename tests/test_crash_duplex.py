"""Crash safety of the dual-active pair (issue 11): kill -9 of either controller at random instants
of a host storm through both controllers' ports (writes, copies, backup LUN reads, initiate and
terminate, FIG. 8 copies), each kill taken over and failed back (some failbacks cut by a second kill). After every kill the survivor serves every LUN at
the old portal addresses with every acknowledged write, the backup LUN is the image at initiate, and
no host saw an error but a retryable one (tests/duplex_storm.py). `make torture` runs 200 kills."""
import random

from duplex_storm import run_duplex_storm


def test_kills_of_either_controller_lose_no_write_and_keep_the_backup_exact(tmp_path):
    divergences, retries, counts = run_duplex_storm(tmp_path, kills=6, rnd=random.Random(11), log=print)
    assert divergences == 0
    assert retries["reset"] > 0 and retries["06/2A/06"] > 0      # the hosts lived through takeovers
    assert counts["copies"] == 2        # kills 0 and 4 cut a FIG. 8 copy short; both completed
    assert counts["failback_kills"] == 2    # after kills 1 and 3: the returning one, the survivor
