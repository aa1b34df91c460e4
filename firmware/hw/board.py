# Board definition (boards/*.json): what hardware the firmware runs on.
# A bad file is refused with the file, the field and the problem named, before anything else starts.
import json


class BoardError(Exception):
    pass


# field: (type, low, high, required)
_INTS = {
    "drive_channels": (1, 8),
    "targets_per_channel": (1, 16),
    "populated_slots": (1, 128),
    "disk_mb": (1, 1 << 24),       # up to 16 TiB per disk (sparse files)
    "buffer_kb": (816, 1 << 20),    # three buffer slots of 272 KiB: the cache's and two for copy-on-write
    "nvram_kb": (16, 1024),
    "heap_kb": (4096, 1 << 21),
}
_PORT_TYPES = ("SCSI", "FC")
LINK_KB = 4608              # a pair's back-end link: its 2 MiB send window and receive buffers
MANAGEMENT_KB = 1088        # the management endpoint's 4 clients: a 260 KiB line buffer and 4 KiB of input each
ISCSI_KB = 8200             # the iSCSI transfer buffers (4 of 1 MiB) and parking places (64 of 64 KiB)
IOP_KB = 128                # the I/O processor thread's ring of chains (hw/chains.py: 114 KiB)


def _fail(path, field, problem):
    raise BoardError("%s: field '%s': %s" % (path, field, problem))


def _endpoint(path, field, value):
    # "HOST:PORT" with PORT 0..65535 (0 = ephemeral)
    if not isinstance(value, str) or value.count(":") != 1:
        _fail(path, field, "must be \"HOST:PORT\", got %r" % (value,))
    host, port = value.split(":")
    try:
        p = int(port)
    except ValueError:
        p = -1
    if not host or not 0 <= p <= 65535:
        _fail(path, field, "must be \"HOST:PORT\" with PORT 0..65535, got %r" % (value,))
    return host, p


def _front(path, d, where):
    # one controller's console and two host ports (the board's, or controllers[n]'s of a pair)
    con = d.get("console")
    if not isinstance(con, str) or not (con == "stdio" or con.startswith("tcp:")):
        _fail(path, where + "console", "must be \"tcp:HOST:PORT\" or \"stdio\"")
    if con.startswith("tcp:"):
        _endpoint(path, where + "console", con[4:])
    if "management" in d:
        m = d["management"]
        if not isinstance(m, str) or not m.startswith("tcp:"):
            _fail(path, where + "management", "must be \"tcp:HOST:PORT\"")
        _endpoint(path, where + "management", m[4:])
    ports = d.get("host_ports")
    if not isinstance(ports, list) or len(ports) != 2:
        _fail(path, where + "host_ports", "must be a list of exactly two host ports")
    for i, p in enumerate(ports):
        f = "%shost_ports[%d]" % (where, i)
        if not isinstance(p, dict):
            _fail(path, f, "must be an object {type, portal}")
        if p.get("type") not in _PORT_TYPES:
            _fail(path, f + ".type", "must be one of %s, got %r" % (", ".join(_PORT_TYPES), p.get("type")))
        _endpoint(path, f + ".portal", p.get("portal"))


def _pair(path, d):
    # a dual-active pair (FIG. 7): two controllers, each its console and host ports, one link
    if "console" in d or "host_ports" in d:
        _fail(path, "controllers", "a pair names its consoles and host ports per controller, not at the top")
    cs = d["controllers"]
    if not isinstance(cs, list) or len(cs) != 2:
        _fail(path, "controllers", "must be a list of exactly two controllers")
    for n, c in enumerate(cs):
        if not isinstance(c, dict):
            _fail(path, "controllers[%d]" % n, "must be an object {console, host_ports}")
        _front(path, c, "controllers[%d]." % n)
        for i, p in enumerate(c["host_ports"]):
            if _endpoint(path, "portal", p["portal"])[1] == 0:
                _fail(path, "controllers[%d].host_ports[%d].portal" % (n, i),
                      "a pair's portals need fixed ports: the survivor of a failover listens on its partner's")
    if _endpoint(path, "link", d.get("link"))[1] == 0:
        _fail(path, "link", "the back-end link needs a fixed port")


def controller(d, n):
    """The board as controller n of it sees it: its own console and host ports at the top, and
    `controller` (n, None for a simplex board) and `partner_ports` (the other controller's)."""
    cs = d.get("controllers")
    if cs is None:
        if n is not None:
            raise BoardError("controller %d: the board has one controller (no \"controllers\" field)" % n)
        d["controller"] = None
        return d
    if n not in (0, 1):
        raise BoardError("%s: a pair has controllers 0 and 1: boot one with --controller 0 or 1"
                         % ("no --controller given" if n is None else "--controller is not 0 or 1"))
    d["console"] = cs[n]["console"]
    d["host_ports"] = cs[n]["host_ports"]
    if "management" in cs[n]:
        d["management"] = cs[n]["management"]
    d["partner_ports"] = cs[1 - n]["host_ports"]
    d["controller"] = n
    return d


def validate(d, path="board"):
    if not isinstance(d, dict):
        raise BoardError("%s: the file must hold one JSON object" % path)
    for f in ("model", "iqn", "factory_nvram"):
        if not isinstance(d.get(f), str) or not d.get(f):
            _fail(path, f, "missing or not a non-empty string")
    for f, (lo, hi) in _INTS.items():
        v = d.get(f)
        if type(v) is not int:
            _fail(path, f, "missing or not an integer")
        if not lo <= v <= hi:
            _fail(path, f, "must be %d..%d, got %d" % (lo, hi, v))
    if d["populated_slots"] > d["drive_channels"] * d["targets_per_channel"]:
        _fail(path, "populated_slots", "%d slots populated but only %d exist (channels x targets)"
              % (d["populated_slots"], d["drive_channels"] * d["targets_per_channel"]))
    if not d["iqn"].startswith("iqn.") or len(d["iqn"]) > 223:
        _fail(path, "iqn", "must be an iSCSI qualified name (iqn.…, at most 223 characters)")
    if "controllers" in d:
        _pair(path, d)
    else:
        _front(path, d, "")
    t = d.get("iscsi_task_timeout_s", 10)
    if type(t) is not int or not 1 <= t <= 3600:
        _fail(path, "iscsi_task_timeout_s", "must be an integer 1..3600 (seconds), got %r" % (t,))
    # the buffer holds at least a few chunks of the largest size the firmware uses (1 MiB)
    if d["buffer_kb"] * 1024 > d["heap_kb"] * 1024 // 2:
        _fail(path, "buffer_kb", "the buffer (%d KiB) must fit in half the heap (%d KiB)"
              % (d["buffer_kb"], d["heap_kb"]))
    # beside the buffer and the exception index (a quarter of the heap) the firmware needs 2 MiB,
    # the iSCSI transfer buffers and parking places ISCSI_KB, the I/O processor's ring IOP_KB,
    # and the management endpoint's clients MANAGEMENT_KB more (a pair: each controller's
    # management endpoint and the back-end link's buffers)
    front = d["controllers"][0] if "controllers" in d else d
    need = 2048 + ISCSI_KB + IOP_KB + (MANAGEMENT_KB if "management" in front else 0) + (LINK_KB if "controllers" in d else 0)
    if d["buffer_kb"] + d["heap_kb"] // 4 + need > d["heap_kb"]:
        _fail(path, "heap_kb", "%d KiB cannot hold the buffer, the exception index and %d KiB for the firmware"
              % (d["heap_kb"], need))
    return d


def load(path):
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise BoardError("%s: cannot read the board file (%s)" % (path, e))
    try:
        d = json.loads(text)
    except ValueError as e:
        raise BoardError("%s: not valid JSON (%s)" % (path, e))
    return validate(d, path)


def slot_names(d):
    # slots are numbered channel-major; a slot's name is "channel:target" as on the real board
    t = d["targets_per_channel"]
    return ["%d:%d" % (i // t, i % t) for i in range(d["populated_slots"])]
