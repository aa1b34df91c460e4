"""`raidboard shell`: the CLI's commands at a prompt, over one open console link.

History is kept in ~/.raidboard_history (or $RAIDBOARD_HISTORY). Completion knows the commands and
options (taken from the CLI's own argparse tree, so they never drift apart) and the board's names:
system drives (sd0…), PORT/LUN pairs and disk slots, read from the board. Events that arrive while
you type are printed before the next prompt. Without a terminal it reads commands from stdin.
"""
import argparse
import shlex
import sys

from . import render
from .errors import EXIT_OK, EXIT_USAGE
from .model import LUNS, MAX_SD, PORTS
from .nvimage import shown
from .proto import BoardError, LinkError

BUILTINS = ["help", "exit", "quit"]
NOT_IN_SHELL = {"shell"}


def command_tree(parser):
    """{name: subtree} for groups, {name: leaf parser} for commands."""
    tree = {}
    for name, p in parser.commands.items():
        sub = command_tree(p)
        tree[name] = sub if sub else p
    return tree


class BoardNames:
    """Names on the board for completion, refreshed after every command."""

    def __init__(self, sess):
        self.sess = sess
        self.drives, self.portluns, self.slots = [], [], []
        self.stale = True

    def refresh(self):
        self.stale = False
        try:
            self.drives = ["sd%d" % d["sd"] for d in self.sess.call("sd_list").get("drives", [])]
            self.portluns = ["%d/%d" % (m["port"], m["lun"]) for m in self.sess.call("lun_list").get("map", [])]
            disks = self.sess.call("disk_list").get("disks", [])
            self.slots = [str(d["slot"]) for d in disks] + [str(d["name"]) for d in disks if d.get("name")]
        except Exception:
            pass  # completion is a convenience: a board that does not answer simply offers no names

    def for_arg(self, dest):
        if self.stale:
            self.refresh()
        if dest in ("drive", "to"):
            return self.drives or ["sd%d" % i for i in range(MAX_SD)]
        if dest == "portlun":
            mapped = set(self.portluns)
            return self.portluns + ["%d/%d" % (p, l) for p in range(PORTS) for l in range(LUNS) if "%d/%d" % (p, l) not in mapped]
        if dest == "slot":
            return self.slots
        return []


def complete(tree, names, line):
    """The candidates for the last word of `line` (a pure function, so it is testable)."""
    try:
        words = shlex.split(line)
    except ValueError:
        return []
    if line and not line[-1].isspace() and words:
        prefix = words.pop()
    else:
        prefix = ""
    node = tree
    i = 0
    while isinstance(node, dict) and i < len(words):
        if words[i].startswith("-"):
            i += 1
            continue
        if words[i] not in node:
            return []
        node = node[words[i]]
        i += 1
    if isinstance(node, dict):
        cands = list(node) + (BUILTINS if node is tree else [])
        return sorted(c for c in cands if c.startswith(prefix) and c not in NOT_IN_SHELL)
    parser = node
    positionals = [a for a in parser.arguments if not a.option_strings and a.dest != argparse.SUPPRESS]
    options = [o for a in parser.arguments if a.option_strings for o in a.option_strings if o.startswith("--")]
    # value of an option that takes one?
    if words[i:] and words[-1].startswith("--"):
        act = next((a for a in parser.arguments if words[-1] in a.option_strings), None)
        if act is not None and act.nargs != 0:
            vals = list(act.choices) if act.choices else names.for_arg(act.dest)
            return [v for v in vals if v.startswith(prefix)]
    if prefix.startswith("-"):
        return sorted(o for o in options if o.startswith(prefix))
    # which positional comes next: count the bare words after the command (skipping option values)
    n = 0
    rest = words[i:]
    k = 0
    while k < len(rest):
        w = rest[k]
        if w.startswith("-"):
            act = next((a for a in parser.arguments if w in a.option_strings), None)
            k += 2 if act is not None and act.nargs != 0 else 1
            continue
        n += 1
        k += 1
    if n < len(positionals):
        act = positionals[n]
        vals = list(act.choices) if act.choices else names.for_arg(act.dest)
        return [v for v in vals if v.startswith(prefix)]
    return sorted(o for o in options if o.startswith(prefix)) if prefix else []


def run(sess, args, parser, run_line):
    """The shell over `sess`: `parser()` makes the command tree it completes from, `run_line(argv,
    sess)` runs one command line and returns its exit code."""
    tree = command_tree(parser())
    names = BoardNames(sess)
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    prompt = _prompt_session(tree, names) if interactive else None
    if interactive:
        print("raidboard shell: commands as on the command line (try `help`, Tab completes, Ctrl-D quits)")
        try:
            h = sess.link().hello
            print(shown("connected to %s%s" % (h.get("model", "the board"),
                                                      (" firmware " + str(h["firmware"])) if h.get("firmware") else "")))
        except (LinkError, BoardError) as e:     # BoardError: the console password was refused
            print("not connected: %s" % shown(e))
    rc = EXIT_OK
    while True:
        _print_events(sess, args)
        try:
            if prompt is not None:
                line = prompt.prompt("raidboard> ")
            else:
                line = sys.stdin.readline()
                if not line:
                    break
        except KeyboardInterrupt:
            continue
        except EOFError:
            break
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            argv = shlex.split(line)
        except ValueError as e:
            print("raidboard: %s" % e, file=sys.stderr)
            rc = EXIT_USAGE
            continue
        if argv[0] in ("exit", "quit"):
            break
        if argv[0] in ("help", "?"):
            argv = argv[1:] + ["--help"]
        if argv[0] in NOT_IN_SHELL:
            print("raidboard: already in the shell", file=sys.stderr)
            continue
        if argv[0] == "console":
            sess.close()  # the console is one connection: hand it over
        try:
            rc = run_line(argv, sess)
        except SystemExit as e:  # --help
            rc = e.code if isinstance(e.code, int) else 0
        names.stale = True
        sys.stdout.flush()
    return rc


def _print_events(sess, args):
    for e in sess.pending_events():
        if args.json:
            render.json_line(args, e)
        else:
            print("event " + render.event_line(e), flush=True)


def _prompt_session(tree, names):
    from . import prompt  # the one import kept here: prompt_toolkit costs every other command 0.2 s
    return prompt.session(lambda text: complete(tree, names, text))
