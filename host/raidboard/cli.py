"""`raidboard`: boot an emulated DAC960SX/SF board, open its console, and manage it over the serial line.

This module wires the parts together: StorCLI paths are translated (storcli.py), the line is parsed
(parser.py), its command runs over a Session (session.py) and whatever ends it becomes an exit code
(errors.py). The shell (shell.py) is handed the parser and `run`, so it never imports this module.
"""
import shlex
import sys
from importlib import metadata

from . import boot, errors, render, shell
from .errors import EXIT_OK, UsageError
from .parser import build_parser
from .proto import LinkError
from .render import out
from .session import Session
from .storcli import json_suffix, storcli


def cmd_shell(sess, args):
    return shell.run(sess, args, parser, run)


def parser():
    """The command tree, its `shell` command running the shell."""
    return build_parser(shell=cmd_shell)


def run(argv, sess=None):
    """Parse and run one command line; return the exit code. `sess` keeps the link open (shell)."""
    own = sess is None
    line = shlex.join(argv)
    args = None
    try:
        argv = storcli(list(argv))
        args = parser().parse_args(argv)
        args.command_line = line
        if args.version:
            return cmd_version(args)
        if getattr(args, "func", None) is None:
            group = getattr(args, "group", None)
            (group or parser()).print_help(sys.stderr)
            raise UsageError("no %s given: the list above has them" % ("action" if group else "command"))
        if sess is None:
            sess = Session(args)
        else:
            sess.args = args = merge_options(sess.base_args, args)
        rc = args.func(sess, args)
        return rc or EXIT_OK
    except errors.FAILURES as e:
        if isinstance(e, LinkError) and not own:
            sess.close()
        return errors.report(e, line if wants_json(argv, sess) else None, one_line=getattr(args, "streamed", False),
                             controller=render.answering(args))
    finally:
        if own and sess is not None:
            sess.close()


def wants_json(argv, sess):
    """Whether this line asked for JSON (-j/--json, StorCLI's J, or the shell's own --json), read
    from the words themselves, so a line that did not parse gets its JSON failure too."""
    base = getattr(sess, "base_args", None) if sess is not None else None
    return bool(getattr(base, "json", False) or json_suffix(argv)
                or any(a in ("-j", "--json") for a in argv))


def cmd_version(args):
    """The host CLI's package version and the firmware's, where it can be found."""
    try:
        mine = metadata.version("raidboard")
    except metadata.PackageNotFoundError:     # run from a source tree that was never installed
        mine = "(not installed)"
    v = {"raidboard": mine, "firmware": boot.firmware_version()}
    out(args, v, "raidboard %s\nfirmware %s" % (v["raidboard"], v["firmware"] or "not found (set RAIDBOARD_FIRMWARE)"))
    return EXIT_OK


def merge_options(base, args):
    """Shell: a line's own options win; the rest come from the options the shell was started with."""
    for k in ("port", "state", "password_file", "controller"):
        if getattr(args, k, None) is None:
            setattr(args, k, getattr(base, k, None))
    args.json = bool(getattr(args, "json", False) or getattr(base, "json", False))
    if getattr(args, "timeout", 30.0) == 30.0:
        args.timeout = getattr(base, "timeout", 30.0)
    return args


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    rc = run(argv)
    sys.stdout.flush()
    return rc


if __name__ == "__main__":
    sys.exit(main())
