"""libiscsi's conformance suite (`iscsi-test-cu --dataloss --test=ALL`) against a booted board, with
the second host port as the multipath URL. Failures and skips, with reasons, are recorded in
firmware/iscsi.md; this test keeps that record honest."""
import re
import subprocess

import pytest

import test_iscsi_initiator as I
from test_iscsi import need_tool

# suites that exercise the transport rather than the SCSI core
ISCSI_SUITES = ("iSCSIcmdsn", "iSCSIdatasn", "iSCSIResiduals", "iSCSITMF", "MultipathIO")

# failures that are the SCSI core's (firmware/sbc.py, spc.py, scsi.py), each explained in iscsi.md
CORE_GAPS = {
    "Inquiry.BlockLimits",
    "Read10.ReadProtect", "Read10.DpoFua", "Read16.ReadProtect", "Read16.DpoFua",
    "Verify10.VerifyProtect", "Verify10.Dpo", "Verify16.VerifyProtect", "Verify16.Dpo",
    "Write10.WriteProtect", "Write10.DpoFua", "Write16.WriteProtect", "Write16.DpoFua",
    "iSCSIResiduals.Write10Residuals", "iSCSIResiduals.Write16Residuals",
    "MultipathIO.Reset",
}

# the bar of issue 5: tgtd 1.0.85 on a 256 MiB file
TGTD_PASSED = 160
TGTD_FAILED = 8


def parse(out):
    """CUnit verbose-less output -> {suite.test: "passed" | "failed" | "skipped"}."""
    res = {}
    suite = cur = None
    for line in out.splitlines():
        m = re.match(r"Suite: (\S+)", line)
        if m:
            suite = m.group(1)
            continue
        m = re.match(r"\s+Test: (\S+) \.\.\.(.*)", line)
        if m:
            cur = "%s.%s" % (suite, m.group(1))
            res[cur] = "passed"
            line = m.group(2)
        if cur is None:
            continue
        if "[SKIPPED]" in line and "PERSISTENT RESERVE IN" not in line and res[cur] == "passed":
            res[cur] = "skipped"
        if re.search(r"(^|\s)FAILED\s*$", line):
            res[cur] = "failed"
    return res


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    need_tool("iscsi-test-cu")
    b = I.BootedBoard.boot(tmp_path_factory.mktemp("cu"), disk_mb=128)
    try:
        p = subprocess.run(["iscsi-test-cu", "--dataloss", "--test=ALL", b.url(0), b.url(0, port=1)],
                           capture_output=True, text=True, timeout=600)
        assert b.alive()
    finally:
        b.stop()
    res = parse(p.stdout + p.stderr)
    counts = {k: sum(1 for v in res.values() if v == k) for k in ("passed", "failed", "skipped")}
    print("iscsi-test-cu: %d tests, %s" % (len(res), counts))
    print("failed: " + " ".join(sorted(k for k, v in res.items() if v == "failed")))
    return res, counts


def test_suite_ran_completely(results):
    res, counts = results
    assert len(res) == 230, len(res)


def test_transport_families_pass(results):
    res, _ = results
    bad = [k for k, v in res.items()
           if k.split(".")[0] in ISCSI_SUITES and v == "failed" and k not in CORE_GAPS]
    assert not bad


def test_no_failures_beyond_the_recorded_ones(results):
    res, _ = results
    new = sorted(k for k, v in res.items() if v == "failed" and k not in CORE_GAPS)
    assert not new, "not in firmware/iscsi.md: %s" % new


@pytest.mark.xfail(reason="SCSI core command coverage is still below tgtd's (see firmware/iscsi.md)",
                   strict=False)
def test_bar_of_issue_5(results):
    _, counts = results
    assert counts["passed"] >= TGTD_PASSED and counts["failed"] <= TGTD_FAILED
