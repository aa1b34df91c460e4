# The command table's looks into the board: status, events, the SCSI pass-through (cdb) and the
# decoded NV memory.
import gc
from hw import nvram
from control import args as check
from control import commands_drives as drives
from control import commands_hostmap as hostmap
from control.errors import CmdError

CONSOLE_INITIATOR = "iqn.1998-06.com.mylex:console"     # the nexus of the console's `cdb`


def events(ctl, args):
    return {"events": ctl.events.recent(check.integer(args, "n", 1, 64, 10))}


def cdb(ctl, args):
    try:
        c = bytes.fromhex(args.get("cdb", ""))
        data = bytes.fromhex(args.get("data", "") or "")
    except (ValueError, TypeError):
        raise CmdError("BAD_ARGUMENT", "cdb and data must be hex strings")
    if not 6 <= len(c) <= 16:
        raise CmdError("BAD_ARGUMENT", "a CDB is 6 to 16 bytes, got %d" % len(c))
    port = check.integer(args, "port", 0, nvram.PORTS - 1)
    lun = check.integer(args, "lun", 0, 255)
    if args.get("initiator", CONSOLE_INITIATOR) != CONSOLE_INITIATOR:
        raise CmdError("BAD_ARGUMENT", "the pass-through runs as the console, %s; masking applies to it"
                       % CONSOLE_INITIATOR)
    status, sns, din = ctl.execute_here_or_there((CONSOLE_INITIATOR, ctl.gport(port), lun), c, data)
    return {"status": status, "sense": bytes(sns).hex() if sns else "", "data": bytes(din).hex()}


def nvram_dump(ctl, args):
    return ctl.cfg.to_dict()


def _snapshot(ctl):
    # of a pair, the snapshot's owner says; while it cannot be heard, this controller's view
    try:
        return ctl.command("snapshot_status")
    except CmdError as e:
        if e.code != "PARTNER_LOST":
            raise
        return dict(ctl.engine.status(), partner_lost=True)


def status(ctl, args):
    st = {"model": ctl.board["model"], "iqn": ctl.iqn, "drives": drives.sd_list(ctl, args)["drives"],
          "luns": hostmap.lun_list(ctl, args)["map"], "snapshot": _snapshot(ctl),
          "lops": [op.info() for op in ctl.lops.ops], "events": ctl.events.recent(5),
          "params": drives.params_get(ctl, args),
          "heap": {"used": gc.mem_alloc(), "free": gc.mem_free(), "holes_filled": ctl.heap.holes}}
    if ctl.pair is not None:
        st["pair"] = ctl.pair.status()
        for op in st["lops"]:
            op["controller"] = ctl.number
    return st
