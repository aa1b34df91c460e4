"""A Linux guest as a real host of the board: QEMU (TCG) attaches LUNs through its libiscsi block
driver as `scsi-block` devices, so the guest kernel's own SCSI stack (sd, ext4, later dm-multipath
with scsi_dh_alua) sends its own CDBs to the board.

The kit — a Debian kernel (`linux-image-amd64`: the cloud flavour has no SCSI device handlers, so
no scsi_dh_alua), its modules and busybox-static — comes from `apt-get download` once into a cache
(`$RAIDBOARD_GUEST_CACHE`, default `~/.cache/raidboard-guest`). Each guest gets an initramfs built
here: busybox, the modules asked for with their dependencies, host tools (e.g. mke2fs) with the
shared libraries ldd names, an /init and the scenario script.

The scenario is a shell script run by /init with these functions (see INIT):
  `disk N`        the /dev node of the N-th URL (SCSI target N of the guest's virtio-scsi bus)
  `step TEXT`     prints `GUEST-STEP TEXT`
  `info KEY VAL`  prints `GUEST-INFO KEY VAL` (the host collects them in `Guest.info`)
  `host NAME`     prints `GUEST-WAIT NAME` and waits until the host answers (`Guest.go`)
  `fail TEXT`     prints `GUEST-FAIL TEXT` and ends the scenario
It runs under `set -e`; /init then prints `GUEST-EXIT <status>` and powers the guest off.

On the host side: `kit = need_guest(tools)`, then `g = Guest(kit, workdir, urls, script, initiator,
modules, tools)`; `g.wait(NAME)` … `g.go()` around what the host does for the guest, `g.attach(url)`
to plug in another LUN, `g.finish()` for the scenario's exit status, `g.info`, `g.close()`.
A multipath guest adds `("dm_multipath", "dm_round_robin", "scsi_dh_alua")` to DISK_MODULES and
`"dmsetup"` to the tools, and gives one URL per path (`disk N` for each); scsi_dh_alua first, so
that it attaches to each disk as the disk is scanned (tests/test_guest_linux_pair.py).

`$RAIDBOARD_GUEST_QEMU_ARGS` is added to QEMU's command line, e.g. to see every CDB the guest
sends: `-D /tmp/trace.log -trace scsi_req_parsed -trace scsi_req_build_sense`. Each guest's
console is kept in its work directory as console.log.
"""
import fcntl
import gzip
import json
import os
import queue
import re
import shutil
import socket
import struct
import subprocess
import tarfile
import tempfile
import threading
from pathlib import Path

import pytest

from harness import in_ci, need_tool

CACHE = Path(os.environ.get("RAIDBOARD_GUEST_CACHE", Path.home() / ".cache" / "raidboard-guest"))
KERNEL_PACKAGE = "linux-image-amd64"
# every module a guest of these tests loads; a guest names the ones it needs (with their dependencies)
KIT_MODULES = ("virtio_pci", "virtio_scsi", "sd_mod", "crc32c_generic", "ext4",
               "dm_multipath", "dm_round_robin", "dm_service_time", "scsi_dh_alua")
DISK_MODULES = ("virtio_pci", "virtio_scsi", "sd_mod", "crc32c_generic", "ext4")
DISK_TOOLS = ("mke2fs", "e2fsck")
TOOL_DIRS = ("/usr/sbin", "/sbin", "/usr/bin", "/bin")

INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/usr/sbin:/usr/bin:/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
ln -s /proc/mounts /etc/mtab
stty -echo < /dev/console
for m in $(cat /modules/order); do insmod /modules/$m.ko || echo "GUEST-FAIL insmod $m"; done
# this busybox runs its own applets before PATH: the host's tools (e.g. mke2fs) go by function
for t in $(ls /usr/sbin); do eval "$t() { /usr/sbin/$t \"\$@\"; }"; done

disk() {
    for b in /sys/bus/scsi/devices/*:0:$1:0/block/*; do [ -e "$b" ] && echo /dev/${b##*/}; done
}
# the SCSI scan of a target runs on its own (at boot, and after the host attaches one)
wait_disk() {
    t=0
    until [ -b "$(disk $1)" ]; do
        t=$((t + 1))
        [ $t -le 600 ] || fail "disk $1 never appeared"
        sleep 0.1
    done
}
step() { echo "GUEST-STEP $*"; }
info() { k=$1; shift; echo "GUEST-INFO $k $*"; }
fail() { echo "GUEST-FAIL $*"; exit 1; }
host() {
    echo "GUEST-WAIT $1"
    read -r answer < /dev/console
    [ "$answer" = go ] || fail "host answered '$answer' to $1"
}

(
    set -e
    n=0
    while [ $n -lt DISKS ]; do wait_disk $n; n=$((n + 1)); done
    step "booted $(uname -r)"
    . /scenario
)
echo "GUEST-EXIT $?"
poweroff -f
"""


class GuestUnavailable(Exception):
    """What this machine lacks to run a guest (a tool, the package mirror)."""


def need_guest(tools=DISK_TOOLS):
    """The kit; skips locally (fails under CI=true) when QEMU, the host `tools` the guests will
    carry or the packages cannot be had."""
    need_tool("qemu-system-x86_64", "qemu-system-x86")
    need_tool("dpkg-deb", "dpkg")
    for tool in tools:
        if not find_tool(tool):
            unavailable("no %s on this host to put in the guest" % tool)
    if not qemu_has_iscsi():
        unavailable("QEMU without its iSCSI block driver (Debian qemu-block-extra)")
    try:
        return Kit.fetch(CACHE)
    except GuestUnavailable as e:
        unavailable(str(e))


def unavailable(reason):
    if in_ci():
        pytest.fail("Linux guest: %s; .ci/run must provide it" % reason)
    pytest.skip("Linux guest: %s" % reason)


def qemu_has_iscsi():
    out = subprocess.run(["qemu-system-x86_64", "-drive", "file=iscsi://127.0.0.1:1/x/0,if=none,format=raw",
                          "-machine", "none", "-display", "none", "-S"],
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    return "Unknown protocol" not in out.stderr and "Unknown driver" not in out.stderr


def find_tool(name):
    for d in TOOL_DIRS:
        p = Path(d) / name
        if p.is_file() and os.access(p, os.X_OK):
            return p
    return None


# ------------------------------------------------------------------ the kit
class Kit:
    """vmlinuz, busybox and the kernel modules of KIT_MODULES (with their dependencies) in `dir`."""

    def __init__(self, dir):
        self.dir = Path(dir)
        self.meta = json.loads((self.dir / "kit.json").read_text())
        self.kernel = self.dir / "vmlinuz"
        self.busybox = self.dir / "busybox"

    @classmethod
    def fetch(cls, cache):
        """The kit in `cache`/kit, downloaded and laid out first if it is missing or lacks a
        module of KIT_MODULES; one test process at a time (the others wait on a lock, then use it)."""
        cache = Path(cache)
        cache.mkdir(parents=True, exist_ok=True)
        with open(cache / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            kit = cache / "kit"
            if not (kit / "kit.json").exists() or not set(KIT_MODULES) <= set(cls(kit).meta["modules"]):
                with tempfile.TemporaryDirectory(dir=cache) as tmp:
                    build_kit(Path(tmp))
                    shutil.rmtree(kit, ignore_errors=True)
                    os.rename(Path(tmp) / "kit", kit)
        return cls(kit)

    def load_order(self, wanted):
        return dependency_order(self.meta["modules"], wanted)


def dependency_order(deps, wanted):
    """The modules in `wanted` and all they depend on ({module: [its dependencies]}), each after
    its dependencies."""
    order = []

    def visit(name):
        if name not in deps:
            raise GuestUnavailable("no kernel module %s (a guest's modules must be in KIT_MODULES)" % name)
        if name not in order:
            for d in deps[name]:
                visit(d)
            order.append(name)
    for name in wanted:
        visit(name)
    return order


def apt_download(dir, package):
    p = subprocess.run(["apt-get", "download", package], cwd=dir, capture_output=True, text=True,
                       timeout=600, stdin=subprocess.DEVNULL)
    debs = sorted(Path(dir).glob(package + "_*.deb"))
    if p.returncode != 0 or not debs:
        raise GuestUnavailable("apt-get download %s failed (no package mirror?): %s"
                               % (package, (p.stderr or p.stdout).strip()[-300:]))
    return debs[-1]


def build_kit(tmp):
    """Download the packages into `tmp` and lay the kit out in `tmp`/kit."""
    if not shutil.which("apt-get"):
        raise GuestUnavailable("no apt-get to fetch the kernel and busybox")
    meta = apt_download(tmp, KERNEL_PACKAGE)
    depends = subprocess.run(["dpkg-deb", "-f", str(meta), "Depends"], capture_output=True, text=True,
                             check=True).stdout
    versioned = re.match(r"\s*(linux-image-[^\s,(]+)", depends).group(1)
    kernel_deb = apt_download(tmp, versioned)
    busybox_deb = apt_download(tmp, "busybox-static")
    out = tmp / "kit"
    (out / "modules").mkdir(parents=True)
    graph = module_graph(kernel_deb)
    deps = {n: d for n, (_, d) in graph.items()}
    wanted = dependency_order(deps, KIT_MODULES)
    release = extract_kernel(kernel_deb, out, {graph[n][0]: n for n in wanted})
    subprocess.run(["dpkg-deb", "-x", str(busybox_deb), str(tmp / "bb")], check=True)
    shutil.copy(tmp / "bb" / "bin" / "busybox", out / "busybox")
    (out / "kit.json").write_text(json.dumps({
        "package": versioned, "release": release,
        "modules": {n: deps[n] for n in sorted(wanted)}}, indent=1))


def deb_members(deb):
    """(member, file object) for each regular file of a .deb's data, streamed."""
    p = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    try:
        with tarfile.open(fileobj=p.stdout, mode="r|") as tar:
            for m in tar:
                if m.isfile():
                    yield m, tar.extractfile(m)
    finally:
        p.stdout.close()
        p.wait()


def module_name(path):
    return Path(path).name[:-len(".ko")].replace("-", "_")


def module_graph(kernel_deb):
    """{module: (member path, [modules it depends on])} from each .ko's .modinfo (the package
    ships no modules.dep: depmod makes it when installed)."""
    graph = {}
    for m, f in deb_members(kernel_deb):
        if m.name.endswith(".ko"):
            info = modinfo(f.read())
            graph[module_name(m.name)] = (m.name, [module_name(d + ".ko") for d in
                                                   info.get("depends", "").split(",") if d])
    return graph


def extract_kernel(kernel_deb, out, members):
    """vmlinuz and the modules named by `members` ({member path: module}) into `out`; the release."""
    release = None
    for m, f in deb_members(kernel_deb):
        if re.match(r"\./boot/vmlinuz-", m.name):
            release = m.name.split("vmlinuz-", 1)[1]
            (out / "vmlinuz").write_bytes(f.read())
        elif m.name in members:
            (out / "modules" / (members[m.name] + ".ko")).write_bytes(f.read())
    return release


def modinfo(elf):
    """The key=value strings of a kernel module's .modinfo section (ELF64, little-endian)."""
    shoff, = struct.unpack_from("<Q", elf, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x3A)

    def section(i):
        name, _, _, _, off, size = struct.unpack_from("<IIQQQQ", elf, shoff + i * shentsize)
        return name, off, size
    _, names, _ = section(shstrndx)
    for i in range(shnum):
        name, off, size = section(i)
        if elf[names + name:elf.index(b"\0", names + name)] == b".modinfo":
            pairs = (kv.split(b"=", 1) for kv in elf[off:off + size].split(b"\0") if b"=" in kv)
            return {k.decode(): v.decode() for k, v in pairs}
    return {}


# ------------------------------------------------------------------ the initramfs
def cpio_newc(entries):
    """A cpio archive (newc) of (path, mode, body, rdev) entries."""
    out = bytearray()
    for ino, (name, mode, body, rdev) in enumerate(list(entries) + [("TRAILER!!!", 0, b"", 0)], 1):
        path = name.encode() + b"\0"
        fields = (ino, mode, 0, 0, 1, 0, len(body), 0, 0, rdev >> 8, rdev & 0xFF, len(path), 0)
        out += b"070701" + b"".join(b"%08X" % v for v in fields) + path
        out += bytes(-len(out) % 4) + body
        out += bytes(-len(out) % 4)
    return bytes(out)


def tool_files(tools):
    """{guest path: host file} for the host executables `tools` and the shared libraries they load."""
    files = {}
    for name in tools:
        exe = find_tool(name)
        files["/usr/sbin/" + name] = exe
        ldd = subprocess.run(["ldd", str(exe)], capture_output=True, text=True, check=True).stdout
        for lib in re.findall(r"(/\S+) \(0x", ldd):
            files[lib] = Path(lib)
    return files


def initramfs(kit, script, disks, modules, tools):
    order = kit.load_order(modules)
    dirs = ["/bin", "/dev", "/etc", "/proc", "/sys", "/mnt", "/tmp", "/modules", "/usr", "/usr/bin",
            "/usr/sbin"]
    files = {"/bin/busybox": (0o100755, kit.busybox.read_bytes()),
             "/init": (0o100755, INIT.replace("DISKS", str(disks)).encode()),
             "/scenario": (0o100644, script.encode()),
             "/modules/order": (0o100644, " ".join(order).encode())}
    for m in order:
        files["/modules/%s.ko" % m] = (0o100644, (kit.dir / "modules" / (m + ".ko")).read_bytes())
    for path, host in tool_files(tools).items():
        files[path] = (0o100755, host.read_bytes())
    for path in files:
        parent = str(Path(path).parent)
        while parent != "/" and parent not in dirs:
            dirs.append(parent)
            parent = str(Path(parent).parent)
    entries = [(d.lstrip("/"), 0o40755, b"", 0) for d in sorted(dirs)]
    entries.append(("dev/console", 0o20600, b"", (5 << 8) | 1))
    entries += [(p.lstrip("/"), mode, body) + (0,) for p, (mode, body) in sorted(files.items())]
    return gzip.compress(cpio_newc(entries), compresslevel=1)


# ------------------------------------------------------------------ the guest
class GuestError(AssertionError):
    pass


class Qmp:
    """QEMU's machine protocol on one end of a socket pair (the other end is QEMU's monitor)."""

    def __init__(self, sock, timeout=300):
        sock.settimeout(timeout)
        self.f = sock.makefile("rwb")
        self.reply()   # the greeting
        self.call("qmp_capabilities")

    def reply(self):
        while True:
            line = self.f.readline()
            if not line:
                raise GuestError("QEMU closed its monitor")
            msg = json.loads(line)
            if "event" not in msg:
                return msg

    def call(self, command, **arguments):
        self.f.write(json.dumps({"execute": command, "arguments": arguments}).encode() + b"\n")
        self.f.flush()
        msg = self.reply()
        if "error" in msg:
            raise GuestError("QEMU %s: %s" % (command, msg["error"]["desc"]))
        return msg["return"]


class Guest:
    """One QEMU guest. Each attached URL becomes the next SCSI target of its virtio-scsi bus
    (`disk N` in the scenario); the first `urls` are attached before the guest runs, more with
    `attach` (QEMU opens a LUN only if TEST UNIT READY passes: a backup LUN is attached after the
    initiate). The console is read line by line by a thread; `info` collects the GUEST-INFO facts."""

    def __init__(self, kit, workdir, urls, script, initiator, modules=DISK_MODULES, tools=DISK_TOOLS,
                 memory_mb=512):
        self.workdir = Path(workdir)
        self.console = []
        self.info = {}
        self.lines = queue.Queue()
        self.disks = 0
        initrd = self.workdir / "initrd.gz"
        initrd.write_bytes(initramfs(kit, script, len(urls), modules, tools))
        self.monitor, theirs = socket.socketpair()
        cmd = ["qemu-system-x86_64", "-nodefaults", "-no-user-config", "-accel", "tcg", "-smp", "1",
               "-m", str(memory_mb), "-display", "none", "-no-reboot", "-S",
               "-kernel", str(kit.kernel), "-initrd", str(initrd),
               "-append", "console=ttyS0 quiet panic=-1",
               "-chardev", "stdio,id=con,signal=off", "-serial", "chardev:con",
               "-chardev", "socket,id=qmp,fd=%d" % theirs.fileno(), "-mon", "chardev=qmp,mode=control",
               "-iscsi", "initiator-name=" + initiator,
               "-device", "virtio-scsi-pci,id=scsi0"]
        cmd += os.environ.get("RAIDBOARD_GUEST_QEMU_ARGS", "").split()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, pass_fds=[theirs.fileno()])
        theirs.close()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        try:
            self.qmp = Qmp(self.monitor)
            for url in urls:
                self.attach(url)
            self.qmp.call("cont")
        except (GuestError, OSError) as e:
            self.close()
            raise GuestError("QEMU did not start: %s; its output:\n%s" % (e, self.tail()))

    def attach(self, url, readonly=False):
        """Open `url` in QEMU and plug it in as the next SCSI target; its number (`disk N`).
        A LUN whose MODE SENSE says write-protected needs `readonly` (QEMU opens it read-only
        and then answers a write with DATA PROTECT itself, never passing it to the board)."""
        n = self.disks
        out = self.qmp.call("human-monitor-command", **{"command-line": (
            "drive_add 0 file=%s,if=none,id=d%d,format=raw,cache=none,readonly=%s"
            % (url, n, "on" if readonly else "off"))})
        if out.strip() != "OK":
            raise GuestError("QEMU could not open %s: %s" % (url, out.strip()))
        self.qmp.call("device_add", driver="scsi-block", drive="d%d" % n, bus="scsi0.0", channel=0,
                      **{"scsi-id": n, "lun": 0, "id": "s%d" % n})
        self.disks += 1
        return n

    def _read(self):
        with open(self.workdir / "console.log", "wb") as log:
            for raw in self.proc.stdout:
                log.write(raw)
                log.flush()
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                self.console.append(line)
                self.lines.put(line)
        self.lines.put(None)

    def tail(self, n=40):
        return "\n".join(self.console[-n:])

    def expect(self, kind, name="", timeout=300):
        """Wait for `GUEST-<kind> <name>…` and return the rest of its line; a GUEST-FAIL, an end of
        the guest or a timeout before it raises GuestError with the console's tail."""
        want = "GUEST-%s %s" % (kind, name)
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise GuestError("no %r within %d s; console:\n%s" % (want, timeout, self.tail()))
            if line is None:
                raise GuestError("guest ended before %r; console:\n%s" % (want, self.tail()))
            at = line.find("GUEST-")
            if at < 0:
                continue
            marker = line[at:]
            if marker.startswith("GUEST-INFO "):
                key, _, value = marker[len("GUEST-INFO "):].partition(" ")
                self.info[key] = value
            if marker.startswith("GUEST-FAIL") or (marker.startswith("GUEST-EXIT") and kind != "EXIT"):
                raise GuestError("guest failed before %r; console:\n%s" % (want, self.tail()))
            if marker.startswith(want):
                return marker[len(want):].strip()

    def wait(self, name, timeout=300):
        """Wait until the scenario asks the host for `name` (its `host NAME`)."""
        self.expect("WAIT", name, timeout)

    def go(self):
        self.proc.stdin.write(b"go\n")
        self.proc.stdin.flush()

    def finish(self, timeout=300):
        """Wait for the scenario's end; its exit status (0: every command of it succeeded)."""
        status = int(self.expect("EXIT", "", timeout))
        self.proc.wait(timeout=timeout)
        return status

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.reader.join(timeout=10)
        for f in (self.proc.stdin, self.proc.stdout, self.monitor):
            f.close()
