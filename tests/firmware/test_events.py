# The event log (hw/events.py) makes event text safe once, where events are recorded: much of it
# comes from outside the board (iSCSI InitiatorNames, login keys) and every place that shows it —
# the console's screens and LCD, the line protocol, the host CLI — must get no control character.
import json
import fw
from hw import events
from endpoints.console import lcd
from endpoints.console import lineproto
from endpoints.console import menu
from endpoints.console import vt100

EVIL = "iqn.2026-11.org.example:\x1b]0;PWNED\x07\x1b[2J\x1b[31mEVIL\x9b6n\x7f\x00\n\t"


def controls(s):
    return [c for c in s if ord(c) < 32 or 127 <= ord(c) < 160]


def test_control_characters_from_outside_are_shown_as_escapes():
    log = events.EventLog()
    told = []
    log.subscribe(told.append)
    ev = log.log("warn", "iSCSI port 0: login from %s refused" % EVIL)
    t = ev["text"]
    assert controls(t) == [], t
    assert "\\u001b]0;PWNED\\u0007\\u001b[2J\\u001b[31mEVIL\\u009b6n\\u007f\\u0000\\u000a\\u0009" in t, t
    assert log.recent(1)[0]["text"] == t and told[0]["text"] == t
    line = lineproto.event_line(ev)
    assert controls(line) == ["\n"] and line.endswith("\n")     # one line, whatever the text held


def test_plain_text_is_kept_as_it_is():
    log = events.EventLog()
    for text in ("SD0 CREATED RAID5 100 MB", "login from iqn.2026-11.org.exämple:ünïcode refused"):
        assert log.log("info", text)["text"] == text


def test_event_text_is_bounded():
    log = events.EventLog()
    t = log.log("warn", "x" * 5000)["text"]
    assert len(t) == events.TEXT_MAX and t.endswith("...")
    t = log.log("warn", "\x1b" * 5000)["text"]              # escaped, then bounded
    assert len(t) == events.TEXT_MAX and t.startswith("\\u001b\\u001b")
    name = "iqn.2026-11.org.example:" + "n" * 199                 # 223 bytes: the longest iSCSI name
    whole = "iSCSI port 1: login from %s refused (0x0201 CHAP authentication failed)" % name
    assert log.log("warn", whole)["text"] == whole        # fits whole


def test_the_monitor_screen_and_the_lcd_show_events_as_printable_ascii():
    ctl = fw.boot()
    ctl.events.log("warn", "login from %s refused" % EVIL)
    m = menu.Model(ctl)
    m.refresh()
    rows, attrs, cur = vt100.compose(m)
    assert "PWNED" in "".join(rows)
    # what the board cannot vouch for (a message, a name from NV memory) is cleaned where it is drawn
    m.message = (False, "REFUSED\x1b[2J", "\x9b31m" + EVIL)
    for text in rows + list(lcd.render(m)) + vt100.compose(m)[0]:
        assert all(" " <= ch <= "~" for ch in text), repr(text)
