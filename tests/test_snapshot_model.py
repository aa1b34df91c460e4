"""Model-based test of the snapshot (hypothesis, stateful): random sequences of primary writes, reads
of both LUNs, initiate, terminate (from either LUN), overflow and reboot, run on `micropython` through
the SCSI core, against a small reference model of what the seed says each LUN must show."""
import json
import subprocess
from pathlib import Path

from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from harness import MICROPYTHON, ROOT

CHUNK = 8                         # blocks: the 4 KiB chunk the driver configures
REGION = 512 * CHUNK              # blocks of the primary the test uses
INITIATE = "20006000000000000000"
TERMINATE = "20006100000000000000"
GOOD = (0, "")
ALREADY, NOT_IN_PROGRESS = (2, "098110"), (2, "09810c")
NOT_READY, OVERFLOW, PROTECT = (2, "020403"), (2, "098200"), (2, "072700")


class Driver:
    def __init__(self, state):
        self.p = subprocess.Popen([MICROPYTHON, "-X", "heapsize=24M", str(ROOT / "tests/firmware/driver.py"),
                                   str(state), "120", "4"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True, cwd=str(ROOT / "tests/firmware"), env={"RB_ROOT": str(ROOT)})
        self.capacity = self.get()["capacity"]

    def get(self):
        line = self.p.stdout.readline()
        assert line, "the firmware driver died"
        return json.loads(line)

    def call(self, *words):
        self.p.stdin.write(" ".join(map(str, words)) + "\n")
        self.p.stdin.flush()
        return self.get()

    def close(self):
        self.p.stdin.close()
        self.p.wait(timeout=10)


class SnapshotMachine(RuleBasedStateMachine):
    counter = 0

    @initialize()
    def boot(self):
        SnapshotMachine.counter += 1
        state = Path(self.tmp) / ("s%d" % SnapshotMachine.counter)
        state.mkdir()
        self.fw = Driver(state)
        self.primary = {}              # block -> seed of its last write (0 = never written)
        self.image = None              # the primary at initiate, while a snapshot is active
        self.copied = set()            # chunks copied to the log
        self.state = "IDLE"            # IDLE, ACTIVE, OVERFLOWED (overflow not yet reported)
        self.seed = 0

    def teardown(self):
        if hasattr(self, "fw"):
            self.fw.close()

    @rule(lba=st.integers(0, REGION - 1), n=st.integers(1, 48))
    def write_primary(self, lba, n):
        n = min(n, REGION - lba)
        self.seed += 1
        r = self.fw.call("write", 0, lba, n, self.seed)
        assert (r["status"], r["sense"]) == GOOD
        for c in range(lba // CHUNK, (lba + n - 1) // CHUNK + 1):
            if self.state == "ACTIVE" and c not in self.copied:
                if len(self.copied) == self.fw.capacity:
                    self.state, self.image, self.copied = "OVERFLOWED", None, set()
                else:
                    self.copied.add(c)
        for b in range(lba, lba + n):
            self.primary[b] = self.seed

    @rule(lba=st.integers(0, REGION - 1), n=st.integers(1, 64))
    def read_primary(self, lba, n):
        n = min(n, REGION - lba)
        r = self.fw.call("read", 0, lba, n)
        assert r["tags"] == [self.primary.get(b, 0) for b in range(lba, lba + n)]

    @rule(lba=st.integers(0, REGION - 1), n=st.integers(1, 64))
    def read_backup(self, lba, n):
        n = min(n, REGION - lba)
        r = self.fw.call("read", 1, lba, n)
        got = (r["status"], r["sense"])
        if self.state == "ACTIVE":
            assert got == GOOD
            assert r["tags"] == [self.image.get(b, 0) for b in range(lba, lba + n)]
        elif self.state == "OVERFLOWED":
            assert got == OVERFLOW
            self.state = "IDLE"
        else:
            assert got == NOT_READY

    @rule()
    def write_backup(self):
        r = self.fw.call("write", 1, 0, 1, 999999)
        expect = {"ACTIVE": PROTECT, "OVERFLOWED": OVERFLOW, "IDLE": NOT_READY}[self.state]
        assert (r["status"], r["sense"]) == expect
        if self.state == "OVERFLOWED":
            self.state = "IDLE"

    @rule()
    def initiate(self):
        r = self.fw.call("cdb", 0, INITIATE)
        if self.state == "ACTIVE":
            assert (r["status"], r["sense"]) == ALREADY
        else:
            assert (r["status"], r["sense"]) == GOOD
            self.state, self.image, self.copied = "ACTIVE", dict(self.primary), set()

    @rule(lun=st.sampled_from([0, 1]))
    def terminate(self, lun):
        r = self.fw.call("cdb", lun, TERMINATE)
        if self.state == "ACTIVE":
            assert (r["status"], r["sense"]) == GOOD
            self.state, self.image, self.copied = "IDLE", None, set()
        else:
            assert (r["status"], r["sense"]) == NOT_IN_PROGRESS

    @rule()
    def reboot(self):
        self.fw.call("reboot")

    @invariant()
    def engine_agrees(self):
        if hasattr(self, "fw"):
            s = self.fw.call("status")
            assert s["state"] == self.state
            if self.state == "ACTIVE":
                assert s["exceptions"] == len(self.copied)


def test_snapshot_model(tmp_path):
    SnapshotMachine.tmp = tmp_path
    run_state_machine_as_test(SnapshotMachine, settings=settings(
        max_examples=60, stateful_step_count=60, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]))
