"""StorCLI-style addressing: `raidboard /c0/v1 show` and the like, translated into the commands
they stand for (host/README.md "StorCLI-style paths" lists them). /c0 is the board, /vN system
drive N, /eC/sT the disk on drive channel C, target T, /pP/lL host port P, LUN L."""
import re

from .errors import UsageError
from .model import LEVELS, MAX_MEMBERS

# only a whole controller path counts, so a file such as /cache/board.json is never taken for one
CONTROLLER_PATH = re.compile(r"/c(\d+|all)(/(v|e|s|p|l)(\d+|all))*/?$", re.I)

# the global options that take a value: the word after one is never the command
VALUED = ("--port", "-p", "--state", "-s", "--timeout", "--password-file", "--controller", "-c")

FORMS = ("/c0 show [all], /c0 show autorebuild, /c0 set autorebuild=on|off, "
         "/c0 add vd r0|r1|r3|r5|r10|jbod drives=C:T[-C:T][,...] [size=N[MB|GB]] [strip=KB] [wb|wt], "
         "/c0/vall show [all], /c0/vN show [all], /c0/vN show init|cc|rebuild, /c0/vN start init [full]|cc, "
         "/c0/vN del, /c0/vN set wrcache=wb|wt, /c0/eall/sall show, /c0/eC/sT show|fail|remove|replace, "
         "/c0/pP/lL show|map sdN|unmap; J at the end prints JSON")

# StorCLI's RAID types and the board's level numbers (model.LEVELS): r10 is the board's RAID 0+1
TYPES = {"r0": 0, "raid0": 0, "r1": 1, "raid1": 1, "r3": 3, "raid3": 3, "r5": 5, "raid5": 5,
         "r10": 6, "raid10": 6, "r01": 6, "jbod": 7}
# the board's long operations by StorCLI's names
PROGRESS = {"init": "init", "cc": "check", "rebuild": "rebuild"}


def command_position(argv):
    """Index of the command word: the first word that is neither an option nor an option's value."""
    i = 0
    while i < len(argv):
        if argv[i] in VALUED:
            i += 2
        elif argv[i].startswith("-"):
            i += 1
        else:
            return i
    return None


def json_suffix(argv):
    """Whether a StorCLI command line ends its words with StorCLI's `J` (JSON)."""
    i = command_position(argv)
    if i is None or not CONTROLLER_PATH.match(argv[i]):
        return False
    words = _words(argv[i + 1:])[0]
    return bool(words) and words[-1] in ("J", "j")


def storcli(argv):
    """argv with a StorCLI command (`/c0/v1 show …` in the command's place) translated; any other
    argv as it is. A path elsewhere (a drive argument: `snapshot start /c0/v0`) is the command's own
    to read (inputs.parse_sd)."""
    i = command_position(argv)
    if i is None or not CONTROLLER_PATH.match(argv[i]):
        return argv
    path = argv[i]
    words, options = _words(argv[i + 1:])
    if words and words[-1] in ("J", "j"):
        words, options = words[:-1], options + ["--json"]
    parts = [x for x in path.lower().split("/") if x]
    if parts[0] not in ("c0", "c1", "call"):
        raise UsageError("%s: there is no controller %s: this board is one controller, /c0 (a dual-active "
                         "pair: /c0 and /c1; e.g. raidboard /c0 show)" % (path, parts[0][1:]))
    command = _translate(parts[1:], words or ["show"])
    if command is None:
        raise UsageError("%s %s: not a StorCLI form this board has; they are: %s"
                         % (path, " ".join(words), FORMS))
    return argv[:i] + command + options + _named_controller(parts[0], argv[:i] + options)


def _named_controller(c, given):
    # /c1 is a pair's controller 1: the command goes there (--controller 1; on a one-controller
    # board it is refused once the board is reached: session.py). /c0 is the board as ever: a
    # pair's controller 0, or its partner while it is down (said on stderr). /call: either.
    if c == "call":
        return []
    n = c[1:]
    for flag in ("--controller", "-c"):
        if flag in given[:-1] and given[given.index(flag) + 1] != n:
            raise UsageError("/%s and %s %s name different controllers" % (c, flag, given[given.index(flag) + 1]))
    return ["--controller", n] if n != "0" else []


def _words(rest):
    # the command's words, and the options among them (`/c0/v0 --force start init`), with their values
    words, options = [], []
    i = 0
    while i < len(rest):
        if rest[i] in VALUED:
            options += rest[i:i + 2]
            i += 2
            continue
        (options if rest[i].startswith("-") else words).append(rest[i])
        i += 1
    return words, options


def _translate(objs, words):
    verb = [w.lower() for w in words]
    if not objs:
        return _controller(verb, words)
    kind, num = objs[0][0], objs[0][1:]
    if len(objs) == 1 and objs[0] == "vall" and verb in (["show"], ["show", "all"]):
        return ["sd", "list"]
    if len(objs) == 1 and kind == "v" and num.isdigit():
        return _drive(num, verb, words)
    if objs in (["eall", "sall"], ["sall"], ["eall"]) and verb in (["show"], ["show", "all"]):
        return ["disk", "list"]
    if kind in "es" and all(o[1:].isdigit() for o in objs) and [o[0] for o in objs] in (["s"], ["e", "s"]):
        slot = ":".join(o[1:] for o in objs)
        return _disk(slot, verb)
    if [o[0] for o in objs] == ["p", "l"] and all(o[1:].isdigit() for o in objs):
        return _lun("%s/%s" % (objs[0][1:], objs[1][1:]), verb, words)
    return None


def _controller(verb, words):
    if verb in (["show"], ["show", "all"]):
        return ["status"]
    if verb == ["show", "autorebuild"]:
        return ["disk", "autorebuild"]
    if verb in (["set", "autorebuild=on"], ["set", "autorebuild=off"]):
        return ["disk", "autorebuild", verb[1].split("=")[1]]
    if verb[:2] == ["add", "vd"]:
        return _add_vd(words[2:])
    return None


def _drive(n, verb, words):
    if verb in (["show"], ["show", "all"]):
        return ["sd", "show", n]
    if len(verb) == 2 and verb[0] == "show" and verb[1] in PROGRESS:
        return ["lop", "status", "sd" + n, "--op", PROGRESS[verb[1]]]
    if verb in (["start", "init"], ["start", "init", "full"]):
        return ["lop", "start", "init", "sd" + n]     # the board's initialization writes the whole drive
    if verb == ["start", "cc"]:
        return ["lop", "start", "check", "sd" + n]
    if verb in (["del"], ["delete"]):
        return ["sd", "delete", n]
    if verb in (["set", "wrcache=wb"], ["set", "wrcache=wt"]):
        return ["sd", "policy", n, verb[1][-2:]]
    return None


def _disk(slot, verb):
    if verb in (["show"], ["show", "all"]):
        return ["disk", "show", slot]
    if verb in (["fail"], ["remove"], ["replace"]):
        return ["disk", verb[0], slot]
    return None


def _lun(portlun, verb, words):
    if verb in (["show"], ["show", "all"]):
        return ["lun", "show", portlun]
    if len(verb) == 2 and verb[0] == "map":
        return ["lun", "map", portlun, words[1]]
    if verb in (["unmap"], ["del"], ["delete"]):
        return ["lun", "unmap", portlun]
    return None


def _add_vd(words):
    """`add vd r5 drives=1:0-1:3 size=512MB strip=64 wb` as `sd create` (type=raid5 is the same)."""
    create = ["sd", "create"]
    for w in words:
        key, eq, value = w.partition("=")
        key = key.lower()
        if not eq and (key in TYPES or re.fullmatch(r"r(aid)?\d+", key)):
            create += ["--raid", str(_type(key))]
        elif key == "type":
            create += ["--raid", str(_type(value.lower()))]
        elif key == "drives":
            create += ["--slots", ",".join(drive_list(value))]
        elif key == "size":
            create += ["--mb", str(_size_mb(value))]
        elif key == "strip" and value.isdigit():
            create += ["--stripe-kb", value]
        elif key == "strip":
            raise UsageError("add vd: strip=%r: write the stripe size in KB, e.g. strip=64" % value)
        elif w.lower() == "wb":
            create.append("--wb")
        elif w.lower() != "wt":
            raise UsageError("add vd: %r is not an option this board has (r0|r1|r3|r5|r10|jbod, "
                             "drives=C:T[-C:T][,...], size=N[MB|GB], strip=KB, wb|wt)" % w)
    if "--raid" not in create or "--slots" not in create:
        raise UsageError("add vd needs a RAID type and drives=, e.g. raidboard /c0 add vd r1 drives=1:0,1:1")
    return create


def _type(t):
    if t not in TYPES:
        raise UsageError("add vd: %r is not a RAID type this board has: r0, r1, r3, r5, r10 (the board's "
                         "%s) or jbod" % (t, LEVELS[6]))
    return TYPES[t]


def _size_mb(v):
    m = re.fullmatch(r"(\d+)\s*(mb|gb)?", v.strip().lower())
    if not m:
        raise UsageError("add vd: size=%r: write it as N, NMB or NGB" % v)
    return int(m.group(1)) * (1024 if m.group(2) == "gb" else 1)


def drive_list(v):
    """StorCLI's drives=: `1:0,1:2` and ranges `1:0-3` or `1:0-1:3` (one channel) as C:T names."""
    names = []
    for item in v.split(","):
        m = re.fullmatch(r"(\d+):(\d+)(?:-(?:(\d+):)?(\d+))?", item.strip())
        if not m:
            raise UsageError("drives=%s: %r is not C:T or C:T-C:T (channel:target)" % (v, item))
        ch, first, ch2, last = m.groups()
        if ch2 is not None and ch2 != ch:
            raise UsageError("drives=%s: a range stays on one channel (%r); list the disks of the other "
                             "channel after a comma, e.g. drives=1:0-1,2:0-1" % (v, item))
        first, last = int(first), int(first if last is None else last)
        if last < first:
            raise UsageError("drives=%s: the range %r runs backwards" % (v, item))
        if len(names) + last - first + 1 > MAX_MEMBERS:
            raise UsageError("drives=%s names more than %d disks; a system drive has at most %d members"
                             % (v, MAX_MEMBERS, MAX_MEMBERS))
        names += ["%s:%d" % (ch, t) for t in range(first, last + 1)]
    return names
