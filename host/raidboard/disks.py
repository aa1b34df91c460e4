"""Physical disk slots: `disk list|fail|remove|replace|autorebuild`."""
from . import render
from .inputs import resolve_slot
from .proto import BoardError
from .render import out
from .session import confirm


def cmd_disk_list(sess, args):
    r = sess.call("disk_list")
    out(args, r, lambda: render.disks_table(r.get("disks", [])))


def cmd_disk_show(sess, args):
    slot = resolve_slot(sess, args.slot)
    disks = [d for d in sess.call("disk_list").get("disks", []) if d.get("slot") == slot]
    if not disks:
        raise BoardError("NO_SUCH_SLOT", "disk slot %d does not exist" % slot)
    out(args, disks[0], lambda: render.disks_table(disks))


def cmd_disk_action(sess, args):
    slot = resolve_slot(sess, args.slot)
    confirm(args, {"fail": "fail disk slot %d? its drives degrade or go offline",
                   "remove": "remove disk slot %d? its drives degrade or go offline",
                   "replace": "replace disk slot %d? the disk in it is wiped"}[args.action] % slot)
    r = sess.call("disk_" + args.action, {"slot": slot})
    text = "disk slot %d: %s" % (slot, {"fail": "failed", "remove": "removed",
                                        "replace": "replaced with a new disk"}[args.action])
    if r.get("rebuild"):
        text += "; automatic rebuild of %s started (raidboard lop status --wait)" % \
            ", ".join("sd%d" % sd for sd in r["rebuild"])
    out(args, r, text)


def cmd_disk_autorebuild(sess, args):
    if args.setting is None:
        r = sess.call("params_get")
    else:
        r = sess.call("params_set", {"auto_rebuild": args.setting == "on"})
    out(args, r, "automatic rebuild of a replaced disk: %s" % ("on" if r.get("auto_rebuild") else "off"))
