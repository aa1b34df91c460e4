"""`raidboard shell`: the CLI's commands at a prompt.

The shell holds the board's console only while a command runs: between two commands it gives the
line back, so another client (a cron job, `raidboard console`) is never shut out by an idle shell.
A board with a management endpoint (host/README.md "Finding the board") is reached there instead,
and there the shell keeps its link open: the endpoint serves several clients at once, and the
board's events are printed as they come, above the prompt.

History is kept in ~/.raidboard_history (or $RAIDBOARD_HISTORY). Completion knows the commands and
options (taken from the CLI's own argparse tree, so they never drift apart), the long operations'
names, StorCLI paths and the board's names: system drives (sd0…; `snapshot start` offers no log
drive), PORT/LUN pairs and disk slots, read from the board. Without a terminal it reads commands
from stdin.
"""
import argparse
import contextlib
import shlex
import sys
import threading

from . import render
from .errors import EXIT_OK, EXIT_USAGE
from .model import LUNS, MAX_SD, PORTS
from .nvimage import shown
from .proto import BoardError, LinkError

BUILTINS = ["help", "exit", "quit"]
NOT_IN_SHELL = {"shell": "already in the shell",
                "boot": "start a board from your system's shell (`raidboard boot BOARD STATE --detach`)"}
STORCLI_VERBS = {"c": ["show", "set"], "v": ["show", "del", "set"], "s": ["show", "fail", "remove", "replace"],
                 "l": ["show", "map", "unmap"]}     # by the last element of the path; `…all`: show


def command_tree(parser):
    """{name: subtree} for groups, {name: leaf parser} for commands."""
    tree = {}
    for name, p in parser.commands.items():
        sub = command_tree(p)
        tree[name] = sub if sub else p
    return tree


class BoardNames:
    """Names on the board for completion, refreshed after every command."""

    def __init__(self, sess, lock=None):
        self.sess = sess
        self.lock = lock or contextlib.nullcontext()    # the link's, when a thread reads it too
        self.drives, self.portluns, self.slots, self.logs = [], [], [], []
        self.stale = True

    def refresh(self):
        self.stale = False
        try:
            with self.lock:
                drives = self.sess.call("sd_list").get("drives", [])
                lun_map = self.sess.call("lun_list").get("map", [])
                disks = self.sess.call("disk_list").get("disks", [])
                self.sess.release()         # completion takes the console only for these three
            self.drives = ["sd%d" % d["sd"] for d in drives]
            self.logs = ["sd%d" % d["sd"] for d in drives if d.get("log")]
            self.portluns = ["%d/%d" % (m["port"], m["lun"]) for m in lun_map]
            self.slots = [str(d["slot"]) for d in disks] + [str(d["name"]) for d in disks if d.get("name")]
        except Exception:
            pass  # completion is a convenience: a board that does not answer simply offers no names

    def for_arg(self, dest, command=""):
        if self.stale:
            self.refresh()
        if dest in ("drive", "to"):
            drives = self.drives or ["sd%d" % i for i in range(MAX_SD)]
            # the log drive is never a snapshot's primary (the board refuses it)
            return [d for d in drives if d not in self.logs] if command == "snapshot start" else drives
        if dest == "portlun":
            mapped = set(self.portluns)
            return self.portluns + ["%d/%d" % (p, l) for p in range(PORTS) for l in range(LUNS) if "%d/%d" % (p, l) not in mapped]
        if dest == "slot":
            return self.slots
        return []

    def storcli_paths(self):
        if self.stale:
            self.refresh()
        slots = [s.split(":") for s in self.slots if ":" in s]
        return (["/c0", "/c0/vall", "/c0/eall/sall"] + ["/c0/v" + d[2:] for d in self.drives]
                + ["/c0/e%s/s%s" % (c, t) for c, t in slots]
                + ["/c0/p%s/l%s" % tuple(pl.split("/")) for pl in self.for_arg("portlun")])


def complete_storcli(names, words, prefix):
    """A StorCLI path as the first word, then the verbs its last element takes."""
    if not words:
        return [p for p in names.storcli_paths() if p.startswith(prefix)]
    if len(words) == 1:
        last = words[0].rstrip("/").rsplit("/", 1)[-1].lower()
        verbs = ["show"] if last.endswith("all") else STORCLI_VERBS.get(last[:1], [])
        return [v for v in verbs if v.startswith(prefix)]
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
    if (words[:1] or [prefix])[0].startswith("/"):
        return complete_storcli(names, words, prefix)
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
    command = " ".join(w for w in words[:i] if not w.startswith("-"))
    positionals = [a for a in parser.arguments if not a.option_strings and a.dest != argparse.SUPPRESS]
    options = [o for a in parser.arguments if a.option_strings for o in a.option_strings if o.startswith("--")]
    # value of an option that takes one?
    if words[i:] and words[-1].startswith("--"):
        act = next((a for a in parser.arguments if words[-1] in a.option_strings), None)
        if act is not None and act.nargs != 0:
            vals = list(act.choices) if act.choices else names.for_arg(act.dest, command)
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
        vals = list(act.choices) if act.choices else names.for_arg(act.dest, command)
        return [v for v in vals if v.startswith(prefix)]
    return sorted(o for o in options if o.startswith(prefix)) if prefix else []


def run(sess, args, parser, run_line):
    """The shell over `sess`: `parser()` makes the command tree it completes from, `run_line(argv,
    sess)` runs one command line and returns its exit code."""
    top = parser()
    tree = command_tree(top)
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    watch = EventWatch(sess, args) if interactive else None
    names = BoardNames(sess, watch.lock if watch else None)
    prompt = _prompt_session(tree, names) if interactive else None
    if interactive:
        print("raidboard shell: `help` lists the commands, Tab completes them, Ctrl-D quits")
        try:
            h = sess.link().hello
            print(shown("connected to %s%s" % (h.get("model", "the board"),
                                               (" firmware " + str(h["firmware"])) if h.get("firmware") else "")))
            if not sess.shared():
                print("(through its console, which the shell takes only while a command runs)")
        except (LinkError, BoardError) as e:     # BoardError: the console password was refused
            print("not connected: %s" % shown(e))
        watch.start()
    rc = EXIT_OK
    while True:
        _print_events(sess, args)
        sess.release()          # an idle shell does not hold the console
        try:
            if prompt is not None:
                with watch.idle():
                    line = prompt.ask("raidboard> ")
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
            if len(argv) == 1:
                print(help_text(top))
                continue
            argv = argv[1:] + ["--help"]
        if argv[0] in NOT_IN_SHELL:
            print("raidboard: %s" % NOT_IN_SHELL[argv[0]], file=sys.stderr)
            continue
        if argv[0] == "console":
            sess.close()  # the console is one connection: hand it over
        try:
            rc = run_line(argv, sess)
        except SystemExit as e:  # --help
            rc = e.code if isinstance(e.code, int) else 0
        names.stale = True
        sys.stdout.flush()
    if watch is not None:
        watch.stop()
    return rc


def help_text(top):
    """What `help` prints: the commands the shell runs, and its own."""
    rows = [(n, p.description) for n, p in top.commands.items() if n not in NOT_IN_SHELL]
    width = max(len(n) for n, _ in rows)
    return "\n".join(["commands (as on the command line; `help COMMAND` for its options and examples):"]
                     + ["  %-*s  %s" % (width, n, h) for n, h in rows]
                     + ["  %-*s  %s" % (width, "/c0 …", "StorCLI-style paths: /c0 show, /c0/vall show, "
                                                      "/c0/v1 show, /c0/e1/s0 show …"),
                        "shell: help [COMMAND], exit or quit (Ctrl-D); Tab completes commands, options, "
                        "operation names, drives, PORT/LUN, slots and StorCLI paths; events are printed "
                        "as they come"])


class EventWatch:
    """Prints the board's events while the shell waits at its prompt, from a thread that reads the
    held link (the management endpoint's; on a console the shell holds nothing between commands, so
    events received during a command are printed before the next prompt). The main thread holds
    `lock` except while the prompt waits (`idle`), so the link is never read by both at once."""

    def __init__(self, sess, args):
        self.sess = sess
        self.args = args
        self.lock = threading.Lock()
        self.lock.acquire()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.thread.start()

    def stop(self):
        self.done.set()

    @contextlib.contextmanager
    def idle(self):
        self.lock.release()
        try:
            yield
        finally:
            self.lock.acquire()

    def _run(self):
        while not self.done.is_set():
            if not self.lock.acquire(timeout=0.5):
                continue
            try:
                self.sess.wait_events(0.2)
                _print_events(self.sess, self.args)
            except (LinkError, BoardError, OSError):
                self.sess.close()       # the next command reconnects and says why if it cannot
            finally:
                self.lock.release()
            self.done.wait(0.05)


def _print_events(sess, args):
    for e in sess.pending_events():
        if args.json:
            render.json_line(args, e)
        else:
            print("event " + render.event_line(e), flush=True)


def _prompt_session(tree, names):
    from . import prompt  # the one import kept here: prompt_toolkit costs every other command 0.2 s
    return prompt.Prompt(lambda text: complete(tree, names, text))
