# The command table's snapshot (the console's and CLI's way to the Tables 1-4 operations):
# snapshot_start/stop/status/map.
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
        raise CmdError("NO_SNAPSHOT", "no snapshot is active")
    ctl.engine.terminate()
    return {}


def snapshot_status(ctl, args):
    return ctl.engine.status()


def snapshot_map(ctl, args):
    return {"cells": ctl.engine.copied_map(check.integer(args, "cells", 1, 4096, 64))}
