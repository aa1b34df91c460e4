# Every text the front panel shows is written for its 2x20 characters: walking every menu, every
# view row and every step of every action (on a quiet board and on a busy one: a snapshot, a copy,
# a failed disk, long event texts; a controller of a pair after a failover, with its CONTROLLER
# PAIR menu), no text reaches the LCD longer than 20 columns, so none is cut in the middle of a
# word. The refusals' short forms are checked by tests/test_lcd_text.py; every state of the pair's
# own lines by test_menu_pair.py.
import fw
import test_menu_pair
from endpoints.console import menu
from endpoints.console import lcd
from endpoints.console.menu import UP, DOWN, ENTER, ESC

too_long = []
lcd_lines = [0]
_clean = lcd.clean


def _watching(s, width):
    lcd_lines[0] += width == lcd.WIDTH
    if width == lcd.WIDTH and len(str(s)) > width:
        too_long.append(str(s))
    return _clean(s, width)


lcd.clean = _watching


def show(m):
    lcd.render(m)


def walk_pick(m):
    # an action along its first choices (NO first: nothing is destroyed), each choice shown
    for _ in range(10):
        f = m.frame
        if f.kind != menu.PICK:
            return
        for _ in range(len(f.items)):
            m.key(DOWN)
            show(m)
        st = f.node.steps[f.step]
        m.key(ENTER)
        if st.multi and m.frame is f:
            m.key(UP)       # from the first disk to DONE
            m.key(ENTER)
        show(m)


def walk(m, depth=0):
    f = m.frame
    for _ in range(len(f.items)):
        show(m)
        m.key(ENTER)
        show(m)
        g = m.frame
        if g is not f:
            if g.kind == menu.MENU:
                walk(m, depth + 1)
            elif g.kind == menu.VIEW:
                for _ in range(len(m.rows)):
                    m.key(DOWN)
                    show(m)
            elif g.kind == menu.PICK:
                walk_pick(m)
            if m.frame is not f:
                m.key(ESC)
        show(m)
        m.key(DOWN)


def busy_board():
    ctl = fw.boot(b=fw.small_board(slots=10))
    ctl.command("sd_create", {"raid": 5, "slots": [6, 7, 8, 9]})
    for lun in range(2, 8):                         # a LUN map longer than a line
        ctl.command("lun_map", {"port": 0, "lun": lun, "sd": 2})
    ctl.command("snapshot_start", {"sd": 0})
    ctl.command("lop_start", {"op": "copy", "sd": 1, "to": 2})
    ctl.command("disk_fail", {"slot": 0})
    for i in range(3):
        ctl.events.log("warn", "iSCSI port 0: login from iqn.1994-05.com.example:a-very-long-initiator-name-%d "
                               "refused (0x0201 authentication failed)" % i)
    return ctl


def busy_pair():
    # controller 1 of a pair serving both controllers' drives, a long operation running
    ctl = test_menu_pair.failed_over(1)
    ctl.command("lop_start", {"op": "check", "sd": 0})
    return ctl


def test_no_text_reaches_the_lcd_longer_than_20_columns():
    for ctl in (fw.boot(), busy_board(), busy_pair()):
        m = menu.Model(ctl)
        for _ in range(3):
            m.key(DOWN)
            show(m)
        m.key(ENTER)
        walk(m)
    assert lcd_lines[0] > 600, lcd_lines
    assert not too_long, too_long


def test_every_result_of_the_menus_fits():
    def actions(node):
        if isinstance(node, menu.Action):
            return [node]
        return [a for c in getattr(node, "children", []) for a in actions(c)]
    done = [a.done(a, {"sd": 7, "blocks": 999999 * 2048}) if callable(a.done) else a.done for a in actions(menu.TREE)]
    assert "SD7 CREATED 976GB" in done, done
    assert all(len(t) <= lcd.WIDTH for t in done), done


def test_a_fault_takes_the_monitors_first_line():
    ctl = fw.boot(b=fw.small_board(slots=10))
    m = menu.Model(ctl)
    assert lcd.render(m)[0].rstrip() == "SD0 RAID5 ONLINE"
    ctl.command("disk_fail", {"slot": 1})           # a member of SD0
    ctl.command("disk_remove", {"slot": 9})         # a disk no drive uses
    seen = set()
    for _ in range(4):
        m.refresh()                                 # once a second in the console
        seen.add(lcd.render(m)[0].rstrip())
    assert seen == {"!SD0 CRITICAL", "!DISK 0:1 FAILED", "!DISK 2:1 REMOVED"}, seen
    m.key(DOWN)                                     # the drives' lines give way while it stands
    assert lcd.render(m)[0].startswith("!"), lcd.render(m)
