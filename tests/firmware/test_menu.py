# The console menu model on a real controller (small board), driven by the four front-panel
# buttons and by the keyboard decoder; both views (LCD lines, VT-100 screen) are checked.
import fw
from endpoints.console import access
from endpoints.console import menu
from endpoints.console import lcd
from endpoints.console import vt100
from endpoints.console.menu import UP, DOWN, ENTER, ESC


def model():
    return menu.Model(fw.boot())


def lines(m):
    l1, l2 = lcd.render(m)
    assert len(l1) == 20 and len(l2) == 20, (l1, l2)
    return l1.rstrip(), l2.rstrip()


def screen_text(m):
    rows, attrs, cur = vt100.compose(m)
    assert len(rows) == 24
    for r in rows[:-1]:
        assert len(r) == 80, r
    assert len(rows[-1]) == 79
    return "\n".join(rows)


def goto(m, *labels):
    # from monitor mode, walk the menus by label with the buttons only, as a person at the panel
    m.key(ENTER)
    goto_item(m, *labels)


def goto_item(m, *labels):
    # from the menu shown now
    for label in labels:
        f = m.frame
        for _ in range(len(f.items) + 1):
            if f.items[f.cursor][0].startswith(label):
                break
            m.key(DOWN)
        assert f.items[f.cursor][0].startswith(label), (label, f.items)
        m.key(ENTER)


def choose(m, label):
    f = m.frame
    assert f.kind == menu.PICK, f.kind
    for _ in range(len(f.items) + 1):
        if f.items[f.cursor][0].startswith(label):
            m.key(ENTER)
            return
        m.key(DOWN)
    raise AssertionError("no choice %r in %r" % (label, f.items))


def home(m):
    while m.mode != "monitor":
        m.key(ESC)


def test_lcd_idles_on_drive_and_snapshot_lines():
    m = model()
    assert m.mode == "monitor"
    assert lines(m) == ("SD0 RAID5 ONLINE", "SNAP IDLE")
    m.key(DOWN)
    assert lines(m) == ("SD1 RAID1 ONLINE LOG", "SNAP IDLE")
    m.key(DOWN)     # wraps round the drives
    assert lines(m)[0] == "SD0 RAID5 ONLINE"
    s = screen_text(m)
    assert "MONITOR MODE" in s and "SD0  RAID5" in s and "host port 0: LUN 0 -> SD0" in s


def test_refusal_is_shown_on_lcd_and_screen():
    m = model()
    goto(m, "CONFIGURATION", "CLEAR LOG")
    choose(m, "SD1")
    # SD1's backup LUNs are mapped: the panel's short form, the controller's whole message on the screen
    assert lines(m) == ("LUNS IN USE", "UNMAP THEM FIRST"), lines(m)
    rows = screen_text(m).split("\n")
    assert rows[21:23] == ["REFUSED: LUN IN USE - SD1 has backup LUNs port 0 LUN 1, port 1 LUN 1; unmap them",
                           "  first" + " " * 73], rows[21:23]      # wrapped at a word, nothing lost
    # the refusal stays until the next key, then the menu is back
    m.key(DOWN)
    assert lines(m)[0] == "CONFIGURATION"


def test_snapshot_cycle_from_the_front_panel():
    m = model()
    # make SD1 an ordinary drive: unmap its LUNs, clear LOG
    goto(m, "CONFIGURATION", "UNMAP LUN")
    choose(m, "P0 LUN 1")
    assert lines(m) == ("UNMAP P0 LUN 1?", ">NO")
    choose(m, "YES, HOSTS LOSE IT")
    assert lines(m) == ("DONE", "LUN UNMAPPED")
    m.key(DOWN)
    m.key(UP)
    assert m.frame.items[m.frame.cursor][0] == "UNMAP LUN"
    m.key(ENTER)
    choose(m, "P1 LUN 1")
    choose(m, "YES")
    m.key(UP)
    m.key(UP)
    m.key(ENTER)        # CLEAR LOG DRIVE
    choose(m, "SD1")
    assert lines(m) == ("DONE", "LOG CLEARED"), lines(m)
    home(m)
    # without a LOG drive the snapshot is refused, with the reason
    goto(m, "ADMINISTRATION", "START SNAPSHOT")
    choose(m, "SD0")
    assert lines(m) == ("NO LOG DRIVE", "SET ONE FIRST"), lines(m)
    home(m)
    goto(m, "CONFIGURATION", "SET LOG")
    choose(m, "SD1")
    assert lines(m) == ("LOG ON SD1?", ">NO")
    choose(m, "YES, SD1 DATA LOST")
    assert lines(m) == ("DONE", "LOG SET")
    home(m)
    goto(m, "ADMINISTRATION", "START SNAPSHOT")
    choose(m, "SD0")
    assert lines(m) == ("DONE", "SNAPSHOT STARTED")
    home(m)
    assert lines(m) == ("SD0 RAID5 ONLINE", "SNAP ACTIVE LOG 0%")
    assert "ACTIVE   primary SD0   log SD1" in screen_text(m)
    # the log drive cannot be the primary of another snapshot
    goto(m, "CONFIGURATION", "CLEAR LOG")
    choose(m, "SD1")
    assert lines(m)[0] == "SNAPSHOT ACTIVE"
    home(m)
    goto(m, "ADMINISTRATION", "END SNAPSHOT")
    assert lines(m) == ("END SNAPSHOT?", ">NO")
    choose(m, "YES, BACKUP LOST")
    assert lines(m) == ("DONE", "SNAPSHOT ENDED")
    home(m)
    # until the next start the LCD and the screen say how the last snapshot ended
    assert lines(m)[1] == "SNAP TERMINATED 0%"
    assert "IDLE   log drive SD1   last: SD0 terminated (command) at " in screen_text(m)


def test_snapshot_map_shades_copied_regions():
    m = model()
    ctl = m.ctl
    ctl.command("snapshot_start", {"sd": 0})
    # overwrite the first 1/64 of the primary: the first cells fill
    blocks = ctl.command("sd_list")["drives"][0]["blocks"]
    n = blocks // menu.MAP_COLS // menu.MAP_ROWS
    data = bytes(n * 512)
    c = fw.cdb(0x2A, 0, 0, 0, 0, 0, 0, n >> 8, n & 255, 0)
    st, sn, _ = fw.run(ctl, 0, c, data)
    assert st == 0, sn
    goto(m, "SNAPSHOT MAP")
    s = screen_text(m)
    assert "  |@" in s, s
    l1, l2 = lines(m)
    assert l1.startswith("SNAP ACTIVE LOG"), l1
    m.key(DOWN)
    l1, l2 = lines(m)
    assert l1 == "COPIED TO LOG:" and l2[0] != " ", (l1, l2)


def type_pw(m, pw):
    for ch in pw:
        m.char(ch)
    m.key(ENTER)


def test_password_guards_configuration():
    m = model()
    goto(m, "ADMINISTRATION", "SET PASSWORD")
    assert lines(m)[0] == "NEW PASSWORD:"        # none set yet: nothing to prove
    type_pw(m, "s3cret")
    assert lines(m)[0] == "CONFIRM PASSWORD:"
    type_pw(m, "s3cret")
    assert lines(m) == ("DONE", "PASSWORD SET")
    home(m)     # back in monitor mode: locked again
    goto(m, "CONFIGURATION")
    assert m.frame.kind == menu.PASSWORD
    assert lines(m) == ("PASSWORD:", "<OK>")
    m.char("x")
    m.key(ENTER)
    assert lines(m) == ("WRONG PASSWORD", "TRY AGAIN")
    m.key(ENTER)        # CONFIGURATION again, typed this time with the buttons: "s" "3" ... is long;
    m.key(ESC)          # so cancel, and type it on the keyboard
    assert lines(m)[0] == "CANCELLED"
    m.key(ENTER)
    for ch in "s3cret":
        m.char(ch)
    m.backspace()
    m.char("t")
    m.key(ENTER)
    assert m.frame.title == "CONFIGURATION", m.frame.title
    home(m)


def test_password_entry_with_buttons_only():
    m = model()
    m.access.store(access.digest("10"))
    goto(m, "DISKS")
    assert m.frame.kind == menu.PASSWORD
    m.key(UP)           # <OK> -> "0"
    m.key(UP)           # "1"
    assert lines(m)[1] == "1"
    m.key(ENTER)        # take "1"
    m.key(UP)
    m.key(ENTER)        # take "0"
    assert lines(m)[1] == "**<OK>"
    m.key(ENTER)
    assert m.frame.title == "DISKS", lines(m)


def test_disk_fail_and_replace():
    m = model()
    goto(m, "DISKS", "FAIL DISK")
    choose(m, "0:0")
    assert lines(m) == ("FAIL DISK 0:0?", ">NO")
    choose(m, "YES, DRIVES DEGRADE")
    assert lines(m) == ("DONE", "DISK FAILED")
    home(m)
    assert lines(m)[0] == "!SD0 CRITICAL"      # the fault display
    goto(m, "DISKS", "REPLACE DISK")
    choose(m, "0:0")
    choose(m, "YES, DISK WIPED")
    assert lines(m) == ("DONE", "DISK REPLACED"), lines(m)


def test_automatic_rebuild_setting_in_menus():
    m = model()
    goto(m, "CONFIGURATION", "AUTO REBUILD")
    choose(m, "OFF")
    assert lines(m) == ("DONE", "SETTING SAVED"), lines(m)
    assert not m.ctl.cfg.auto_rebuild()
    home(m)
    goto(m, "DISKS", "DISK LIST")
    assert any("automatic rebuild of a replaced disk: OFF" in str(r[1]) for r in m.rows), m.rows


def test_create_drive_with_no_free_space_is_refused_before_any_step():
    m = model()
    goto(m, "CONFIGURATION", "CREATE DRIVE")     # SD0 and SD1 take every disk whole
    assert lines(m) == ("NO FREE SPACE", "DELETE A DRIVE"), lines(m)
    assert m.frame.title == "CONFIGURATION", m.frame.title
    assert "REFUSED: NO SPACE - no disk has free space" in screen_text(m)


def unlog_sd1(ctl):
    # SD1 an ordinary drive: its backup LUNs unmapped, LOG cleared
    for port in (0, 1):
        ctl.command("lun_unmap", {"port": port, "lun": 1})
    ctl.command("log_clear", {"sd": 1})


def test_create_drive_lists_free_space_asks_the_size_and_names_the_drive():
    m = model()
    ctl = m.ctl
    unlog_sd1(ctl)
    ctl.command("sd_delete", {"sd": 1})
    goto(m, "CONFIGURATION", "CREATE DRIVE")
    # two free disks: the levels two disks can build
    assert [i[0] for i in m.frame.items] == ["RAID 1", "RAID 0", "JBOD"], m.frame.items
    choose(m, "RAID 0")
    assert [i[0] for i in m.frame.items] == ["1:0 FREE 16MB", "1:1 FREE 16MB", "DONE"], m.frame.items
    choose(m, "1:0")
    choose(m, "1:1")
    choose(m, "DONE")
    assert m.frame.title == "SIZE"
    assert [i[0] for i in m.frame.items] == ["ALL 32MB", "16MB", "8MB", "4MB", "2MB", "1MB"], m.frame.items
    choose(m, "16MB")
    choose(m, "WRITE THROUGH")
    choose(m, "YES")
    assert lines(m) == ("DONE", "SD1 CREATED 16MB"), lines(m)
    assert [(d["sd"], d["level"], d["mb"]) for d in ctl.command("sd_list")["drives"]] == [(0, "RAID5", 48), (1, "RAID0", 16)]
    # the free space left, per disk; a disk count the level refuses ends the action at once
    m.key(ENTER)
    choose(m, "RAID 1")
    assert [i[0] for i in m.frame.items] == ["1:0 FREE 8MB", "1:1 FREE 8MB", "DONE"], m.frame.items
    choose(m, "1:0")
    choose(m, "DONE")
    assert lines(m) == ("WRONG DISK COUNT", "FOR THIS RAID LEVEL"), lines(m)
    assert m.frame.title == "CONFIGURATION"


def test_create_and_delete_drive_in_menus():
    m = model()
    ctl = m.ctl
    # free two disks: delete SD1 after unmapping and clearing LOG
    unlog_sd1(ctl)
    goto(m, "CONFIGURATION", "DELETE DRIVE")
    choose(m, "SD1")
    assert lines(m) == ("DELETE SD1?", ">NO")
    choose(m, "YES, ALL DATA LOST")
    assert lines(m) == ("DONE", "DRIVE DELETED"), lines(m)
    m.key(UP)
    m.key(ENTER)        # CREATE DRIVE
    choose(m, "RAID 1")
    assert m.frame.title == "SELECT DISKS"
    choose(m, "1:0")    # toggles
    choose(m, "1:1")
    s = screen_text(m)
    assert "[x] 1:0 FREE 16MB" in s and "[x] 1:1 FREE 16MB" in s and "0:0" not in s, s
    choose(m, "DONE")
    choose(m, "ALL")
    choose(m, "WRITE BACK")
    choose(m, "YES")
    assert lines(m) == ("DONE", "SD1 CREATED 16MB"), lines(m)
    d = ctl.command("sd_list")["drives"]
    assert [x["level"] for x in d] == ["RAID5", "RAID1"] and d[1]["wb"], d


def test_long_operations_start_show_stop():
    m = model()
    goto(m, "ADMINISTRATION", "LONG OPERATIONS")
    labels = [i[0] for i in m.frame.items]
    assert labels == ["START OPERATION", "OPERATION STATUS", "STOP OPERATION", "CLEAR INCOMPLETE"], labels
    m.key(ENTER)
    choose(m, "CONSISTENCY CHECK")
    choose(m, "SD0")            # a check destroys nothing: no target, no question
    assert lines(m) == ("DONE", "OPERATION STARTED"), lines(m)
    # a second one on the same drive is refused, with the reason
    m.key(ENTER)
    choose(m, "CONSISTENCY CHECK")
    choose(m, "SD0")
    assert lines(m) == ("OPERATION RUNNING", "STOP IT FIRST"), lines(m)
    m.key(DOWN)
    m.key(ENTER)        # OPERATION STATUS
    assert lines(m)[0] == "CHECK SD0", lines(m)
    assert "CONSISTENCY CHECK  SD0" in screen_text(m), screen_text(m)
    m.key(ESC)
    home(m)
    assert "Long operations" in screen_text(m) and "CONSISTENCY CHECK" in screen_text(m)
    goto(m, "ADMINISTRATION", "LONG OPERATIONS", "STOP OPERATION")
    choose(m, "CHECK SD0")
    assert lines(m) == ("DONE", "OPERATION STOPPED"), lines(m)


def test_keyboard_decoder_arrows_enter_esc_and_fragments():
    got = []
    d = vt100.KeyDecoder(lambda k, b: got.append(k))
    for b in b"\x1b[A\x1bOB\r\n\r\x00\n\x1b[C\x1b[D\x1b\x1b[1;5A":
        d.feed(b)
    d.flush()
    assert got == [UP, DOWN, ENTER, ENTER, ENTER, ENTER, ESC, ESC, UP], got
    got.clear()
    for b in b"\x1b[" + b"9" * 40 + b"Ax":     # overlong parameter list: dropped
        d.feed(b)
    assert got == [vt100.CHAR], got     # only the 'x' after the dropped sequence
    got.clear()
    d.feed(0x1b)
    assert got == []
    d.flush()                                      # nothing followed: a lone Esc
    assert got == [ESC]


def test_screen_sends_only_what_changed():
    s = vt100.Screen()
    rows = ["row %d" % i + " " * 74 for i in range(23)] + [" " * 79]
    rows = [r[:80] for r in rows[:23]] + [rows[23]]
    attrs = [0] * 24
    first = bytes(s.frame(rows, attrs))
    assert first.startswith(b"\x1b[0m\x1b[2J") and b"row 22" in first
    assert bytes(s.frame(rows, attrs)) == b""          # nothing changed, nothing sent
    rows[7] = "row 7 changed" + rows[7][13:]
    out = bytes(s.frame(rows, attrs))
    assert out.startswith(b"\x1b[8;7H") and b"changed" in out and b"row 6" not in out, out
    attrs[3] = 1
    out = bytes(s.frame(rows, attrs))
    assert b"\x1b[4;1H\x1b[7m" in out, out


def test_keystroke_fuzz_on_the_model():
    # random bytes, escape fragments and control characters through decoder and model; the
    # views must render after every chunk
    import random
    m = model()
    d = vt100.KeyDecoder(lambda k, b: m.key(k) if k <= 4 else (m.char(chr(b)) if k == vt100.CHAR else m.backspace()))
    frags = [b"\x1b", b"\x1b[", b"\x1b[A", b"\x1b[B", b"\x1bO", b"\r", b"\n", b"\x1b[12;", b"\xff", b"\x00", b"q"]
    random.seed(4)
    n = 0
    for _ in range(300):
        if random.getrandbits(1):
            chunk = bytes(random.getrandbits(8) for _ in range(random.getrandbits(4)))
        else:
            chunk = frags[random.getrandbits(8) % len(frags)]
        for b in chunk:
            d.feed(b)
        n += 1
        lines(m)
        screen_text(m)
    d.flush()
    print("keystroke fuzz: %d inputs" % n)


def _marked(ctl, lun=0):
    # a pattern on the drive behind LUN `lun`, to prove later that nothing overwrote it
    data = fw.pattern(lun + 7, 64 * 512)
    assert fw.run(ctl, lun, fw.write10(100, 64), data)[0] == 0
    return data


def _still(ctl, data, lun=0):
    st, sn, got = fw.run(ctl, lun, fw.read10(100, 64))
    return st == 0 and got == data


def test_start_operation_offers_the_check_first_and_asks_before_initializing():
    m = model()
    data = _marked(m.ctl)
    goto(m, "ADMINISTRATION", "LONG OPERATIONS", "START OPERATION")
    assert [i[0] for i in m.frame.items][0] == "CONSISTENCY CHECK"
    choose(m, "INITIALIZE")
    choose(m, "SD0")
    assert lines(m) == ("INIT SD0?", ">NO")
    m.key(DOWN)
    assert lines(m) == ("INIT SD0?", ">YES, ALL DATA LOST")
    m.key(UP)
    m.key(ENTER)                      # the default: NO
    assert lines(m)[0] == "CANCELLED", lines(m)
    assert not m.ctl.lops.ops and _still(m.ctl, data)


def test_copy_target_list_offers_only_drives_the_copy_accepts_and_asks_first():
    b = fw.small_board(slots=10)
    m = menu.Model(fw.boot(b=b))
    ctl = m.ctl
    ctl.command("sd_create", {"raid": 5, "slots": [6, 7, 8, 9]})
    ctl.command("lun_map", {"port": 0, "lun": 2, "sd": 2})
    data = _marked(ctl, lun=2)
    ctl.command("snapshot_start", {"sd": 0})
    goto(m, "ADMINISTRATION", "LONG OPERATIONS", "START OPERATION")
    choose(m, "COPY DRIVE")
    assert [i[0] for i in m.frame.items] == ["SD0 RAID5 ONLINE", "SD1 RAID1 LOG"], m.frame.items
    choose(m, "SD1")
    # neither the log drive, nor the primary, nor the source: only SD2
    assert [i[0] for i in m.frame.items] == ["TO SD2 RAID5 ONLINE"], m.frame.items
    m.key(ENTER)
    assert lines(m) == ("OVERWRITE SD2?", ">NO")
    m.key(DOWN)
    assert lines(m)[1] == ">YES, SD2 DATA LOST"
    m.key(UP)
    m.key(ENTER)
    assert lines(m)[0] == "CANCELLED" and not ctl.lops.ops and _still(ctl, data, lun=2)


def test_a_stopped_copy_shows_incomplete_and_the_panel_clears_it_after_asking():
    b = fw.small_board(slots=10)
    m = menu.Model(fw.boot(b=b))
    ctl = m.ctl
    ctl.command("sd_create", {"raid": 5, "slots": [6, 7, 8, 9]})
    ctl.command("snapshot_start", {"sd": 0})
    ctl.command("lop_start", {"op": "copy", "sd": 1, "to": 2})
    ctl.lop_mgr.step()
    ctl.command("lop_stop", {"sd": 0})
    m.refresh()                                 # as the console does once a second
    assert lines(m)[0] == "!SD2 INCOMPLETE COPY"
    assert "INCOMPLETE" in screen_text(m)
    goto(m, "ADMINISTRATION", "LONG OPERATIONS", "CLEAR INCOMPLETE")
    assert [i[0] for i in m.frame.items] == ["SD2 INCOMPLETE"], m.frame.items     # 19 columns
    m.key(ENTER)
    assert lines(m) == ("ACCEPT SD2 AS IS?", ">NO")
    m.key(ENTER)
    assert lines(m)[0] == "CANCELLED" and ctl.lops.incomplete[2]
    home(m)
    goto(m, "ADMINISTRATION", "LONG OPERATIONS", "CLEAR INCOMPLETE")
    m.key(ENTER)
    m.key(DOWN)
    assert lines(m)[1] == ">YES, HOSTS SEE IT"
    m.key(ENTER)
    assert lines(m) == ("DONE", "MARK CLEARED") and not ctl.lops.incomplete[2]


def test_delete_list_holds_only_drives_delete_accepts():
    m = model()
    goto(m, "CONFIGURATION", "DELETE DRIVE")
    assert m.frame.items == [("(NONE AVAILABLE)", None)], m.frame.items     # both drives are mapped
    m.key(ENTER)
    assert lines(m)[0] == "CANCELLED" and len(m.ctl.command("sd_list")["drives"]) == 2


def test_resync_is_offered_only_onto_the_drive_holding_the_earlier_copy():
    m = menu.Model(fw.boot(b=fw.small_board(slots=10)))
    ctl = m.ctl
    ctl.command("sd_create", {"raid": 5, "slots": [6, 7, 8, 9]})
    ctl.command("snapshot_start", {"sd": 0})
    goto(m, "ADMINISTRATION", "LONG OPERATIONS", "START OPERATION")
    choose(m, "RESYNC")
    choose(m, "SD1")
    assert m.frame.items == [("(NONE AVAILABLE)", None)], m.frame.items   # no copy yet: NO_BASE
    home(m)
    ctl.command("lop_start", {"op": "copy", "sd": 1, "to": 2})
    from lop import scheduler
    scheduler.finish_all(ctl.lop_mgr)                 # the copy ends the snapshot: the next one re-syncs SD2
    ctl.command("snapshot_start", {"sd": 0})
    goto(m, "ADMINISTRATION", "LONG OPERATIONS", "START OPERATION")
    choose(m, "RESYNC")
    choose(m, "SD1")
    assert [i[0] for i in m.frame.items] == ["TO SD2 RAID5 ONLINE"], m.frame.items


def test_changing_the_password_needs_the_current_one_and_the_new_one_twice():
    m = model()
    m.access.store(access.digest("old-one"))
    goto(m, "ADMINISTRATION")
    type_pw(m, "old-one")                       # unlock the menu
    goto_item(m, "SET PASSWORD")
    assert lines(m)[0] == "CURRENT PASSWORD:"
    type_pw(m, "guess")
    assert lines(m)[0] == "WRONG PASSWORD"
    assert m.ctl.cfg.password == access.digest("old-one")
    goto_item(m, "SET PASSWORD")
    type_pw(m, "old-one")
    type_pw(m, "new-one")
    type_pw(m, "new-onf")
    assert lines(m)[0] == "PASSWORDS DIFFER"
    assert m.ctl.cfg.password == access.digest("old-one")
    goto_item(m, "SET PASSWORD")
    type_pw(m, "old-one")
    type_pw(m, "new-one")
    type_pw(m, "new-one")
    assert lines(m) == ("DONE", "PASSWORD SET")
    assert m.ctl.cfg.password == access.digest("new-one")
    goto_item(m, "SET PASSWORD")                # cleared: the new one empty, twice
    type_pw(m, "new-one")
    type_pw(m, "")
    type_pw(m, "")
    assert lines(m) == ("DONE", "PASSWORD CLEARED")
    assert m.ctl.cfg.password is None


def test_wrong_passwords_lock_the_panel_out_for_a_while():
    ctl = fw.boot()
    now = [1000]
    m = menu.Model(ctl, access.Access(ctl, clock=lambda: now[0]))
    m.access.store(access.digest("right"))
    for _ in range(access.FAILS_MAX):
        goto(m, "DISKS")
        type_pw(m, "wrong")
        assert lines(m)[0] == "WRONG PASSWORD"
        home(m)
    goto(m, "DISKS")
    type_pw(m, "right")                          # even the right one: locked out
    assert lines(m)[0] == "PANEL LOCKED", lines(m)
    home(m)
    now[0] += access.LOCK_MS - 1
    goto(m, "DISKS")
    type_pw(m, "right")
    assert lines(m)[0] == "PANEL LOCKED"
    home(m)
    now[0] += 1
    goto(m, "DISKS")
    type_pw(m, "right")
    assert m.frame.title == "DISKS", lines(m)


def _long_decimals(text):
    # a percentage with more than one decimal ("8.699999999999999%") anywhere in the text
    for word in text.replace("\n", " ").split(" "):
        if word.endswith("%") and "." in word and len(word.split(".")[-1]) > 2:
            return word
    return None


def test_operation_status_shows_percentages_rounded_to_one_decimal():
    m = model()
    m.ctl.command("lop_start", {"op": "check", "sd": 0})
    op = m.ctl.lops.ops[0]
    op.pos, op.end = 87, 1000          # 8.7 %: a float the board prints as 8.699999999999999
    assert menu.pct_text(op.info()["percent"]) == "8.7"
    goto(m, "ADMINISTRATION", "LONG OPERATIONS", "OPERATION STATUS")
    l1, l2 = lines(m)
    assert (l1, l2) == ("CHECK SD0", "8.7% RUNNING"), (l1, l2)
    assert "  8.7%" in screen_text(m) and not _long_decimals(screen_text(m)), screen_text(m)
    m.key(ESC)
    m.key(DOWN)
    m.key(ENTER)                       # STOP OPERATION: its list names the percentage too
    assert "CHECK SD0 8.7%" in screen_text(m), screen_text(m)
    home(m)
    assert not _long_decimals(screen_text(m)), screen_text(m)


def test_percent_text_has_one_decimal_at_most():
    cases = [(0, "0"), (100, "100"), (8.699999999999999, "8.7"), (0.30000000000000004, "0.3"),
             (99.95, "100"), (12.04, "12"), (None, "?"), ("x", "?")]
    for v, want in cases:
        assert menu.pct_text(v) == want, (v, menu.pct_text(v), want)
    for tenths in range(1001):
        s = menu.pct_text(tenths / 10)
        assert len(s.split(".")[-1]) <= 1 if "." in s else True, s
