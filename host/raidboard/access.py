"""Who may use the board: LUN masks, CHAP of the iSCSI host ports and the console password
(`mask`, `chap`, `password`)."""
from .errors import CHAP_SECRET_ENV, UsageError
from .inputs import iscsi_name, nv_text, parse_portlun
from .model import CHAP_SECRET_MAX, CHAP_SECRET_MIN, CHAP_USER_MAX
from .nvimage import shown
from .render import out
from .session import confirm, read_secret


def cmd_mask_list(sess, args):
    r = sess.call("mask_list")

    def text():
        if not r["masks"]:
            return "no masks: every initiator sees every mapped LUN"
        return "\n".join("%s  %s" % (shown(m["initiator"]), " ".join("%d/%d" % tuple(x) for x in m["luns"]) or "(none)")
                         for m in r["masks"])
    out(args, r, text)


def cmd_mask_set(sess, args):
    luns = [list(parse_portlun(x)) for x in args.luns]
    r = sess.call("mask_set", {"initiator": iscsi_name(args.initiator), "luns": luns})
    out(args, r, "%s sees %s (and only those, while any mask is set)" % (
        args.initiator, " ".join(args.luns) or "no LUN"))


def cmd_mask_clear(sess, args):
    confirm(args, "remove the mask of %s? the LUNs it sees change (with no mask left, every initiator "
            "sees every mapped LUN)" % args.initiator)
    r = sess.call("mask_clear", {"initiator": args.initiator})
    out(args, r, "mask of %s removed" % args.initiator)


def cmd_chap(sess, args):
    if args.action == "set":
        user = nv_text(args.user, "the CHAP user", CHAP_USER_MAX)
        secret = read_secret(args.secret_file, "--secret-file", CHAP_SECRET_ENV, "CHAP secret", twice=True)
        if secret is None:
            raise UsageError("no CHAP secret: give --secret-file FILE or $%s (never on the command line)"
                             % CHAP_SECRET_ENV)
        r = sess.call("chap_set", {"user": user, "secret": nv_text(secret, "the CHAP secret", CHAP_SECRET_MAX,
                                                                   CHAP_SECRET_MIN)})
        out(args, r, "CHAP required for user %s" % args.user)
    else:
        confirm(args, "turn CHAP off? initiators log in without authentication")
        r = sess.call("chap_set", {"user": "", "secret": ""})
        out(args, r, "CHAP off: initiators log in without authentication")


def _new_password(args):
    new = read_secret(args.new_password_file, "--new-password-file", None, "new console password", twice=True)
    if new is None:
        raise UsageError("no terminal to ask the new password on: give --new-password-file")
    return new


def cmd_password(sess, args):
    new = _new_password(args) if args.action == "set" else ""
    if args.action == "set" and not 0 < len(new) <= 32:
        raise UsageError("a console password has 1 to 32 characters")
    link = sess.link()
    r = link.set_password(sess.password, new)   # None: there was none when this session began
    sess.password = new or None
    out(args, r, "console password set" if new else "console password cleared: the console is open to any client")
