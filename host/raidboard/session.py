"""One command's (or the shell's) hold on the board: where its console is, the open link, the
console password and other secrets read without the command line, and the question asked before a
command that destroys data."""
import copy
import getpass
import os
import sys

from . import boot
from .errors import EXIT_UNCONFIRMED, PASSWORD_ENV, Exit, UsageError
from .proto import BoardError, Link, LinkError, normalize_url

DEFAULT_STATE = "state"
DEFAULT_CONSOLE = "socket://127.0.0.1:4960"  # the console of boards/dac960sx.json, named in the error below


def console_url(args):
    """Where the board's console (the UART) is, for `raidboard console`."""
    return board_url(args, "console")


def board_url(args, endpoint="management"):
    """Where commands go: --port, else --state's endpoints file, else $RAIDBOARD_PORT, else ./state
    if a board runs there. Nothing else: a board listening on some default port may not be the one
    meant, so with none of these named the error says where it looked. From an endpoints file the
    board's management endpoint is taken when it has one (it serves several clients at once, beside
    a person on the console), else its console; `endpoint="console"` takes the console. Of a pair,
    the controller --controller names, else the first one running (controller_endpoints)."""
    if getattr(args, "port", None):
        return normalize_url(args.port)
    state = getattr(args, "state", None)
    if state:
        ep = controller_endpoints(boot.read_endpoints(state), args, state)
        if not ep or not ep.get("console"):
            raise LinkError("no board recorded in %s (no %s); boot one with "
                            "`raidboard boot boards/dac960sx.json %s --detach`" % (state, boot.ENDPOINTS, state))
        if ep.get("pid") and not boot.pid_alive(ep["pid"]):
            raise LinkError(not_running(ep, state))
        return ep.get(endpoint) or ep["console"]
    if os.environ.get("RAIDBOARD_PORT"):
        return normalize_url(os.environ["RAIDBOARD_PORT"])
    ep = controller_endpoints(boot.read_endpoints(DEFAULT_STATE), args, DEFAULT_STATE)
    if ep and ep.get("console") and boot.pid_alive(ep.get("pid")):
        return ep.get(endpoint) or ep["console"]
    raise LinkError(no_board_named(ep))


def pair_endpoints(args):
    """The endpoints file of the pair the CLI talks to, or None: a simplex board, or a board named
    by --port or $RAIDBOARD_PORT (one endpoint, exactly that one)."""
    if getattr(args, "port", None):
        return None
    state = getattr(args, "state", None)
    if not state and os.environ.get("RAIDBOARD_PORT"):
        return None
    ep = boot.read_endpoints(state or DEFAULT_STATE)
    return ep if ep and ep.get("controllers") else None


# the state directories whose pair's controller 0 was found not running: said once (a shell runs
# many commands)
TOLD = set()


def controller_endpoints(ep, args, state):
    """Of a pair, the endpoints of the controller --controller names, else of the first one running;
    when that is not controller 0, stderr says so once. A simplex board's unchanged."""
    n = getattr(args, "controller", None)
    try:
        view = boot.controller_view(ep, n)
    except boot.BootError as e:
        raise UsageError(str(e))
    if view and view.get("controller") is not None:
        args.answering = view["controller"]
    if n is None and view and view.get("controller") and state not in TOLD:
        TOLD.add(state)
        print("raidboard: controller 0 of the pair in %s is not running (pid %s): talking to controller %d"
              % (state, ep["controllers"][0].get("pid"), view["controller"]), file=sys.stderr)
    return view


def not_running(ep, state):
    """Why the board (or the pair's controller) recorded in `state` cannot be talked to."""
    if ep.get("controller") is None:
        return ("the board of %s (pid %s) is not running any more; boot it again with "
                "`raidboard boot %s %s --detach`" % (state, ep["pid"], ep.get("board", "BOARD"), state))
    n, board = ep["controller"], ep.get("board", "BOARD")
    if not any(boot.pid_alive(c.get("pid")) for c in ep["controllers"]):
        return ("neither controller of the pair in %s is running (pids %s); boot it again with "
                "`raidboard boot %s %s --detach`" % (state, ", ".join(str(c.get("pid")) for c in ep["controllers"]),
                                                    board, state))
    return ("controller %d of the pair in %s (pid %s) is not running; talk to controller %d (--controller %d), "
            "or restart it beside its partner: `raidboard boot %s %s --controller %d --detach`"
            % (n, state, ep["pid"], 1 - n, 1 - n, board, state, n))


def no_board_named(ep):
    """Why no board is talked to when none was named, with where the CLI looked."""
    here = os.path.join(os.path.abspath(DEFAULT_STATE), boot.ENDPOINTS)
    if not ep:
        found = "there is none"
    elif not ep.get("console"):
        found = "it names no console"
    else:
        found = "its board (pid %s) is not running" % ep.get("pid")
    return ("no board named: looked at --port, --state and $RAIDBOARD_PORT (none given) and at %s (%s); "
            "name the board with --port URL (e.g. --port %s), --state DIR or $RAIDBOARD_PORT"
            % (here, found, DEFAULT_CONSOLE))


def read_secret(path, flag, env, prompt, twice=False):
    """A secret never taken from the command line, where `ps` and shell history would show it: the
    first line of the file `path` (option `flag`), else $`env`, else asked on the terminal (twice
    when `twice`, for a new one). None when there is no way to get it."""
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                return f.readline().rstrip("\r\n")
        except OSError as e:
            raise UsageError("%s %s: %s" % (flag, path, e.strerror or e))
    if env and os.environ.get(env) is not None:
        return os.environ[env]
    if not sys.stdin.isatty():
        return None
    got = getpass.getpass(prompt + ": ")
    if twice and getpass.getpass(prompt + " again: ") != got:
        raise UsageError("the two entries differ: nothing was changed")
    return got


def console_password(args):
    """The console password: --password-file, else $RAIDBOARD_PASSWORD, else a prompt."""
    pw = read_secret(getattr(args, "password_file", None), "--password-file", PASSWORD_ENV, "console password")
    if pw is None:
        raise BoardError("PASSWORD_REQUIRED", "the console has a password and none was given")
    return pw


def confirm(args, question):
    """Ask before a command that destroys data or configuration: "QUESTION [y/N]" on a terminal,
    where only y or yes goes on; without a terminal (a script) only --force goes on. Otherwise
    nothing is done and the exit code is 8 (host/README.md)."""
    if getattr(args, "force", False):
        return
    if not sys.stdin.isatty():
        why = "%s -- not done: no terminal to ask on; add --force to do it from a script" % question
        print("raidboard: " + why, file=sys.stderr)
        raise Exit(EXIT_UNCONFIRMED, why)
    print("%s [y/N] " % question, end="", file=sys.stderr, flush=True)
    if sys.stdin.readline().strip().lower() not in ("y", "yes"):
        print("raidboard: not done", file=sys.stderr)
        raise Exit(EXIT_UNCONFIRMED, "%s -- not done: answered no" % question)


class Session:
    """Holds the open link for one command (or for the whole interactive shell)."""

    def __init__(self, args):
        self.args = args
        self.base_args = args   # the shell's own options, under each line's (cli.merge_options)
        self._link = None
        self._target = None     # where the open link goes: (--port, --state, --controller) when opened
        self.answering = None   # of a pair, the controller the open link reaches (render.answering)
        self.password = None    # the one this session logged in with

    def link(self):
        target = tuple(getattr(self.args, k, None) for k in ("port", "state", "controller"))
        if self._link is not None and target != self._target:
            self.close()            # a shell line naming another board or controller
        if self._link is None:
            link = Link(board_url(self.args), timeout=self.args.timeout)
            try:
                if link.hello.get("login"):
                    pw = self.password or console_password(self.args)   # the shell asks once
                    link.login(pw)
                    self.password = pw
                self._check_controller(link)
            except BaseException:
                link.close()
                raise
            self._link, self._target = link, target
            self.answering = getattr(self.args, "answering", None)
        self.args.answering = self.answering
        return self._link

    def _check_controller(self, link):
        # --controller N with an endpoint named by --port or $RAIDBOARD_PORT (not read from the
        # pair's endpoints file): it must be controller N's (StorCLI's /c1 on a simplex board too)
        n = getattr(self.args, "controller", None)
        if n is None or pair_endpoints(self.args) is not None:
            return
        try:
            mine = link.request("pair_status", {}).get("controller")
        except BoardError as e:
            if e.code != "NOT_A_PAIR":
                raise
            mine = None
        if mine is None and n != 0:
            raise UsageError("there is no controller %d: this board is one controller, /c0" % n)
        self.args.answering = mine
        if mine is not None and mine != n:
            raise UsageError("--controller %d: %s is controller %d's endpoint; name controller %d's, or "
                             "the pair's state directory with --state" % (n, link.url, mine, n))

    def partner(self, n):
        """A session of its own with controller n of the pair whose endpoints file this one read
        (it logs in with the password this one used)."""
        args = copy.copy(self.args)
        args.controller, args.port = n, None
        s = Session(args)
        s.password = self.password
        return s

    def shared(self):
        """Whether the open link is on the management endpoint, which serves several clients at
        once (False without a link, or on the console)."""
        return self._link is not None and self._link.hello.get("endpoint") == "management"

    def release(self):
        """Between two commands of the shell: a link on the console is closed, as the console is one
        line with one owner (a person, a cron job may want it); one on the management endpoint is kept."""
        if not self.shared():
            self.close()

    def wait_events(self, wait):
        """Wait up to `wait` s for the open link's events (pending_events then gives them)."""
        if self._link is not None:
            ev = self._link.wait_event(wait)
            if ev is not None:
                self._link.events.appendleft(ev)

    def pending_events(self):
        """The events the open link has received and nobody has taken yet (none without a link)."""
        events = self._link.events if self._link is not None else ()
        while events:
            yield events.popleft()

    def call(self, command, params=None, timeout=None):
        return self.link().request(command, params or {}, timeout=timeout)

    def close(self):
        if self._link is not None:
            self._link.close()
            self._link = None
