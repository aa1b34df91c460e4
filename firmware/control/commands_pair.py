# The command table of a dual-active pair (control/pair.md): the pair's state, who owns which
# system drive, failback, failing a controller and cutting the back-end link. On a simplex board
# each answers NOT_A_PAIR.
import asyncio
from hw import nvram
from control import args as check
from control import pair as pairmod
from control.errors import CmdError


def _pair(ctl):
    if ctl.pair is None:
        raise CmdError("NOT_A_PAIR", "this board has one controller (boot a pair: boards/dac960sx-pair.json)")
    return ctl.pair


def pair_status(ctl, args):
    p = _pair(ctl)
    owners = []
    for sd, e in enumerate(ctl.cfg.sd):
        if e is not None:
            owners.append({"sd": sd, "affinity": e.affinity & 1, "owner": p.owner(sd)})
    return dict(p.status(), drives=owners)


def sd_owner(ctl, args):
    # move a system drive to the other controller (its affinity in NV memory); hosts hear 2A/06
    p = _pair(ctl)
    sd = check.integer(args, "sd", 0, nvram.MAX_SD - 1)
    to = check.integer(args, "controller", 0, 1)
    if p.mode != pairmod.ACTIVE:
        raise CmdError("NOT_READY", "this controller stood down after the link was lost; restart it "
                       "(it serves nothing until then)")
    e = ctl.cfg.sd[sd]
    if e is None:
        raise CmdError("NO_SUCH_DRIVE", "SD%d is not defined" % sd)
    if p.snap_primary is not None and (sd == p.snap_primary or e.is_log()):
        raise CmdError("SNAPSHOT_ACTIVE", "SD%d is in the active snapshot (primary SD%d); stop it first"
                       % (sd, p.snap_primary))
    if any(op.sd == sd for op in ctl.lops.ops):
        raise CmdError("LOP_ACTIVE", "a long operation runs on SD%d; wait for it or stop it first" % sd)
    if e.affinity & 1 == to:
        return {"sd": sd, "affinity": to, "owner": p.owner(sd)}
    ctl.flush_drive(sd)          # nothing of it may stay dirty where it no longer is written
    e.affinity = to
    ctl.save()
    p.alua_moved()
    return {"sd": sd, "affinity": to, "owner": p.owner(sd)}


def pair_failback(ctl, args):
    p = _pair(ctl)
    p.check_failback()
    asyncio.create_task(p.failback())
    return {"started": True}


def pair_fail(ctl, args):
    # fail a controller as its firmware would declare itself failed (this one), or reset the
    # partner through the reset line; the survivor takes over (pair.md "Failover")
    p = _pair(ctl)
    n = check.integer(args, "controller", 0, 1)
    if n == p.me:
        asyncio.create_task(p.fail_self("by command"))
    else:
        p.reset_partner("by command")
    return {"failed": n}


def pair_link(ctl, args):
    # cut (state "down") or restore ("up") the back-end link with both controllers running: the
    # test of pair.md "Link lost"
    p = _pair(ctl)
    st = args.get("state")
    if st not in ("down", "up"):
        raise CmdError("BAD_ARGUMENT", "state must be \"down\" or \"up\"")
    p.cut_link(st == "down")
    return {"link": st}


def params(ctl):
    return {"failback": "manual" if pairmod.manual_failback(ctl.cfg) else "automatic"} if ctl.pair else {}


def set_failback(ctl, v):
    _pair(ctl)
    if v not in ("automatic", "manual"):
        raise CmdError("BAD_ARGUMENT", "failback must be \"automatic\" or \"manual\"")
    pairmod.set_manual_failback(ctl.cfg, v == "manual")
