# The command table's long operations (lop_start / lop_status / lop_stop): the console's and the
# CLI's way to what lop/ runs. A refusal from lop/ (Refused: Table 7 word, code, message) becomes
# CmdError with the word in its message; arguments are refused in the same words.
from hw import events
from lop import ops
from lop.errors import Refused
from control.errors import CmdError

KINDS = {"copy": ops.COPY, "resync": ops.COPY, "rebuild": ops.REBUILD, "init": ops.INIT,
         "initialize": ops.INIT, "initialization": ops.INIT, "check": ops.CHECK, "consistency": ops.CHECK}


def _sd_arg(args, *keys):
    for k in keys:
        if k in args:
            v = args[k]
            if type(v) is not int or not 0 <= v <= 7:
                raise Refused(ops.W_INVALID, "BAD_ARGUMENT", "'%s' must be a system drive 0..7, got %s" % (k, events.value_text(v)))
            return v
    raise Refused(ops.W_INVALID, "BAD_ARGUMENT", "'%s' is required" % keys[0])


def _rate(m, args):
    r = args.get("rate", m.rate)
    if type(r) is not int or not 1 <= r <= 100:
        raise Refused(ops.W_INVALID, "BAD_ARGUMENT", "rate must be an integer 1..100 (percent of the time), got %s" % events.value_text(r))
    return r


def _start(m, args):
    name = args.get("op")
    if name == "rate":
        m.set_rate(_rate(m, args))
        return {"rate": m.rate}
    kind = KINDS.get(name) if isinstance(name, str) else None
    if kind is None:
        raise Refused(ops.W_INVALID, "BAD_ARGUMENT",
                      "op must be one of copy, resync, rebuild, init, check or rate; got %s" % events.value_text(name))
    rate = _rate(m, args)
    if kind == ops.COPY:
        src = _sd_arg(args, "sd", "src", "source")
        dst = _sd_arg(args, "to", "dst", "target")
        full = args.get("full", False)
        if not isinstance(full, bool):
            raise Refused(ops.W_INVALID, "BAD_ARGUMENT", "full must be true or false")
        op = m.start_copy(src, dst, rate, need_base=(name == "resync"), force_full=full)
    else:
        sd = _sd_arg(args, "sd")
        fix = args.get("fix", False)
        if not isinstance(fix, bool):
            raise Refused(ops.W_INVALID, "BAD_ARGUMENT", "fix must be true or false")
        op = m.start_row(kind, sd, rate, fix=fix, standby=args.get("standby"))
    return op.info()


def _find(m, args):
    if "id" in args:
        for op in m.ops:
            if op.id == args["id"]:
                return op
        raise Refused(ops.W_INVALID, "NO_SUCH_OPERATION", "no running long operation has id %s" % events.value_text(args["id"]))
    sd = _sd_arg(args, "sd")
    op = m.find(sd)
    if op is not None:
        return op
    raise Refused(ops.W_INVALID, "NO_OPERATION", "no long operation runs on SD%d" % sd)


def _status(m, args):
    return m.status(_sd_arg(args, "sd") if "sd" in args else None)


def _stop(m, args):
    op = _find(m, args)
    m.stop(op)
    return op.info()


def _clear(m, args):
    # the operator takes a half-copied drive as it is: its LUNs answer again (lop/README.md)
    sd = _sd_arg(args, "sd")
    if not m.clear_incomplete(sd, "by command"):
        raise Refused(ops.W_INVALID, "NOT_INCOMPLETE", "SD%d holds no incomplete copy" % sd)
    return {"sd": sd, "incomplete": False}


def _command(fn):
    def run(ctl, args):
        try:
            return fn(ctl.lop_mgr, args)
        except Refused as e:
            raise CmdError(e.code, "%s (word 0x%04X)" % (e.msg, e.word))
    return run


lop_start = _command(_start)
lop_status = _command(_status)
lop_stop = _command(_stop)
lop_clear = _command(_clear)
