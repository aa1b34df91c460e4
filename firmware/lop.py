# Long-operation registry: which background operation (rebuild, initialization, consistency check,
# system drive copy) runs on which system drive. The snapshot initiate consults it (Table 2 rows);
# the operations themselves register here.
from micropython import const

REBUILD = const(1)
INIT = const(2)
CHECK = const(3)
COPY = const(4)
NAMES = {REBUILD: "rebuild", INIT: "initialization", CHECK: "consistency check", COPY: "copy"}


class Registry:
    def __init__(self):
        self.ops = []        # objects with .kind, .drives (tuple of sd numbers), .progress()

    def add(self, op):
        self.ops.append(op)

    def remove(self, op):
        if op in self.ops:
            self.ops.remove(op)

    def running(self, kind, sd=None):
        # the running operation of `kind` (on system drive `sd` if given), or None
        for op in self.ops:
            if op.kind == kind and (sd is None or sd in op.drives):
                return op
        return None


def direct(ctl, cdb, buf):
    # LOP Start (0x44) / LOP Status (0x43): not implemented yet; see issue "Long operations"
    import sense
    raise sense.invalid_field(2)


def command(ctl, name, args):
    from controller import CmdError
    raise CmdError("NOT_SUPPORTED", "long operations are not available yet")
