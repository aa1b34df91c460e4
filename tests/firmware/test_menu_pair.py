# The console of a controller of a dual-active pair (control/pair.md): the monitor's LCD says which
# controller it is and what its partner is, the fault display alerts on a failover, the STATUS
# screen has the pair's section and each drive's owner, and ADMINISTRATION > CONTROLLER PAIR moves
# drives, fails a controller, fails back and sets the failback mode. One real controller (board
# field "controller": 0) with no partner running: at boot it takes its partner's drives and ports
# over, as control/pair.py does when the partner does not answer.
import asyncio
import fw
from control import pair as pairmod
from endpoints.link import frame as F
from endpoints.link import link as L
from endpoints.console import menu
from endpoints.console import lcd
from endpoints.console.menu import DOWN, ENTER, ESC
from test_menu import lines, screen_text, goto, goto_item, choose, home


class Ports:
    # main.py's host ports: which controllers' ports listen here
    def __init__(self):
        self.open = []

    async def open_ports(self, home):
        self.open.append(home)

    async def close_ports(self, home):
        self.open.remove(home)


def boot(state, n):
    b = fw.small_board()
    b["controller"] = n
    return fw.boot(state=state, b=b)


def controller(n=0):
    state = fw.tmpdir("pair")
    if n == 1:
        # the first boot of controller 0 makes the shared disks and the pair's key; controller 1
        # booting alone would wait 10 s for each (as on a real first boot: not what these test)
        boot(state, 0).iop.close()
    ctl = boot(state, n)
    ports = Ports()
    # the back-end link as main.py makes it, never connected: the partner is not running
    link = L.Link(n, ("127.0.0.1", 0), ctl.pair, ctl.events, window_frames=4, window_bytes=F.MAX_FRAME + 65536)
    ctl.pair.attach(link, L.LinkDown, ports)
    return ctl, ports


def failed_over(n=0):
    # the partner does not answer at boot: this controller serves both controllers' drives and ports
    ctl, ports = controller(n)
    asyncio.run(ctl.pair.join(10))
    assert ports.open == [n, 1 - n], ports.open
    return ctl


def test_after_a_failover_the_panel_alerts_and_the_status_screen_says_who_serves_what():
    m = menu.Model(failed_over(1))
    assert lines(m) == ("!PARTNER FAILED", "C1 SERVES C0 PORTS")
    m.key(DOWN)         # the fault display stays while it stands
    assert lines(m)[0] == "!PARTNER FAILED"
    s = screen_text(m)
    assert "this controller C1: ACTIVE, serves C0 and C1   partner C0: FAILED" in s, s
    assert "back-end link down" in s and "failback: automatic" in s, s
    assert "restart C0 from the host: raidboard boot BOARD STATE --controller 0 --detach" in s, s
    assert "SERVED BY" in s and "  SD0  RAID5" in s and "C1 (C0's)" in s, s
    assert "PAIR: FAILOVER: controller 0 did not answer at boot" in s, s


def test_a_partner_not_heard_for_a_moment_does_not_stick_on_the_panel():
    # while the partner is not heard the status answers with this controller's view (a snapshot
    # whose owner is silent included); once this controller took the partner's drives over the
    # monitor shows the takeover
    ctl, _ = controller()
    m = menu.Model(ctl)
    assert lines(m)[0] == "C0 PARTNER NOT HEARD", lines(m)
    asyncio.run(ctl.pair.join(10))
    m.refresh()                         # once a second in the console
    assert lines(m) == ("!PARTNER FAILED", "C0 SERVES C1 PORTS")


def test_pair_events_keep_their_place_among_the_monitors_five_lines():
    ctl = failed_over()
    for i in range(8):      # session traffic after the failover does not push it out
        ctl.events.log("info", "iSCSI port 0: session %d opened" % i)
    texts = [e["text"] for e in menu.Model(ctl).status_events()]
    assert any(t.startswith("PAIR: FAILOVER") for t in texts), texts


def test_the_controller_pair_menu_is_there_only_on_a_pair():
    m = menu.Model(fw.boot())
    goto(m, "ADMINISTRATION")
    assert "CONTROLLER PAIR" not in [i[0] for i in m.frame.items]
    m = menu.Model(failed_over())
    goto(m, "ADMINISTRATION", "CONTROLLER PAIR")
    assert [i[0] for i in m.frame.items] == ["PAIR STATUS", "MOVE DRIVE", "FAILBACK", "FAIL CONTROLLER",
                                             "FAILBACK MODE"]
    goto_item(m, "PAIR STATUS")
    assert lines(m) == ("C0 PARTNER FAILED", "SERVES C0 AND C1")
    m.key(DOWN)
    assert lines(m) == ("LINK DOWN", "FAILBACK AUTOMATIC")
    m.key(DOWN)
    assert lines(m) == ("SD0 RAID5 ONLINE", "%dMB WT C0" % ctl_mb(m, 0))


def ctl_mb(m, sd):
    return m.ctl.command("sd_list")["drives"][sd]["mb"]


def test_move_drive_offers_what_sd_owner_accepts_and_moves_it():
    ctl = failed_over()
    ctl.command("snapshot_start", {"sd": 0})
    m = menu.Model(ctl)
    goto(m, "ADMINISTRATION", "CONTROLLER PAIR", "MOVE DRIVE")
    # SD0 is the snapshot's primary and SD1 its log: sd_owner refuses both
    assert [i[0] for i in m.frame.items] == ["(NONE AVAILABLE)"], m.frame.items
    home(m)
    ctl.command("snapshot_stop")
    goto(m, "ADMINISTRATION", "CONTROLLER PAIR", "MOVE DRIVE")
    assert [i[0] for i in m.frame.items] == ["SD0 ONLINE ON C0", "SD1 ONLINE ON C0"], m.frame.items
    choose(m, "SD1")
    assert lines(m) == ("MOVE SD1", ">TO C1")
    m.key(ENTER)
    assert lines(m) == ("DONE", "SD1 NOW ON C1")
    assert {"sd": 1, "affinity": 1, "owner": 0} in ctl.command("pair_status")["drives"]


def test_fail_controller_asks_first_and_says_why_it_cannot():
    m = menu.Model(failed_over())
    goto(m, "ADMINISTRATION", "CONTROLLER PAIR", "FAIL CONTROLLER")
    assert [i[0] for i in m.frame.items] == ["C0 (THIS ONE)", "C1 (PARTNER)"]
    choose(m, "C1")
    assert lines(m) == ("FAIL C1?", ">NO")
    m.key(ENTER)
    assert lines(m) == ("CANCELLED", "NOTHING CHANGED")
    goto_item(m, "FAIL CONTROLLER")
    choose(m, "C1")
    choose(m, "YES, C1 STOPS")
    assert lines(m) == ("NOTHING TO DO", "PAIR IS AS ASKED")
    assert "REFUSED: NOTHING TO DO - controller 1 is not running" in screen_text(m)


def test_failback_with_nothing_to_give_back_is_refused_after_the_question():
    m = menu.Model(failed_over())
    goto(m, "ADMINISTRATION", "CONTROLLER PAIR", "FAILBACK")
    assert lines(m) == ("FAILBACK?", ">NO")
    choose(m, "YES, PORTS MOVE")
    assert lines(m)[0] == "NOTHING TO DO"
    assert "controller 1 is not running" in screen_text(m)


def test_failback_mode_is_saved():
    ctl = failed_over()
    m = menu.Model(ctl)
    goto(m, "ADMINISTRATION", "CONTROLLER PAIR", "FAILBACK MODE")
    choose(m, "MANUAL")
    assert lines(m) == ("DONE", "SETTING SAVED")
    assert ctl.command("params_get")["failback"] == "manual"
    assert "failback: manual" in screen_text(menu.Model(ctl))


def test_long_operations_say_which_controller_runs_them():
    ctl = failed_over()
    ctl.command("lop_start", {"op": "check", "sd": 0})
    m = menu.Model(ctl)
    goto(m, "ADMINISTRATION", "LONG OPERATIONS", "OPERATION STATUS")
    assert lines(m)[0] == "CHECK SD0 ON C0", lines(m)
    assert "on C0  word" in screen_text(m)
    home(m)
    assert "on C0  word" in screen_text(m)      # the monitor's list of them too
    goto(m, "ADMINISTRATION", "LONG OPERATIONS", "STOP OPERATION")
    m.key(ENTER)
    assert lines(m) == ("DONE", "OPERATION STOPPED")


def test_every_pair_text_fits_the_lcd():
    # every state control/pair.py can be in, as the pair line, the serving line and the alerts
    for me in (0, 1):
        for mode in (pairmod.ACTIVE, pairmod.STOOD_DOWN):
            for partner in (pairmod.UNKNOWN, pairmod.UP, pairmod.DEAD, pairmod.APART):
                for serving in ([], [me], [0, 1]):
                    for theirs in ([], [me], [0, 1]):
                        p = {"controller": me, "mode": mode, "partner": partner, "serving": serving,
                             "partner_serving": theirs}
                        texts = [lcd.pair_line(p), lcd.serves_line(p)] + list(lcd.row_lines(("link", p)))
                        for a, b in menu.pair_alerts(p):
                            assert len(a) <= lcd.WIDTH - 1, a
                            texts.append(b)
                        for t in texts:
                            assert len(t) <= lcd.WIDTH and "{" not in t and "None" not in t, (p, t)
