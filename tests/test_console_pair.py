"""The console of a dual-active pair (pyte on a controller's TCP console): the monitor's LCD says
which controller this is and that its partner is up; controller 0 is killed, and the survivor's
LCD and STATUS screen show the takeover, with the hint to restart controller 0 from the host, then
the failback when it is; a cut link shows on both panels; OPERATION STATUS lists the partner's
long operations and stops one where it runs; a manual failback is run from the survivor's
CONTROLLER PAIR menu; a controller failed from its own menu stops and its partner takes over."""
import pytest

from console_term import DOWN, ENTER, ESC, UP, Term
from harness import Pair
from raidboard import proto


@pytest.fixture
def pair(tmp_path):
    # both controllers booted and joined: controller 1 knows its partner and serves its own
    p = Pair(tmp_path)
    p.wait(1, lambda st: st["partner"] == "UP" and st["serving"] == [1], "partner up")
    yield p
    p.kill()


def test_the_survivors_panel_and_status_screen_show_the_takeover(pair):
    t = Term(pair.c[1].console)
    try:
        t.wait_lcd("C1 ACTIVE PARTNER UP", "SNAP IDLE")
        t.key(DOWN)                                       # then the drives, one a press
        t.wait_lcd("SD0 RAID5 ONLINE", "SNAP IDLE")
        t.wait("this controller C1: ACTIVE, serves C1   partner C0: UP")
        pair.kill(0)
        t.wait_lcd("!PARTNER FAILED", "C1 SERVES C0 PORTS")
        t.wait("this controller C1: ACTIVE, serves C0 and C1   partner C0: FAILED")
        text = t.text()
        assert "restart C0 from the host: raidboard boot BOARD STATE --controller 0 --detach" in text, text
        assert "C1 (C0's)" in text, text                 # SD0 is C0's, served by C1 now
        assert "PAIR: FAILOVER: controller 0 is gone" in text, text
        pair.restart(0)                                   # automatic failback
        t.wait_lcd("SD0 RAID5 ONLINE", "SNAP IDLE")       # the alert is gone
        t.key(UP)
        t.wait_lcd("C1 ACTIVE PARTNER UP", "SNAP IDLE")
    finally:
        t.close()


def cut_link(c):
    # over the management endpoint: the console is the terminal's
    with proto.Link("socket://" + c.ready["management"][len("tcp:"):]) as link:
        link.request("pair_link", {"state": "down"})


def test_a_cut_link_shows_on_both_panels(pair):
    t0, t1 = Term(pair.c[0].console), Term(pair.c[1].console)
    try:
        t0.wait_lcd("C0 ACTIVE PARTNER UP")
        cut_link(pair.c[0])
        t1.wait_lcd("!C1 STOOD DOWN", "SERVES NO DRIVE")
        t1.wait("this controller C1: STOOD DOWN, serves no drive")
        assert "ONLINE         WT --" in t1.text()           # it serves no drive now
        said = " ".join(t1.text().split())              # the hint wraps onto a second row
        assert "C1 stood down; restart it from the host: raidboard stop --state STATE --controller 1, " \
               "then raidboard boot BOARD STATE --controller 1 --detach" in said, said
        t0.wait_lcd("!PARTNER LINK LOST", "C0 SERVES C1 PORTS")
        t0.wait("this controller C0: ACTIVE, serves C0 and C1   partner C1: LINK LOST")
        assert "PAIR: FAILOVER: controller 1 stood down after the link" in t0.text(), t0.text()
    finally:
        t0.close()
        t1.close()


def test_operation_status_lists_the_partners_long_operations_with_their_controller(pair):
    pair.c[1].command("lop_start", {"op": "check", "sd": 0, "rate": 1})     # SD0 is C0's: runs there
    t = Term(pair.c[1].console)
    try:
        t.wait("MONITOR MODE")
        t.key(ENTER)
        t.choose("ADMINISTRATION", "LONG OPERATIONS", "OPERATION STATUS")
        t.wait_lcd("CHECK SD0 ON C0")
        assert "CONSISTENCY CHECK" in t.text() and "on C0  word" in t.text(), t.text()
        t.key(ESC)
        t.choose("STOP OPERATION", "CHECK SD0")          # stopped where it runs
        t.wait_lcd("DONE", "OPERATION STOPPED")
        assert [o["state"] for o in pair.c[0].command("lop_status")["lops"]] in ([], ["TERMINATED"])
    finally:
        t.close()


def test_manual_failback_from_the_survivors_menu(pair):
    t = Term(pair.c[1].console)
    try:
        t.wait("MONITOR MODE")
        t.key(ENTER)
        t.choose("ADMINISTRATION", "CONTROLLER PAIR", "FAILBACK MODE", "MANUAL")
        t.wait_lcd("DONE", "SETTING SAVED")
        t.choose("PAIR STATUS")         # a view: it follows the pair as it changes
        pair.kill(0)
        t.wait("partner C0: FAILED")
        pair.restart(0)                 # it waits: nothing of it is served back by itself
        t.wait("C0 waits for its drives: FAILBACK (CONTROLLER PAIR menu) gives them back")
        t.wait_lcd("C1 ACTIVE PARTNER UP", "SERVES C0 AND C1")
        t.home()
        t.wait_lcd("!C0 WAITS FAILBACK", "C1 SERVES C0 PORTS")
        t.key(ENTER)
        t.choose("ADMINISTRATION", "CONTROLLER PAIR", "FAILBACK", "YES, PORTS MOVE")
        t.wait_lcd("DONE", "FAILBACK STARTED")
        pair.wait(0, lambda st: st["serving"] == [0], "served again")
        t.home()
        t.wait_lcd("C1 ACTIVE PARTNER UP", "SNAP IDLE")
        t.wait("this controller C1: ACTIVE, serves C1   partner C0: UP")
    finally:
        t.close()


def test_fail_this_controller_from_its_menu(pair):
    t = Term(pair.c[0].console)
    try:
        t.wait("MONITOR MODE")
        t.key(ENTER)
        t.choose("ADMINISTRATION", "CONTROLLER PAIR", "FAIL CONTROLLER", "C0 (THIS ONE)")
        t.wait_lcd("FAIL C0?", ">NO")
        t.select("YES, C0 STOPS")
        t.key(ENTER)                        # this controller stops, its console with it
        assert pair.c[0].proc.wait(timeout=30) == 6
    finally:
        t.close()
    st = pair.wait(1, lambda st: st["serving"] == [0, 1], "took over")
    assert st["partner"] == "FAILED"
