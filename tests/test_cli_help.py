"""Help that teaches: every command's --help has examples of itself, every option and argument says
what it is for, `lop` names the operations the firmware knows, and `stop` explains its options."""
import json
import re
import subprocess
import sys
from pathlib import Path

from raidboard import cli, shell

RAIDBOARD = str(Path(sys.executable).with_name("raidboard"))


def rb(*argv, rc=0):
    p = subprocess.run([RAIDBOARD] + [str(a) for a in argv], capture_output=True, text=True, timeout=60)
    assert p.returncode == rc, (argv, p.returncode, p.stdout, p.stderr)
    return p.stdout, p.stderr


def commands(parser, path=()):
    """(words, parser) of every command, e.g. (("sd", "create"), <parser>)."""
    for name, p in parser.commands.items():
        if p.commands:
            yield from commands(p, path + (name,))
        else:
            yield path + (name,), p


def test_every_command_help_has_examples_of_itself_and_explains_every_option():
    for words, p in commands(cli.parser()):
        text = p.format_help()
        examples = text.split("examples:\n", 1)[1] if "examples:\n" in text else ""
        mine = [x for x in examples.splitlines() if x.strip().startswith("raidboard " + " ".join(words))]
        assert mine, "`raidboard %s --help` shows no example of itself" % " ".join(words)
        silent = [a.option_strings or a.dest for a in p.arguments if a.help is None]
        assert not silent, "`raidboard %s --help` does not explain %s" % (" ".join(words), silent)


def test_second_level_help_from_the_command_line():
    out, _ = rb("sd", "create", "--help")
    assert "examples:\n  raidboard sd create --raid 5 --slots 0,1,2,3 --mb 512" in out
    out, _ = rb("stop", "--help")
    assert re.search(r"--pid-file FILE\s+stop the board whose pid is in FILE", out)
    assert "SIGINT" in out and "--grace" in out
    for words in (("lop", "start"), ("lop", "status"), ("snapshot", "watch")):
        out, _ = rb(*words, "--help")
        assert re.search(r"--interval S\s+\S", out), words       # explained, not a bare option


def test_lop_help_names_the_operations_the_firmware_knows(board):
    port = "socket://%s:%d" % board.console
    # the firmware's own list, from its refusal of an unknown operation
    _, err = rb("--port", port, "call", "lop_start", json.dumps({"op": "bogus", "sd": 0}), rc=1)
    known = re.search(r"op must be one of ([a-z, ]+) or ([a-z]+)", err)
    firmware = known.group(1).split(", ") + [known.group(2)]
    out, _ = rb("lop", "--help")
    for op in firmware:
        assert re.search(r"^  %s +\S" % op, out, re.M), "lop --help does not explain %s" % op
    out, _ = rb("lop", "start", "--help")
    assert all(re.search(r"^  raidboard lop start %s " % op, out, re.M) for op in firmware)
    _, err = rb("lop", "start", "bogus", "sd0", rc=2)
    assert "invalid choice: 'bogus'" in err and all("'%s'" % op in err for op in firmware)


def test_the_shell_help_lists_only_what_the_shell_runs():
    text = shell.help_text(cli.parser())
    listed = re.findall(r"^  (\S+)", text, re.M)
    assert "status" in listed and "lop" in listed and "console" in listed
    assert "shell" not in listed and "boot" not in listed
