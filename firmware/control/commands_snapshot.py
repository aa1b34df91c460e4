# The command table's snapshot (the console's and CLI's way to the Tables 1-4 operations):
# snapshot_start/stop/status/map.
import time
from snapshot import engine as snapshot
from control import args as check
from control.errors import CmdError


def snapshot_start(ctl, args):
    sd = check.system_drive(ctl, args)
    r = ctl.snapshot_refusal(sd)
    if r is not None:
        raise CmdError(r[1], r[2])
    try:
        ctl.initiate(sd)
    except Exception as e:
        raise CmdError("NOT_READY", "SD%d or the log drive is not ready (%s)" % (sd, e))
    return {"generation": ctl.engine.generation}


def snapshot_stop(ctl, args):
    if ctl.engine.state != snapshot.ACTIVE:
        raise CmdError("NO_SNAPSHOT", _no_snapshot(ctl.engine.last))
    ctl.engine.terminate()
    return {}


def snapshot_status(ctl, args):
    return ctl.engine.status()


def snapshot_map(ctl, args):
    return {"cells": ctl.engine.copied_map(check.integer(args, "cells", 1, 4096, 64))}


# how a stop after the snapshot ended hears of it, by the engine's last["how"]
ENDED = {"terminated": "was terminated", "copied": "ended when it was", "overflow": "already ended by overflow",
         "log failed": "already ended by a failure of its log drive"}


def _no_snapshot(last):
    # say how the last snapshot ended, so a stop after an overflow does not read as "never started"
    if last is None:
        return "no snapshot is active"
    t = time.gmtime(int(last["ended"]))
    return "no snapshot is active: the snapshot of SD%d %s (%s) at %04d-%02d-%02d %02d:%02d:%02d UTC" % (
        (last["primary"], ENDED[last["how"]], last["reason"]) + tuple(t[:6]))
