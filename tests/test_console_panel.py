"""The front panel and the monitor through the real console (pyte): drawn on connect, refusals in
20 columns with the whole message on the screen, a fault display, and the monitor's five event
lines keeping what an operator acts on while hosts log in and out."""
from console_term import ENTER, Line, Term
from test_iscsi_initiator import Initiator


def test_a_terminal_sees_the_monitor_without_pressing_a_key(board):
    t = Term(board.console)
    try:
        t.wait_lcd("SD0 RAID5 ONLINE", "SNAP IDLE")
        assert "MONITOR MODE" in t.text()
    finally:
        t.close()


def commands(board, *calls):
    # (name, args) requests over the line protocol, then back to the menus; their results
    line = Line(board.console)
    line.hello()
    out = [line.call(name, args) for name, args in calls]
    line.call("bye")
    line.close()
    return out


def test_the_monitor_keeps_snapshot_events_over_iscsi_logins_and_logouts(board):
    commands(board, ("snapshot_start", {"sd": 0}), ("snapshot_stop", {}))
    for _ in range(4):                      # eight session events after the snapshot's two
        c = Initiator(*board.portals[0])
        c.login()
        c.logout()
        c.close()
    evs = commands(board, ("events", {"n": 12}))[0]["events"]
    assert sum("iSCSI port 0" in e["text"] for e in evs) >= 8, evs
    t = Term(board.console)
    try:
        t.wait("SNAPSHOT ENDED")
        body = t.text()
        assert "SNAPSHOT STARTED SD0 -> LOG SD1" in body, body
        assert "logout of" in body                  # session traffic fills what is left
    finally:
        t.close()


def test_a_long_refusal_is_short_on_the_lcd_and_whole_on_the_screen(board):
    t = Term(board.console)
    try:
        t.wait("MONITOR MODE")
        t.key(ENTER)
        t.choose("CONFIGURATION", "CREATE DRIVE")      # every disk is taken: refused at once
        t.wait_lcd("NO FREE SPACE", "DELETE A DRIVE")
        rows = [r.rstrip() for r in t.screen.display[21:23]]
        assert rows == ["REFUSED: NO SPACE - no disk has free space: delete a drive or replace a disk",
                        "  first"], rows
    finally:
        t.close()


def test_a_failed_disk_takes_the_monitors_lcd(board):
    commands(board, ("disk_fail", {"slot": 2}))
    t = Term(board.console)
    try:
        t.wait(lambda t: t.lcd()[0] in ("!SD0 CRITICAL", "!DISK 0:2 FAILED"))
        t.wait(lambda t: t.lcd()[0] == "!SD0 CRITICAL")
        t.wait(lambda t: t.lcd()[0] == "!DISK 0:2 FAILED")     # one fault a second, in turn
        assert "SD0  RAID5" in t.text() and "CRITICAL" in t.text()
    finally:
        t.close()
