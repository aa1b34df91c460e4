"""`raidboard`: boot an emulated DAC960SX/SF board, open its console, and manage it over the serial line.

This module wires the parts together: StorCLI paths are translated (storcli.py), the line is parsed
(parser.py), its command runs over a Session (session.py) and whatever ends it becomes an exit code
(errors.py). The shell (shell.py) is handed the parser and `run`, so it never imports this module.
"""
import sys

from . import errors, shell
from .errors import EXIT_OK, EXIT_USAGE
from .parser import build_parser
from .proto import LinkError
from .session import Session
from .storcli import storcli


def cmd_shell(sess, args):
    return shell.run(sess, args, parser, run)


def parser():
    """The command tree, its `shell` command running the shell."""
    return build_parser(shell=cmd_shell)


def run(argv, sess=None):
    """Parse and run one command line; return the exit code. `sess` keeps the link open (shell)."""
    own = sess is None
    try:
        argv = storcli(list(argv))
        args = parser().parse_args(argv)
        if getattr(args, "func", None) is None:
            (getattr(args, "group", None) or parser()).print_help(sys.stderr)
            return EXIT_USAGE
        if sess is None:
            sess = Session(args)
        else:
            sess.args = args = merge_options(sess.base_args, args)
        rc = args.func(sess, args)
        return rc or EXIT_OK
    except errors.FAILURES as e:
        if isinstance(e, LinkError) and not own:
            sess.close()
        return errors.report(e)
    finally:
        if own and sess is not None:
            sess.close()


def merge_options(base, args):
    """Shell: a line's own options win; the rest come from the options the shell was started with."""
    for k in ("port", "state", "password_file"):
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
