"""What the host CLI prints of the board's text: whatever a board (or NV memory, or an older
firmware) sends, no control character reaches the operator's terminal — they print as \\uXXXX
(host/README.md "Text from the board"; one function, nvimage.shown)."""
import argparse
import io

from raidboard import errors, render
from raidboard.proto import BoardError

ESCAPES = "\x1b]0;PWNED\x07\x1b[2J\x9b31m\x7f"


def no_controls(text):
    return all(c.isprintable() or c == "\n" for c in text)


def test_text_output_shows_control_characters_escaped(capsys):
    render.out(argparse.Namespace(json=False), {}, "board: DAC960SX%s\nsnapshot: ACTIVE" % ESCAPES)
    printed = capsys.readouterr().out
    assert no_controls(printed) and printed.count("\n") == 2
    assert "DAC960SX\\u001b]0;PWNED\\u0007\\u001b[2J\\u009b31m\\u007f" in printed


def test_an_event_is_one_line_whatever_its_text_holds():
    line = render.event_line({"seq": 7, "time": 0, "level": "warn\x1b[5m", "text": "refused\n#8 fake " + ESCAPES})
    assert no_controls(line) and "\n" not in line and "refused\\u000a#8 fake" in line


def test_a_refusal_from_the_board_is_printed_escaped(capsys):
    assert errors.report(BoardError("BAD_ARGUMENT\x1b[2J", "no such name: " + ESCAPES)) == errors.EXIT_REFUSED
    said = capsys.readouterr().err
    assert no_controls(said) and "no such name: \\u001b]0;PWNED" in said


def test_progress_notes_are_printed_escaped():
    stream = io.StringIO()
    bar = render.Progress("sd1", stream)
    bar.update(50, "copy " + ESCAPES)
    bar.done("done " + ESCAPES)
    assert no_controls(stream.getvalue()) and "copy \\u001b]0;PWNED" in stream.getvalue()
