# The CPU (FIG. 3): boots the controller from a board definition and runs the asyncio loop that
# serves the console and the host ports.
#   micropython -X heapsize=<board heap> firmware/main.py BOARD.json STATE_DIR
#       [--console tcp:HOST:PORT|stdio|pty] [--iscsi HOST:PORT,HOST:PORT] [--management tcp:HOST:PORT]
#       [--controller N]
# (--controller: which controller of a dual-active pair this process is; control/pair.md)
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
from endpoints.link import link as linkmod
from endpoints import ioready


LINK_WINDOW = 2 << 20      # the link's send window: a forwarded 1 MiB write and what follows it
HEAP_MS = 100              # how often the heap's holes are looked for (hw/heap.py)


def usage(msg):
    print("raidboard firmware: " + msg, file=sys.stderr)
    print("usage: main.py BOARD.json STATE_DIR [--console tcp:HOST:PORT|stdio|pty] "
          "[--iscsi HOST:PORT,HOST:PORT] [--management tcp:HOST:PORT] [--controller 0|1]", file=sys.stderr)
    sys.exit(2)


def parse(argv):
    if len(argv) < 3:
        usage("a board file and a state directory are needed")
    opts = {"board": argv[1], "state": argv[2], "console": None, "iscsi": None, "management": None,
            "controller": None}
    i = 3
    while i < len(argv):
        k = argv[i]
        if k not in ("--console", "--iscsi", "--management", "--controller") or i + 1 >= len(argv):
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


class Ports:
    # the host ports this process listens on: its own (controller `home` = its number, 0 when
    # simplex) and, after a failover, its partner's at the same addresses (control/pair.md)
    def __init__(self, ctl, b, portals, ready):
        self.ctl, self.ready = ctl, ready
        self.open = set()          # the controllers whose ports listen here
        me = ctl.number or 0
        self.addrs = {me: portals}
        if ctl.number is not None:
            self.addrs[1 - me] = [p["portal"] for p in b["partner_ports"]]

    async def open_ports(self, home):
        if home in self.open:
            return
        self.open.add(home)
        for n, p in enumerate(self.addrs[home]):
            host, port = endpoint(p)
            got = await self.listen(home, n, host, port)
            if got is not None and got not in self.ready["portals"]:
                self.ready["portals"].append(got)

    async def listen(self, home, n, host, port):
        # the partner's portal may still be held for a moment by its dying process: retried for 2 s
        for attempt in range(100):
            try:
                return "%s:%d" % (host, await iscsi.start(self.ctl, 2 * home + n, host, port))
            except OSError as e:
                own = home == (self.ctl.number or 0)
                if own and (self.ctl.pair is None or attempt == 99):
                    cannot_listen("the iSCSI portal of host port %d (%s)" % (n, "%s:%d" % (host, port)), e,
                                  "--iscsi HOST:PORT,HOST:PORT or the board file's host_ports[%d].portal" % n)
                if attempt == 99:
                    self.ctl.events.log("error", "PAIR: CANNOT LISTEN ON PORTAL %s:%d: %s" % (host, port, e))
                    return None
                await asyncio.sleep_ms(20)

    async def close_ports(self, home):
        self.open.discard(home)
        await iscsi.close_ports(self.ctl, (2 * home, 2 * home + 1))


async def join_pair(ctl, b, ports):
    # the back-end link to the partner, the disks' heartbeat, then who serves what (control/pair.md)
    host, port = endpoint(b["link"])
    link = linkmod.Link(ctl.number, (host, port), ctl.pair, ctl.events, window_bytes=LINK_WINDOW)
    ctl.pair.attach(link, linkmod.LinkDown, ports)
    link.start()
    asyncio.create_task(ctl.pair.heartbeat())
    await ctl.pair.join()


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
    ports = Ports(ctl, b, portals, ready)
    if ctl.pair is None:
        await ports.open_ports(0)
    else:
        await join_pair(ctl, b, ports)
    ready["controller"] = ctl.number
    asyncio.create_task(scheduler.run(ctl.lop_mgr))      # the long operations' background scheduler
    asyncio.create_task(keep_heap(ctl.heap))
    ctl.events.log("info", "BOARD READY")
    print("RAIDBOARD READY " + json.dumps(ready))
    sys.stdout.flush() if hasattr(sys.stdout, "flush") else None
    while True:
        await asyncio.sleep(3600)


async def keep_heap(plug):
    # the allocator's search starts where the free space begins, after boot, after a collection
    # and after anything freed low in the heap (hw/heap.py): 9 blocks a run when nothing is due
    while True:
        try:
            plug.run()
        except MemoryError:
            pass                    # (a full heap has no holes to fill: the next run may)
        await asyncio.sleep_ms(HEAP_MS)


def main():
    opts = parse(sys.argv)
    try:
        b = boardmod.load(opts["board"])
        n = opts["controller"]
        boardmod.controller(b, None if n is None else int(n) if n.isdigit() else -1)
    except boardmod.BoardError as e:
        print("raidboard firmware: bad board definition: %s" % e, file=sys.stderr)
        sys.exit(3)
    ioready.poll_before_sleep()
    try:
        asyncio.run(boot(opts, b))
    except KeyboardInterrupt:
        # SIGINT is how the host stops a board: every acknowledged write is already on disk
        print("raidboard firmware: stopped", file=sys.stderr)


main()
