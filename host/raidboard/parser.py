"""The command line's grammar: the argparse tree of every command with its help text and examples.
Options are never abbreviated, and a usage error is a UsageError (exit 2), not argparse's exit."""
import argparse

from . import access, diagnostics, disks, drives, lifecycle, lops, pairs, snapshot
from .errors import CHAP_SECRET_ENV, MASK_SECRET_ENV, PASSWORD_ENV, UsageError
from .model import CHAP_SECRET_MAX, CHAP_SECRET_MIN, CHAP_USER_MAX, ISCSI_NAME_MAX


EPILOG = """\
examples:
  raidboard boot boards/dac960sx.json state --detach      start the default board in ./state
  raidboard status                                         drives, LUN map, snapshot, events
  raidboard sd create --raid 5 --slots 0,1,2,3 --mb 512    a RAID 5 system drive
  raidboard log set sd1                                    make sd1 the log system drive
  raidboard lun map 0/1 sd1                                host port 0, LUN 1 -> sd1
  raidboard snapshot start sd0 && raidboard snapshot watch
  raidboard cdb 0/0 25000000000000000000                   READ CAPACITY(10) on port 0 LUN 0
  raidboard --json sd list | jq '.Controllers[0]["Response Data"]'   any answer as JSON
  raidboard /c0/vall show J                                StorCLI's paths (/c0/eC/sT: C is the drive channel)
  raidboard console                                        the VT-100 console (Ctrl-] detaches)
  raidboard shell                                          interactive, with completion
  raidboard stop
  raidboard boot boards/dac960sx-pair.json pair --detach   a dual-active pair (two controllers)
  raidboard --state pair pair status                       both controllers, who serves which drive
  raidboard --state pair pair fail 0                       fail one; its partner takes over

The board is found by --port (socket://127.0.0.1:PORT or /dev/pts/N), else by --state DIR
(the endpoints a detached boot left there), else $RAIDBOARD_PORT, else ./state if its board runs;
with none of these the CLI refuses (exit 3) rather than guess a port. A board found by its state
directory is reached at its management endpoint, so scripts run while a person is on the console.

exit codes: 0 ok, 1 refused by the board, 2 usage, 3 cannot reach the board, 4 boot failed,
5 protocol error, 6 SCSI status not GOOD (cdb), 7 no valid NV memory bank (nvram dump),
8 not confirmed: a command that destroys data asks "[y/N]" on a terminal and needs --force in a
script, 9 snapshot start: the host's --freeze or --thaw command failed, 130 Ctrl-C.
"""


PAIR_HELP = """\
examples:
  raidboard pair status                     both controllers, the link, who serves which drive
  raidboard --json pair status
  raidboard pair fail 0                     stop controller 0 (asks); controller 1 takes over
  raidboard pair fail 1 --force             the same from a script
  raidboard pair failback                   with failback manual: hand the drives back now
  raidboard pair link down --force          cut the back-end link: controller 1 stands down
  raidboard pair link up

Restart a failed controller beside its partner:
  raidboard boot boards/dac960sx-pair.json STATE --controller N --detach
"""


LOP_NAMES = ("copy", "resync", "rebuild", "init", "check", "rate")   # lop_start's op (firmware/lop/README.md)
LOP_OPERATIONS = """\
operations (OP), as the firmware names them:
  copy     the active snapshot's point-in-time image of SD (its primary, or the log drive) onto
           --to SD; the destination answers BUSY meanwhile, and is incomplete if the copy stops
  resync   as copy, but only what changed since the last copy onto --to SD (incremental re-sync)
  rebuild  rebuild SD's replaced disk; --arg standby=SLOT first puts an unused disk in for a failed one
  init     initialize SD: zeroed with full-row writes, parity consistent (its data is lost)
  check    consistency check of SD's parity or mirrors; --arg fix=true rewrites what differs
  rate     (SD is ignored) --arg rate=1..100: the share of time every operation gets
"""
INTERVAL_HELP = "with --wait: seconds between two progress samples (default 0.5)"


class Parser(argparse.ArgumentParser):
    # no abbreviated options: `--password SECRET` must not pass for `--password-file`
    def __init__(self, *a, **kw):
        kw.setdefault("allow_abbrev", False)
        super().__init__(*a, **kw)
        self.commands = {}      # name -> Parser of each command or group under this one

    def add_subparsers(self, **kw):
        sub = super().add_subparsers(**kw)
        self.commands = sub.choices
        return sub

    @property
    def arguments(self):
        """Every option and positional of this command (the shell completes them)."""
        return self._actions

    def error(self, message):
        raise UsageError("%s\n(try `%s --help`)" % (message, self.prog))


def _common(p, top=False):
    d = None if top else argparse.SUPPRESS
    g = p.add_argument_group("board and output")
    g.add_argument("--port", "-p", metavar="URL", default=d,
                   help="the board's console or management endpoint: socket://HOST:PORT, tcp:HOST:PORT "
                        "or /dev/pts/N")
    g.add_argument("--state", "-s", metavar="DIR", default=d,
                   help="state directory of a board started with `boot --detach`")
    g.add_argument("--controller", "-c", type=int, choices=(0, 1), metavar="N", default=d,
                   help="of a dual-active pair: the controller to talk to, boot or stop (default: "
                        "the first one running; boot and stop: both)")
    g.add_argument("--json", "-j", action="store_true", default=False if top else argparse.SUPPRESS,
                   help="print results as JSON")
    g.add_argument("--timeout", type=float, metavar="S", default=30.0 if top else argparse.SUPPRESS,
                   help="seconds to wait for an answer (default 30)")
    g.add_argument("--force", action="store_true", default=False if top else argparse.SUPPRESS,
                   help="do a command that destroys data or configuration without asking (scripts)")
    g.add_argument("--password-file", metavar="FILE", default=d,
                   help="the console password is the first line of FILE (else $%s, else a prompt)"
                        % PASSWORD_ENV)


def build_parser(shell=None):
    """The whole command tree; `shell` runs the `shell` command (the CLI hands it in, as the shell
    itself is handed this tree)."""
    P = lambda sub, name, help, **kw: _leaf(sub, name, help, **kw)  # noqa: E731
    top = Parser(prog="raidboard", description="Boot and manage an emulated Mylex DAC960SX/SF RAID "
                 "board (snapshot backup of WO 99/63441) over its serial console.",
                 epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(top, top=True)
    top.add_argument("--version", action="store_true", help="the version of this CLI and of the firmware, then exit")
    sub = top.add_subparsers(dest="cmd", metavar="COMMAND", parser_class=Parser)

    b = P(sub, "boot", "start a board from a board definition", func=lifecycle.cmd_boot, epilog="""\
examples:
  raidboard boot boards/dac960sx.json state                  foreground; Ctrl-C stops it
  raidboard boot boards/dac960sx.json state --attach         and open its console here (make run)
  raidboard boot boards/dac960sx.json /tmp/b1 --console tcp:127.0.0.1:0 --iscsi 127.0.0.1:0,127.0.0.1:0 --detach
  raidboard boot boards/dac960sf.json /tmp/b2 --console pty --detach   prints console: /dev/pts/N
  raidboard boot boards/dac960sx-pair.json pair --detach     a dual-active pair: both controllers
  raidboard boot boards/dac960sx-pair.json pair --controller 1 --detach   restart controller 1 beside 0
""")
    b.add_argument("board", help="board definition, e.g. boards/dac960sx.json")
    b.add_argument("state_dir", metavar="STATE", help="state directory (disks, NV memory); created if missing")
    b.add_argument("--console", metavar="tcp:HOST:PORT|pty",
                   help="serial console endpoint (default: the board definition's); port 0 = any free port")
    b.add_argument("--iscsi", metavar="H:P,H:P", help="portals of host ports 0 and 1")
    b.add_argument("--management", metavar="tcp:HOST:PORT",
                   help="the management endpoint, where the CLI's commands go while a person holds the "
                        "console (default: the board definition's; with --console, any free port)")
    b.add_argument("--detach", action="store_true", help="run in the background; write a pid file")
    b.add_argument("--pid-file", metavar="FILE", help="with --detach (default STATE/firmware.pid)")
    b.add_argument("--attach", action="store_true", help="attach the VT-100 console in this terminal")
    b.add_argument("--boot-timeout", type=float, default=60.0, metavar="S", help=argparse.SUPPRESS)

    s = P(sub, "stop", "stop a board started with --detach", func=lifecycle.cmd_stop, epilog="""\
examples:
  raidboard stop                      the board in ./state
  raidboard stop --state /tmp/b1      the board booted into /tmp/b1
  raidboard stop --pid-file /tmp/b1.pid   the board of `boot … --detach --pid-file /tmp/b1.pid`
  raidboard stop --state pair --controller 1   one controller of a pair (its partner takes over)

The board is told to stop in order (SIGINT: every acknowledged write is on disk); if it is still
running after --grace seconds it gets SIGTERM, then SIGKILL.
""")
    s.add_argument("--pid-file", metavar="FILE",
                   help="stop the board whose pid is in FILE (written by `boot --detach --pid-file FILE`) "
                        "instead of the one of --state; the file is removed")
    s.add_argument("--grace", type=float, default=5.0, metavar="S",
                   help="seconds the firmware gets to stop in order before it is killed")

    P(sub, "console", "attach this terminal to the VT-100 console (Ctrl-] detaches)", func=lifecycle.cmd_console,
      epilog="examples:\n  raidboard console\n  raidboard console --port /dev/pts/5\n"
             "  raidboard console --port socket://127.0.0.1:4960\n")
    P(sub, "status", "drives, LUN map, snapshot, long operations, recent events", func=drives.cmd_status,
      epilog="examples:\n  raidboard status\n  raidboard --state /tmp/b1 --json status | jq .snapshot\n")

    sd = _group(sub, "sd", "system drives", "examples:\n  raidboard sd list\n  raidboard sd show sd0\n"
                "  raidboard sd create --raid 5 --slots 0,1,2,3 --mb 512\n  raidboard sd create --raid 1 --slots 1:0,1:1\n"
                "  raidboard sd policy sd0 wb\n  raidboard sd delete sd2\n"
                "  raidboard sd owner sd0 1                  a pair: controller 1 serves sd0 from now on\n")
    P(sd, "list", "list system drives", func=drives.cmd_sd_list)
    c = P(sd, "show", "one system drive with its member extents", func=drives.cmd_sd_show)
    c.add_argument("drive", help="sd0..sd7")
    c = P(sd, "create", "create a system drive", func=drives.cmd_sd_create)
    c.add_argument("--raid", "-r", required=True, help="0, 1, 3, 5, 0+1 (= 6) or jbod (= 7)")
    c.add_argument("--slots", required=True, help="member disk slots: indexes or channel:target, comma separated")
    c.add_argument("--mb", type=int, help="size in MB (default: as large as the members allow)")
    c.add_argument("--stripe-kb", type=int, help="stripe size in KiB")
    c.add_argument("--wb", action="store_true", help="write-back cache (default write-through)")
    c.add_argument("--sd", help="system drive number to use (default: the lowest free)")
    c = P(sd, "delete", "delete a system drive", func=drives.cmd_sd_delete)
    c.add_argument("drive", help="sd0..sd7")
    c = P(sd, "policy", "set the write policy", func=drives.cmd_sd_policy)
    c.add_argument("drive", help="sd0..sd7")
    c.add_argument("policy", choices=["wb", "wt", "write-back", "write-through"],
                   help="wb: write-back (the controller's cache acknowledges), wt: write-through")
    c = P(sd, "owner", "a dual-active pair: move a system drive to the other controller", func=pairs.cmd_sd_owner)
    c.add_argument("drive", help="sd0..sd7")
    c.add_argument("to", type=int, choices=(0, 1), metavar="0|1",
                   help="the controller that owns (serves) the drive from now on; hosts hear 2A/06 "
                        "and their multipath moves to its ports")

    pr = _group(sub, "pair", "a dual-active pair: both controllers, ownership, failover and failback", PAIR_HELP)
    P(pr, "status", "both controllers: mode, what each serves, partner, link, failback, drive owners",
      func=pairs.cmd_pair_status)
    P(pr, "failback", "give each controller back its own drives and ports (failback manual, or at once)",
      func=pairs.cmd_pair_failback)
    c = P(pr, "fail", "fail a controller: its firmware stops; its partner takes over (asks first)",
          func=pairs.cmd_pair_fail)
    c.add_argument("which", type=int, choices=(0, 1), metavar="N", help="the controller to fail, 0 or 1")
    c = P(pr, "link", "cut or restore the back-end link between the controllers (tests, demos)",
          func=pairs.cmd_pair_link)
    c.add_argument("link", choices=("down", "up"), metavar="down|up",
                   help="down: cut it (asks first: controller 1 stands down), up: restore it")

    c = P(sub, "params", "controller parameters: show them, or set the ones given", func=pairs.cmd_params,
          epilog="examples:\n  raidboard params\n  raidboard params --failback manual\n"
                 "  raidboard params --autorebuild off --json\n")
    c.add_argument("--failback", choices=("automatic", "manual"),
                   help="a pair: automatic (a restarted controller takes its drives back at once) or "
                        "manual (it waits for `raidboard pair failback`)")
    c.add_argument("--autorebuild", choices=("on", "off"),
                   help="rebuild a replaced member at once (the same as `raidboard disk autorebuild`)")

    lg = _group(sub, "log", "the LOG bit of a system drive (the snapshot's log drive)",
                "examples:\n  raidboard log set sd1\n  raidboard log clear sd1\n")
    for act in ("set", "clear"):
        c = P(lg, act, "%s the LOG bit" % act, func=drives.cmd_log)
        c.add_argument("drive", help="sd0..sd7")
        if act == "set":
            c.add_argument("--chunk-kb", type=int, metavar="KB",
                           help="copy-on-write chunk size (default: the firmware's)")
        c.set_defaults(action=act)

    mk = _group(sub, "mask", "LUN masking: which initiators see which LUNs (kept in NV memory)",
                "examples:\n  raidboard mask set iqn.1994-05.com.redhat:host1 0/0 1/0\n"
                "  raidboard mask list\n  raidboard mask clear iqn.1994-05.com.redhat:host1\n\n"
                "With no mask set every initiator sees every mapped LUN; once one is set, an initiator\n"
                "sees only the LUNs of its own mask (none if it has no mask).\n\n"
                "A mask is only as strong as the credential that binds the name to a host: give it its own\n"
                "CHAP secret: the first line of --secret-file FILE, else $%s, else\n"
                "asked twice on the terminal with --secret (never on the command line). That\n"
                "initiator must then log in with CHAP, user = its own name, and this secret; the board-wide\n"
                "CHAP credential does not let any host log in under its name. Without these options the\n"
                "mask keeps the secret it has; --no-secret removes it.\n" % MASK_SECRET_ENV)
    P(mk, "list", "list the masks", func=access.cmd_mask_list)
    c = P(mk, "set", "let INITIATOR see exactly these PORT/LUNs", func=access.cmd_mask_set)
    c.add_argument("initiator", help="the initiator's iSCSI name (iqn., eui. or naa.; lowercase; at most %d bytes)"
                   % ISCSI_NAME_MAX)
    c.add_argument("luns", nargs="*", metavar="PORT/LUN", help="the LUNs it sees, e.g. 0/0 1/0 (none: it sees none)")
    how = c.add_mutually_exclusive_group()
    how.add_argument("--secret", action="store_true",
                     help="give the mask its own CHAP secret (%d to %d bytes in UTF-8): $%s, else asked"
                     % (CHAP_SECRET_MIN, CHAP_SECRET_MAX, MASK_SECRET_ENV))
    how.add_argument("--secret-file", metavar="FILE", help="the mask's own CHAP secret is the first line of FILE")
    how.add_argument("--no-secret", action="store_true", help="remove the mask's own CHAP secret")
    c = P(mk, "clear", "remove an initiator's mask", func=access.cmd_mask_clear)
    c.add_argument("initiator", help="the initiator's iSCSI name, as `mask list` shows it")

    pw = _group(sub, "password", "the console password (kept in NV memory as a digest)",
                "The new password is asked twice on the terminal, or read from --new-password-file;\n"
                "to change one, the current password is needed (--password-file, $%s or a prompt).\n"
                "examples:\n  raidboard password set\n  raidboard password set --new-password-file new.txt\n"
                "  raidboard password clear\n" % PASSWORD_ENV)
    c = P(pw, "set", "set or change the console password", func=access.cmd_password)
    c.add_argument("--new-password-file", metavar="FILE", help="the new password is the first line of FILE")
    c.set_defaults(action="set")
    c = P(pw, "clear", "remove the console password: the console is then open to any client", func=access.cmd_password)
    c.set_defaults(action="clear")

    ch = _group(sub, "chap", "CHAP authentication of the iSCSI host ports (kept in NV memory)",
                "The secret is never taken from the command line: it is asked twice on the terminal, or\n"
                "read from the first line of --secret-file FILE, or from $%s.\n\n"
                "examples:\n  raidboard chap set backup                    # asks for the secret\n"
                "  raidboard chap set backup --secret-file /root/chap.secret\n"
                "  RAIDBOARD_CHAP_SECRET=... raidboard chap set backup\n  raidboard chap clear\n" % CHAP_SECRET_ENV)
    c = P(ch, "set", "require CHAP with this user (at most %d bytes in UTF-8) and a secret (%d to %d bytes)"
          % (CHAP_USER_MAX, CHAP_SECRET_MIN, CHAP_SECRET_MAX),
          func=access.cmd_chap)
    c.add_argument("user", help="the CHAP user name initiators log in with")
    c.add_argument("--secret-file", metavar="FILE", help="the secret is the first line of FILE")
    c.set_defaults(action="set")
    c = P(ch, "clear", "log in without authentication", func=access.cmd_chap)
    c.set_defaults(action="clear")

    ln = _group(sub, "lun", "LUN map of the host ports",
                "examples:\n  raidboard lun list\n  raidboard lun show 0/1\n  raidboard lun map 0/2 sd1\n"
                "  raidboard lun unmap 1/2\n")
    P(ln, "list", "list the LUN map", func=drives.cmd_lun_list)
    c = P(ln, "show", "what one PORT/LUN is mapped to", func=drives.cmd_lun_show)
    c.add_argument("portlun", metavar="PORT/LUN", help="host port 0 or 1 / LUN 0..7, e.g. 0/1")
    c = P(ln, "map", "map PORT/LUN to a system drive", func=drives.cmd_lun_map)
    c.add_argument("portlun", metavar="PORT/LUN", help="host port 0 or 1 / LUN 0..7, e.g. 0/2")
    c.add_argument("drive", help="sd0..sd7")
    c = P(ln, "unmap", "unmap PORT/LUN", func=drives.cmd_lun_unmap)
    c.add_argument("portlun", metavar="PORT/LUN", help="host port 0 or 1 / LUN 0..7, e.g. 1/2")

    sn = _group(sub, "snapshot", "snapshot backup (WO 99/63441)",
                "examples:\n  raidboard snapshot start sd0\n"
                "  raidboard snapshot start sd0 --freeze 'fsfreeze -f /mnt' --thaw 'fsfreeze -u /mnt'\n"
                "  raidboard snapshot status\n"
                "  raidboard snapshot watch --interval 0.5\n  raidboard snapshot map --cells 128\n"
                "  raidboard snapshot stop\n")
    c = P(sn, "start", "initiate a snapshot of a primary system drive", func=snapshot.cmd_snapshot_start)
    c.add_argument("drive", help="the primary, sd0..sd7")
    c.add_argument("--freeze", metavar="CMD", help="shell command run on this host just before the initiate "
                   "(e.g. `fsfreeze -f /mnt`); if it fails nothing is initiated (exit 9)")
    c.add_argument("--thaw", metavar="CMD", help="shell command run just after the initiate, also when it "
                   "failed (e.g. `fsfreeze -u /mnt`); if it fails the exit code is 9")
    P(sn, "stop", "terminate the snapshot", func=snapshot.cmd_snapshot_stop)
    P(sn, "status", "state, log usage, exceptions", func=snapshot.cmd_snapshot_status)
    c = P(sn, "map", "which regions of the primary were copied to the log", func=snapshot.cmd_snapshot_map)
    c.add_argument("--cells", type=int, default=64, metavar="N", help="number of regions (default 64)")
    c = P(sn, "watch", "progress bar of the log usage until the snapshot ends or Ctrl-C", func=snapshot.cmd_snapshot_watch)
    c.add_argument("--interval", type=float, default=1.0, metavar="S",
                   help="seconds between two samples of the log usage (default 1)")
    c.add_argument("--count", type=int, default=0, metavar="N", help="stop after N samples")

    dk = _group(sub, "disk", "physical disks (slots)",
                "examples:\n  raidboard disk list\n  raidboard disk show 1:2\n  raidboard disk fail 2\n"
                "  raidboard disk remove 1:1\n"
                "  raidboard disk replace 0:2\n"
                "  raidboard disk autorebuild off\n")
    P(dk, "list", "list disk slots", func=disks.cmd_disk_list)
    c = P(dk, "show", "one disk slot", func=disks.cmd_disk_show)
    c.add_argument("slot", help="slot index or channel:target")
    for act, h in (("fail", "fail a disk"), ("remove", "remove a disk"),
                   ("replace", "put in a new disk (its drive rebuilds onto it when automatic rebuild is on)")):
        c = P(dk, act, h, func=disks.cmd_disk_action)
        c.add_argument("slot", help="slot index or channel:target")
        c.set_defaults(action=act)
    c = P(dk, "autorebuild", "show or set whether a replaced disk is rebuilt at once (NV memory; default on)",
          func=disks.cmd_disk_autorebuild)
    c.add_argument("setting", nargs="?", choices=("on", "off"), help="on or off (none: show the setting)")

    c = P(sub, "cdb", "send a raw SCSI CDB to PORT/LUN", func=diagnostics.cmd_cdb, epilog="""\
examples:
  raidboard cdb 0/0 12000000240000                     INQUIRY
  raidboard cdb 0/0 25000000000000000000               READ CAPACITY(10)
  raidboard cdb 0/1 28000000000000000100 --out blk.bin READ(10) one block into a file
  raidboard cdb 0/0 2a000000000000000100 --data-file blk.bin   WRITE(10) one block
exit code 6 when the SCSI status is not GOOD.
""")
    c.add_argument("portlun", metavar="PORT/LUN", help="host port 0 or 1 / LUN 0..7, e.g. 0/0")
    c.add_argument("cdb", help="the CDB in hex")
    c.add_argument("--data", metavar="HEX", help="data-out as hex")
    c.add_argument("--data-file", metavar="FILE", help="data-out from a file")
    c.add_argument("--out", metavar="FILE", help="write data-in to FILE")
    c.add_argument("--all", action="store_true", help="hexdump all data-in (default: first 512 bytes)")

    c = P(sub, "events", "the board's event log", func=diagnostics.cmd_events,
          epilog="examples:\n  raidboard events -n 20\n  raidboard events --follow\n")
    c.add_argument("-n", type=int, metavar="N", help="how many recent events")
    c.add_argument("--follow", "-f", action="store_true", help="keep printing new events until Ctrl-C")
    c.add_argument("--seconds", type=float, metavar="S", help="with --follow: stop after S seconds")
    c.add_argument("--count", type=int, metavar="N", help="with --follow: stop after N new events")

    nv = _group(sub, "nvram", "NV memory images (offline)",
                "examples:\n  raidboard nvram dump state/nvram.bin\n  raidboard nvram dump --json nvram/dac960sx-factory.bin\n"
                "  raidboard nvram show\n")
    c = P(nv, "dump", "decode an NV memory image file as text or JSON", func=diagnostics.cmd_nvram_dump, link=False)
    c.add_argument("file", help="an NV memory image: a state directory's nvram.bin or a factory image")
    P(nv, "show", "the NV memory as the running board decodes it", func=diagnostics.cmd_nvram_show)

    lp = _group(sub, "lop", "long operations: %s" % ", ".join(LOP_NAMES),
                "examples:\n  raidboard lop start copy sd0 --to sd2 --wait\n  raidboard lop start check sd0 --arg fix=true\n"
                "  raidboard lop status\n"
                "  raidboard lop status sd0 --wait\n  raidboard lop stop sd0\n  raidboard lop clear sd2 --force\n\n"
                + LOP_OPERATIONS)
    c = P(lp, "start", "start a long operation on a system drive", func=lops.cmd_lop_start, epilog="""\
examples:
  raidboard lop start copy sd0 --to sd2 --wait      the snapshot's image of sd0 onto sd2
  raidboard lop start resync sd0 --to sd2           only what changed since that copy
  raidboard lop start rebuild sd0 --arg standby=1:2
  raidboard lop start init sd2 --force
  raidboard lop start check sd0 --arg fix=true
  raidboard lop start rate sd0 --arg rate=50        every operation's share of the time

""" + LOP_OPERATIONS)
    c.add_argument("op", choices=LOP_NAMES, metavar="OP", help="the operation: %s (below)" % ", ".join(LOP_NAMES))
    c.add_argument("drive", help="sd0..sd7")
    c.add_argument("--to", metavar="SD", help="target system drive (copy, resync)")
    c.add_argument("--arg", action="append", metavar="NAME=VALUE", help="extra argument (repeatable)")
    c.add_argument("--wait", action="store_true", help="show a progress bar until it ends")
    c.add_argument("--interval", type=float, default=0.5, metavar="S", help=INTERVAL_HELP)
    c = P(lp, "status", "progress of long operations", func=lops.cmd_lop_status)
    c.add_argument("drive", nargs="?", help="sd0..sd7 (default: all)")
    c.add_argument("--op", choices=lops.KINDS, help="only operations of this kind (with a drive: says when none runs on it)")
    c.add_argument("--wait", action="store_true", help="progress bar until it ends")
    c.add_argument("--interval", type=float, default=0.5, metavar="S", help=INTERVAL_HELP)
    c = P(lp, "stop", "stop the long operation of a system drive", func=lops.cmd_lop_stop)
    c.add_argument("drive", help="sd0..sd7: any drive it involves (a copy: source, primary, log or destination)")
    c = P(lp, "clear", "accept a drive a copy left incomplete: its LUNs answer again", func=lops.cmd_lop_clear)
    c.add_argument("drive", help="sd0..sd7")

    c = P(sub, "call", "send any firmware command (see firmware/README.md)", func=diagnostics.cmd_call,
          epilog="examples:\n  raidboard call mask_list\n  raidboard call chap_get\n")
    c.add_argument("name", help="the command's name in the firmware's command table, e.g. sd_list")
    c.add_argument("params", nargs="?", help="arguments as a JSON object")

    P(sub, "shell", "interactive shell with history and completion", func=shell, epilog="""\
examples:
  raidboard shell                          then e.g. `status`, `lop start copy sd0 --to sd2`, `help`
  raidboard --state /tmp/b1 shell
  raidboard shell < commands.txt           one command a line, from a script
""")
    _leaf_examples(top)
    return top


def _leaf_examples(top):
    """A command of a group without examples of its own gets the group's examples of it."""
    for gname, g in top.commands.items():
        for name, leaf in g.commands.items():
            if leaf.epilog is None:
                mine = [ln for ln in g.epilog.splitlines()
                        if ln.strip().startswith("raidboard %s %s" % (gname, name))]
                leaf.epilog = "examples:\n" + "\n".join(mine) + "\n"


def _leaf(sub, name, help, func=None, link=True, epilog=None):
    p = sub.add_parser(name, help=help, description=help[:1].upper() + help[1:] + ".", epilog=epilog,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(p)
    p.set_defaults(func=func, needs_link=link)
    return p


def _group(sub, name, help, epilog):
    p = sub.add_parser(name, help=help, description=help[:1].upper() + help[1:] + ".", epilog=epilog,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    s = p.add_subparsers(dest="action_" + name, metavar="ACTION", parser_class=Parser)
    p.set_defaults(func=None, group=p)
    return s
