"""The board definition (boards/README.md) checked on the host before the firmware starts.

Like nvimage.py this is the host's own reading of the documented format (the host never imports
firmware code); the firmware checks the same rules again at boot (firmware/hw/board.py). Every refusal
is "FILE: field: reason"; `raidboard boot` turns it into exit code 4.
"""
import json
import os
import re
import stat
from pathlib import Path

from . import nvimage
from .model import ISCSI_NAME_MAX

BUFFER_SLOT_KB = 272      # one slot of the controller buffer: four 64 KiB chunks and their trailer pages
BUFFER_MIN_KB = 3 * BUFFER_SLOT_KB   # the write-back cache's slot and the two it leaves to copy-on-write
# heap the firmware needs beside buffer and index: code, the 1 MiB SCSI buffer and sessions (2048),
# the iSCSI transfer buffers and parking places (8200), the I/O processor's ring (128)
FIRMWARE_KB = 2048 + 8200 + 128
LINK_KB = 4608           # a pair's back-end link: its send window and receive buffers
MANAGEMENT_KB = 1088      # and with a management endpoint: its 4 clients' line buffers and input
MAX_FILE = 65536          # a board file is a page of JSON; never read a device or a huge file whole
INTS = {                  # field: (low, high)
    "drive_channels": (1, 8),
    "targets_per_channel": (1, 16),
    "populated_slots": (1, 128),
    "disk_mb": (1, 1 << 24),
    "buffer_kb": (BUFFER_MIN_KB, 1 << 20),
    "nvram_kb": (16, 1024),
    "heap_kb": (4096, 1 << 21),      # the unix port allocates the whole heap at start
}
OPTIONAL_INTS = {         # field: (low, high, default)
    "iscsi_task_timeout_s": (1, 3600, 10),
}
STRINGS = ("model", "description", "iqn", "factory_nvram")
OPTIONAL_STRINGS = ("description",)
FIELDS = set(INTS) | set(OPTIONAL_INTS) | set(STRINGS) | {"console", "management", "host_ports", "controllers",
                                                           "link"}
MODELS = ("DAC960SX", "DAC960SF")
PORT_TYPES = ("SCSI", "FC")
IPV4 = re.compile(r"^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$")


class BoardFileError(Exception):
    pass


def check(path, repo):
    """The board definition at `path` as a dict, or BoardFileError("FILE: field: reason")."""
    path = Path(path)
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_FILE:
            raise BoardFileError("%s: must be a regular file of at most %d bytes" % (path, MAX_FILE))
        d = json.loads(path.read_text())
    except FileNotFoundError:
        raise BoardFileError("%s: no such file (try boards/dac960sx.json)" % path)
    except OSError as e:
        raise BoardFileError("%s: cannot read the board file (%s)" % (path, e.strerror or e))
    except (ValueError, RecursionError) as e:      # RecursionError: nested too deep
        raise BoardFileError("%s: not JSON: %s" % (path, e))

    def fail(field, reason):
        raise BoardFileError("%s: %s: %s" % (path, field, reason))

    if not isinstance(d, dict):
        fail("(file)", "must hold one JSON object")
    unknown = sorted(set(d) - FIELDS)
    if unknown:
        fail(unknown[0], "unknown field (known: %s)" % ", ".join(sorted(FIELDS)))
    _types(d, fail)
    _sizes(d, fail)
    _endpoints(d, fail)
    _factory(d, fail, path, Path(repo))
    return d


def _types(d, fail):
    for f in STRINGS:
        if f in OPTIONAL_STRINGS and f not in d:
            continue
        if not isinstance(d.get(f), str) or (f != "description" and not d[f]):
            fail(f, "missing or not a non-empty string")
    ints = dict(INTS)
    ints.update((f, (lo, hi)) for f, (lo, hi, dflt) in OPTIONAL_INTS.items() if f in d)
    for f, (lo, hi) in ints.items():
        v = d.get(f)
        if type(v) is not int:          # true/false and 1.5 are not integers
            fail(f, "missing or not an integer, got %r" % (v,))
        if not lo <= v <= hi:
            fail(f, "must be %d..%d, got %d" % (lo, hi, v))
    if d["model"] not in MODELS:
        fail("model", "must be one of %s, got %r" % (", ".join(MODELS), d["model"]))
    if not d["iqn"].startswith("iqn.") or len(d["iqn"].encode()) > ISCSI_NAME_MAX or not d["iqn"].isprintable() \
            or " " in d["iqn"]:
        fail("iqn", "must be an iSCSI qualified name (iqn.…, printable, no spaces, at most %d bytes)" % ISCSI_NAME_MAX)


def _sizes(d, fail):
    slots = d["drive_channels"] * d["targets_per_channel"]
    if d["populated_slots"] > slots:
        fail("populated_slots", "%d slots populated but only %d exist (channels x targets)"
             % (d["populated_slots"], slots))
    heap, buf = d["heap_kb"], d["buffer_kb"]
    if 2 * buf > heap:
        fail("buffer_kb", "the buffer (%d KiB) must fit in half the heap (%d KiB)" % (buf, heap))
    # the exception index takes a quarter of the heap; the firmware itself needs FIRMWARE_KB
    # (a pair: each controller's management endpoint, and the back-end link's buffers)
    front = d["controllers"][0] if isinstance(d.get("controllers"), list) and d["controllers"] else d
    extra = [(MANAGEMENT_KB, "its management endpoint")] if isinstance(front, dict) and "management" in front else []
    if "controllers" in d:
        extra.append((LINK_KB, "the back-end link"))
    need = FIRMWARE_KB + sum(k for k, _ in extra)
    if buf + heap // 4 + need > heap:
        fail("heap_kb", "%d KiB cannot hold the buffer (%d KiB), the exception index (a quarter of the heap) "
             "and %d KiB for the firmware%s: at least %d KiB"
             % (heap, buf, need, "".join(" and " + w for _, w in extra), -(-(buf + need) * 4 // 3)))
    machine = _memory_kb()
    if machine is not None and heap > machine:
        fail("heap_kb", "%d KiB is more than this machine's memory (%d KiB)" % (heap, machine))


def _memory_kb():
    # RAM and swap: a heap larger than both cannot be allocated (the unix port dies of SIGSEGV)
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        return sum(int(info[k].split()[0]) for k in ("MemTotal", "SwapTotal"))
    except (OSError, KeyError, ValueError):
        return None


def _endpoint(fail, field, value):
    if not isinstance(value, str) or value.count(":") != 1:
        fail(field, "must be \"HOST:PORT\", got %r" % (value,))
    host, port = value.split(":")
    if not (host == "localhost" or IPV4.match(host)):
        fail(field, "HOST must be an IPv4 address or localhost, got %r" % (host,))
    if not re.fullmatch(r"\d{1,5}", port) or int(port) > 65535:
        fail(field, "PORT must be 0..65535 (0 = any free port), got %r" % (port,))
    return host, int(port)


def _endpoints(d, fail):
    # a simplex board names its console and host ports at the top; a pair (FIG. 7) per controller,
    # with the back-end link's address; no two endpoints share a non-zero port
    seen = {}
    if "controllers" not in d:
        if "link" in d:
            fail("link", "only a pair (\"controllers\") has a back-end link")
        _front(d, fail, "", seen)
        return
    for f in ("console", "host_ports"):
        if f in d:
            fail(f, "a pair names it per controller (controllers[n].%s), not at the top" % f)
    cs = d["controllers"]
    if not isinstance(cs, list) or len(cs) != 2:
        fail("controllers", "must be a list of exactly two controllers")
    for n, c in enumerate(cs):
        where = "controllers[%d]" % n
        if not isinstance(c, dict) or not {"console", "host_ports"} <= set(c) <= {"console", "host_ports", "management"}:
            fail(where, "must be an object with the fields console and host_ports (and management)")
        _front(c, fail, where + ".", seen)
        for i, p in enumerate(c["host_ports"]):
            if p["portal"].endswith(":0"):
                fail("%s.host_ports[%d].portal" % (where, i), "a pair's portals need fixed ports: the survivor "
                     "of a failover listens on its partner's (port 0 is for a simplex board)")
    ep = _endpoint(fail, "link", d.get("link"))
    if ep[1] == 0:
        fail("link", "the back-end link needs a fixed port (both controllers must find it)")
    if ep in seen:
        fail("link", "%s:%d is already the %s's" % (ep[0], ep[1], seen[ep]))


def _front(d, fail, where, seen):
    # one controller's console and two host ports
    con = d.get("console")
    if not isinstance(con, str) or not con:
        fail(where + "console", "missing or not a non-empty string")
    ports = d.get("host_ports")
    if not isinstance(ports, list) or len(ports) != 2:
        fail(where + "host_ports", "must be a list of exactly two host ports")
    if con != "stdio":
        if not con.startswith("tcp:"):
            fail(where + "console", "must be \"tcp:HOST:PORT\" or \"stdio\", got %r" % (con,))
        ep = _endpoint(fail, where + "console", con[4:])
        if ep[1] and ep in seen:
            fail(where + "console", "%s:%d is already the %s's" % (ep[0], ep[1], seen[ep]))
        seen[ep] = where + "console"
    if "management" in d:
        m = d["management"]
        if not isinstance(m, str) or not m.startswith("tcp:"):
            fail(where + "management", "must be \"tcp:HOST:PORT\", got %r" % (m,))
        ep = _endpoint(fail, where + "management", m[4:])
        if ep[1] and ep in seen:
            fail(where + "management", "%s:%d is already the %s's" % (ep[0], ep[1], seen[ep]))
        seen[ep] = where + "management"
    for i, p in enumerate(ports):
        f = "%shost_ports[%d]" % (where, i)
        if not isinstance(p, dict) or set(p) != {"type", "portal"}:
            fail(f, "must be an object with exactly the fields type and portal")
        if p["type"] not in PORT_TYPES:
            fail(f + ".type", "must be one of %s, got %r" % (", ".join(PORT_TYPES), p["type"]))
        ep = _endpoint(fail, f + ".portal", p["portal"])
        if ep[1] and ep in seen:
            fail(f + ".portal", "%s:%d is already the %s's" % (ep[0], ep[1], seen[ep]))
        seen[ep] = f


def _factory(d, fail, path, repo):
    # relative: inside the repository's nvram/ folder; absolute: there or next to the board file
    name = d["factory_nvram"]
    if "\0" in name:
        fail("factory_nvram", "a path cannot hold a NUL character")
    allowed = [(repo / "nvram").resolve(), path.resolve().parent]
    target = Path(name) if os.path.isabs(name) else repo / name
    real = target.resolve()
    if not any(real.parent == a for a in (allowed if os.path.isabs(name) else allowed[:1])):
        fail("factory_nvram", "must name a file in %s/ (relative to the repository) or, as an absolute "
             "path, next to the board file; got %r" % (allowed[0], name))
    try:
        st = os.stat(real)
    except OSError as e:
        fail("factory_nvram", "%s: %s" % (name, e.strerror or e))
    if not stat.S_ISREG(st.st_mode):
        fail("factory_nvram", "%s is not a regular file" % name)
    if st.st_size not in (nvimage.BANK_LEN, nvimage.BANK_MIN):
        fail("factory_nvram", "%s is %d bytes; a factory image is one NV memory bank of %d bytes (%d in "
             "version 1)" % (name, st.st_size, nvimage.BANK_LEN, nvimage.BANK_MIN))
    if 2 * nvimage.BANK_LEN > d["nvram_kb"] * 1024:
        fail("nvram_kb", "two banks of %d bytes do not fit in %d KiB" % (nvimage.BANK_LEN, d["nvram_kb"]))
    try:
        nvimage.decode_bank(real.read_bytes())
    except (nvimage.BankError, OSError) as e:
        fail("factory_nvram", "%s is not a usable NV memory bank: %s" % (name, e))
