"""libiscsi's conformance suite against a dual-active pair, one URL per controller: the first
through controller 1 (every command for LUN 0 forwarded to its owner, controller 0), the second
through controller 0. The families run here are the fast ones and those a pair changes (MultipathIO,
the iSCSI transport, reservations, the port-describing commands, reads and writes); each must do
what it does on a simplex board (tests/test_iscsi_conformance.py): no failure, no skip but the
recorded ones. The whole suite's pair results are recorded in firmware/endpoints/iscsi/README.md."""
import subprocess

import pytest

import test_iscsi_initiator as I
from harness import Pair
from test_iscsi import need_tool
from test_iscsi_conformance import SKIPPED_OK, parse

FAMILIES = ("SCSI.MultipathIO", "iSCSI", "SCSI.ProutReserve", "SCSI.PrinServiceactionRange",
            "SCSI.PrinReportCapabilities", "SCSI.Inquiry", "SCSI.TestUnitReady",
            "SCSI.ReportSupportedOpcodes", "SCSI.ModeSense6", "SCSI.ReadCapacity16",
            "SCSI.Read10", "SCSI.Write10")


def listed(family):
    """{suite.test} of a family, as `iscsi-test-cu --list` names them"""
    out = subprocess.run(["iscsi-test-cu", "--list"], capture_output=True, text=True, timeout=60).stdout
    prefix = family + "."
    return {".".join(line.split(".")[-2:]) for line in out.split()
            if line.startswith(prefix) and line.count(".") == 2}   # FAMILY.SUITE.TEST


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    need_tool("iscsi-test-cu")
    pair = Pair(tmp_path_factory.mktemp("cu-pair"), disk_mb=128)
    try:
        urls = ["iscsi://%s:%d/%s/0" % (pair.portal(n, 0) + (I.IQN,)) for n in (1, 0)]
        res = {}
        for family in FAMILIES:
            p = subprocess.run(["iscsi-test-cu", "--dataloss", "--test=" + family] + urls,
                               capture_output=True, text=True, timeout=300)
            res[family] = parse(p.stdout + p.stderr)
        assert all(c.proc.poll() is None for c in pair.c)
    finally:
        pair.kill()
    return res


@pytest.mark.parametrize("family", FAMILIES)
def test_family_does_on_a_pair_what_it_does_on_a_simplex_board(results, family):
    res = results[family]
    assert set(res) == listed(family)
    assert sorted(k for k, v in res.items() if v == "failed") == []
    assert sorted(k for k, v in res.items() if v == "skipped" and k not in SKIPPED_OK) == []
