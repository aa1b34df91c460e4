"""Crash safety of the snapshot (issue: nothing lost): kill -9 of the firmware at random instants of a
write storm, then reboot and check both promises block by block. A short run here; `make torture`
runs 1000 kills and prints `BENCH crash_divergences <n> count`."""
import random

import pytest

from crash_storm import CONFIGS, run_storm


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_kill_during_write_storm_keeps_backup_exact_and_acknowledged_writes(tmp_path, config):
    # write-back-log: the primary and the log drive both write-back, the log's header and index
    # records in the cache journal at the kill
    wb = CONFIGS[config]
    assert run_storm(tmp_path, kills=12, rnd=random.Random(3 + len(wb)), write_back=wb) == 0
