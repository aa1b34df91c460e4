"""Who may use the board: LUN masks, CHAP of the iSCSI host ports and the console password
(`mask`, `chap`, `password`)."""
import os

from .errors import CHAP_SECRET_ENV, MASK_SECRET_ENV, UsageError
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
        return "\n".join("%s  %s%s" % (shown(m["initiator"]), " ".join("%d/%d" % tuple(x) for x in m["luns"])
                                        or "(none)", "  (own CHAP secret)" if m.get("secret_set") else "")
                         for m in r["masks"])
    out(args, r, text)


def _mask_secret(args):
    # mask_set's "secret": none given keeps the one the mask has, --no-secret removes it
    if args.no_secret:
        return {"secret": ""}
    if not (args.secret or args.secret_file or os.environ.get(MASK_SECRET_ENV) is not None):
        return {}
    secret = read_secret(args.secret_file, "--secret-file", MASK_SECRET_ENV, "CHAP secret of the mask", twice=True)
    if secret is None:
        raise UsageError("no secret for the mask: give --secret-file FILE or $%s (never on the command line)"
                         % MASK_SECRET_ENV)
    return {"secret": nv_text(secret, "the mask's CHAP secret", CHAP_SECRET_MAX, CHAP_SECRET_MIN)}


def cmd_mask_set(sess, args):
    luns = [list(parse_portlun(x)) for x in args.luns]
    secret = _mask_secret(args)
    r = sess.call("mask_set", dict({"initiator": iscsi_name(args.initiator), "luns": luns}, **secret))
    note = "" if not secret else "; it logs in with CHAP as itself, with its own secret" if secret["secret"] \
        else "; it has no CHAP secret of its own"
    out(args, r, "%s sees %s (and only those, while any mask is set)%s" % (
        args.initiator, " ".join(args.luns) or "no LUN", note))


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
