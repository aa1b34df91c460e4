# The CPU (FIG. 3): boots the controller from a board definition and runs the asyncio loop that
# serves the console and the host ports.
#   micropython -X heapsize=<board heap> firmware/main.py BOARD.json STATE_DIR
#       [--console tcp:HOST:PORT|stdio|pty] [--iscsi HOST:PORT,HOST:PORT] [--management tcp:HOST:PORT]
# (pty: fd 0/1 are a pty master the host made non-blocking; stdio: any blocking stdin/stdout)
# The management endpoint is the board file's "management"; a --console given here moves it to any
# free port of its host (a board moved off its file's console is a second one, which would collide
# on the file's management port), unless --management names it.
# Prints "RAIDBOARD READY {json}" on stdout once every endpoint listens; logs go to stderr.
import sys

HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
sys.path.insert(0, HERE)

import os
import json
import errno
import asyncio
from hw import board as boardmod
from lop import scheduler
from control import controller
from endpoints.console import uart as console
from endpoints.console import mgmt
from endpoints.console import access
from endpoints.iscsi import target as iscsi


def usage(msg):
    print("raidboard firmware: " + msg, file=sys.stderr)
    print("usage: main.py BOARD.json STATE_DIR [--console tcp:HOST:PORT|stdio|pty] "
          "[--iscsi HOST:PORT,HOST:PORT] [--management tcp:HOST:PORT]", file=sys.stderr)
    sys.exit(2)


def parse(argv):
    if len(argv) < 3:
        usage("a board file and a state directory are needed")
    opts = {"board": argv[1], "state": argv[2], "console": None, "iscsi": None, "management": None}
    i = 3
    while i < len(argv):
        k = argv[i]
        if k not in ("--console", "--iscsi", "--management") or i + 1 >= len(argv):
            usage("unknown or incomplete option %r" % k)
        opts[k[2:]] = argv[i + 1]
        i += 2
    return opts


def endpoint(text):
    host, port = text.rsplit(":", 1)
    return host, int(port)


def cannot_listen(what, err, option):
    # an endpoint that cannot listen (most often: another program has the port) is named with the
    # option that moves it, instead of a traceback; exit code 5 (host/README.md)
    in_use = err.args and (err.args[0] == errno.EADDRINUSE or "EADDRINUSE" in str(err.args[0]))
    print("raidboard firmware: %s cannot listen: %s; choose another address with %s (port 0: any free port)"
          % (what, "the address is in use by another program" if in_use else err, option), file=sys.stderr)
    sys.exit(5)


def management(opts, b):
    spec = opts["management"] or b.get("management")
    if spec and opts["console"] and not opts["management"]:
        spec = spec.rsplit(":", 1)[0] + ":0"
    return spec


async def boot(opts, b):
    try:
        os.mkdir(opts["state"])
    except OSError:
        pass
    root = HERE + "/.."
    ctl = controller.Controller(b, opts["state"], root)
    ready = {"model": b["model"], "iqn": ctl.iqn, "console": None, "portals": [], "management": None}
    spec = opts["console"] or b["console"]
    acc = access.Access(ctl)    # one password and count of wrong passwords for console and management
    try:
        ready["console"] = await console.start(ctl, spec, acc)
    except OSError as e:
        cannot_listen("the console (%s)" % spec, e, "--console tcp:HOST:PORT or the board file's console")
    spec = management(opts, b)
    if spec:
        try:
            ready["management"] = await mgmt.start(ctl, spec, acc)
        except ValueError as e:
            usage(str(e))
        except OSError as e:
            cannot_listen("the management endpoint (%s)" % spec, e,
                          "--management tcp:HOST:PORT or the board file's management")
    portals = opts["iscsi"].split(",") if opts["iscsi"] else [p["portal"] for p in b["host_ports"]]
    if len(portals) != 2:
        usage("--iscsi takes two portals, HOST:PORT,HOST:PORT")
    for n, p in enumerate(portals):
        host, port = endpoint(p)
        try:
            ready["portals"].append("%s:%d" % (host, await iscsi.start(ctl, n, host, port)))
        except OSError as e:
            cannot_listen("the iSCSI portal of host port %d (%s)" % (n, p), e,
                          "--iscsi HOST:PORT,HOST:PORT or the board file's host_ports[%d].portal" % n)
    asyncio.create_task(scheduler.run(ctl.lop_mgr))      # the long operations' background scheduler
    ctl.events.log("info", "BOARD READY")
    print("RAIDBOARD READY " + json.dumps(ready))
    sys.stdout.flush() if hasattr(sys.stdout, "flush") else None
    while True:
        await asyncio.sleep(3600)


def main():
    opts = parse(sys.argv)
    try:
        b = boardmod.load(opts["board"])
    except boardmod.BoardError as e:
        print("raidboard firmware: bad board definition: %s" % e, file=sys.stderr)
        sys.exit(3)
    try:
        asyncio.run(boot(opts, b))
    except KeyboardInterrupt:
        # SIGINT is how the host stops a board: every acknowledged write is already on disk
        print("raidboard firmware: stopped", file=sys.stderr)


main()
