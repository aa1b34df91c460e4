"""StorCLI-style addressing: `raidboard /c0/v1 show` and the like, translated into the commands
they stand for (host/README.md lists them)."""
import re

from .errors import UsageError


# only a whole controller path counts, so a file such as /cache/board.json is never taken for one
CONTROLLER_PATH = re.compile(r"/c(\d+|all)(/(v|e|s|p|l)(\d+|all))*/?$", re.I)


def storcli(argv):
    """Translate `/c0 show`, `/c0/v1 show|del`, `/c0/e0/s2 show|fail|remove|replace`, `/c0/p0/l1 show`."""
    i = next((k for k, a in enumerate(argv) if CONTROLLER_PATH.match(a)), None)
    if i is None:
        return argv
    path, rest, pre = argv[i], argv[i + 1:], argv[:i]
    parts = [x for x in path.lower().split("/") if x]
    if parts[0] not in ("c0", "call"):
        raise UsageError("%s: this board is controller /c0" % path)
    verb = rest[0].lower() if rest else "show"
    tail = rest[1:]
    if len(parts) == 1:
        if verb == "show" and tail[:1] == ["autorebuild"]:
            return pre + ["disk", "autorebuild"] + tail[1:]
        if verb == "show":
            return pre + ["status"] + tail
        if verb == "set" and tail and tail[0].lower() in ("autorebuild=on", "autorebuild=off"):
            return pre + ["disk", "autorebuild", tail[0].split("=")[1].lower()] + tail[1:]
    elif parts[1] in ("vall",) and verb == "show":
        return pre + ["sd", "list"] + tail
    elif parts[1].startswith("v") and parts[1][1:].isdigit():
        if verb == "show":
            return pre + ["sd", "show", parts[1][1:]] + tail
        if verb in ("del", "delete"):
            return pre + ["sd", "delete", parts[1][1:]] + tail
        if verb == "set" and tail and tail[0].lower() in ("wrcache=wb", "wrcache=wt"):
            return pre + ["sd", "policy", parts[1][1:], tail[0][-2:].lower()] + tail[1:]
    elif parts[1] in ("eall", "sall") and verb == "show":
        return pre + ["disk", "list"] + tail
    elif parts[1].startswith("s") and parts[1][1:].isdigit() or (
            parts[1].startswith("e") and len(parts) == 3 and parts[2].startswith("s")):
        slot = parts[-1][1:]
        if parts[1].startswith("e"):
            slot = "%s:%s" % (parts[1][1:], slot)
        if verb in ("fail", "remove", "replace"):
            return pre + ["disk", verb, slot] + tail
        if verb == "show":
            return pre + ["disk", "list"] + tail
    elif parts[1].startswith("p") and len(parts) == 3 and parts[2].startswith("l"):
        pl = "%s/%s" % (parts[1][1:], parts[2][1:])
        if verb == "show":
            return pre + ["lun", "list"] + tail
        if verb == "map" and tail:
            return pre + ["lun", "map", pl, tail[0]] + tail[1:]
        if verb in ("unmap", "del", "delete"):
            return pre + ["lun", "unmap", pl] + tail
    raise UsageError("%s %s: not understood; StorCLI-style paths are /c0 show, /c0/vall show, "
                     "/c0 show autorebuild, /c0 set autorebuild=on|off, "
                     "/c0/vN show|del|set wrcache=wb|wt, /c0/eall/sall show, /c0/eC/sT fail|remove|replace, "
                     "/c0/pP/lL map sdN|unmap" % (path, verb))
