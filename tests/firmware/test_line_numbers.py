# Numbers on the console line protocol (endpoints/console/lineproto.md "Numbers"): a percentage
# goes out with one decimal as written (8.7, not MicroPython's 8.699999999999999), and a long
# operation's answer says each fact under one key.
import json
import fw
from endpoints.console import jsontext
from endpoints.console import uart as console


def answer(c, cmd, args=None):
    line = c.proto.call("q", cmd, args or {})
    assert line.startswith("q OK "), line
    return line[5:].strip()


def running_check_at(ctl, done, of):
    ctl.command("lop_start", {"op": "check", "sd": 0})
    op = ctl.lop_mgr.ops[0]
    op.pos, op.end = done, of
    return op


def test_a_long_operation_at_8_7_percent_says_8_7_on_the_line():
    ctl = fw.boot()
    c = console.Console(ctl)
    running_check_at(ctl, 87, 1000)
    text = answer(c, "lop_status", {"sd": 0})
    assert '"percent": 8.7,' in text or '"percent": 8.7}' in text, text
    assert "8.69999" not in text, text
    assert json.loads(text)["lops"][0]["percent"] == 8.7


def test_every_tenth_of_a_percent_is_written_as_it_reads():
    for t in range(1001):
        assert jsontext.dumps({"percent": t / 10}) == '{"percent": %s}' % ("%.1f" % (t / 10)), t


def test_floats_stay_floats_and_what_json_has_no_number_for_is_null():
    assert jsontext.dumps([100.0, 2.5, 1795741323.25, float("nan"), float("inf")]) == \
        "[100.0, 2.5, 1795741323.25, null, null]"
    assert jsontext.dumps({"a": [1, "x\u00e9", None, True]}) == json.dumps({"a": [1, "x\u00e9", None, True]})


def test_a_long_operation_says_each_fact_once():
    ctl = fw.boot()
    c = console.Console(ctl)
    running_check_at(ctl, 87, 1000)
    for text in (answer(c, "lop_status", {"sd": 0}), answer(c, "status")):
        op = json.loads(text)["lops"][0]
        assert op["op"] == "check" and op["word"] == 0 and op["percent"] == 8.7
        assert not {"pct", "words", "name"} & set(op), op
