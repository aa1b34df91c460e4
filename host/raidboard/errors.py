"""Exit codes of `raidboard` and what is said on each failure (host/README.md "Exit codes").

  0  ok
  1  the board refused the request (ERR from the board; the code, its message and a hint are printed)
  2  usage error (bad arguments, unreadable input file)
  3  cannot reach the board (not running, wrong --port/--state, console busy, no answer)
  4  the board could not be booted (firmware missing, bad board definition, exited during boot)
  5  the board answered something that is not the line protocol
  6  `cdb`: the command completed with a SCSI status other than GOOD
  7  `nvram dump`: the image holds no valid bank
  8  a command that destroys data was not confirmed: nothing done
  9  `snapshot start`: the host's --freeze or --thaw command failed (what was and was not done is said)
  130 interrupted (Ctrl-C)
"""
import sys

from . import render
from .boot import BootError
from .model import MEMBER_RULES
from .nvimage import shown
from .proto import BoardError, LinkError, ProtocolError

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_BOOT, EXIT_PROTOCOL, EXIT_SCSI, EXIT_NVRAM = range(8)
EXIT_UNCONFIRMED = 8
EXIT_QUIESCE = 9
EXIT_SNAPSHOT_LOST = 10    # `snapshot watch`: the snapshot ended by overflow or a failed log
EXIT_INTERRUPTED = 130

PASSWORD_ENV = "RAIDBOARD_PASSWORD"
CHAP_SECRET_ENV = "RAIDBOARD_CHAP_SECRET"
MASK_SECRET_ENV = "RAIDBOARD_MASK_SECRET"


class UsageError(Exception):
    """Bad input from the user (exit code 2)."""


class QuiesceError(Exception):
    """A host-side --freeze or --thaw command of `snapshot start` failed (exit code 9)."""


class Exit(Exception):
    """Leave the command with this exit code; what there was to say on stderr has been said. `why`
    and `data` (what the command found) are the Error Message and Response Data of its JSON document."""

    def __init__(self, code, why="", data=None):
        super().__init__(code)
        self.code = code
        self.why = why
        self.data = data


# what to do about a board's ERR <CODE>
HINTS = {
    "LOG_IN_USE": "unmap the LUNs of that drive first (raidboard lun list / lun unmap), or pick another drive",
    "NO_LOG_DEFINED": "mark a log system drive first: raidboard log set sdN",
    "SNAPSHOT_ACTIVE": "terminate the running snapshot first: raidboard snapshot stop",
    "NO_SNAPSHOT": "nothing to stop (raidboard snapshot status says how the last one ended); "
                   "start one with: raidboard snapshot start sdN",
    "NO_SUCH_DRIVE": "see the existing drives with: raidboard sd list",
    "NO_SUCH_SLOT": "see the disk slots with: raidboard disk list",
    "LUN_IN_USE": "unmap it first: raidboard lun unmap PORT/LUN",
    "OVERLAP": "the members have no room left; give a smaller --mb or other --slots",
    "BAD_LEVEL": MEMBER_RULES,
    "NV_LIMIT": "NV memory holds no more than the limit named: shorten it (non-ASCII characters take 2-4 bytes)",
    "NV_REFUSED": "the configuration is unchanged; report the message, it names the field NV memory could not hold",
    "PASSWORD_REQUIRED": "give the console password: --password-file FILE, $%s, or type it when asked" % PASSWORD_ENV,
    "WRONG_PASSWORD": "that is not the console password (after 5 wrong ones in a row the console waits 30 s)",
    "LOGIN_LOCKED": "too many wrong passwords: wait, then try again with the right one",
    "UNKNOWN_COMMAND": "this firmware does not know that command; see firmware/README.md",
    "NOT_A_PAIR": "this board has one controller; a dual-active pair is booted from boards/dac960sx-pair.json",
    "NOTHING_TO_DO": "see what each controller serves with: raidboard pair status",
    "PARTNER_LOST": "the other controller did not answer: raidboard pair status shows whether it runs",
    "PARTNER_BUSY": "the other controller was running a command of its own on this one at that moment; nothing was done: run it again",
    "LOP_ACTIVE": "wait for the long operation (raidboard lop status) or stop it (raidboard lop stop SD) first",
}

# the failures a command ends with other than a refusal, each with its exit code, the Error Code of
# its JSON document and what is said on stderr (None: nothing)
SAID = (
    (UsageError, EXIT_USAGE, "USAGE", "raidboard: {}"),
    (QuiesceError, EXIT_QUIESCE, "HOST_COMMAND_FAILED", "raidboard: {}"),
    (LinkError, EXIT_UNREACHABLE, "UNREACHABLE", "raidboard: cannot reach the board: {}"),
    (ProtocolError, EXIT_PROTOCOL, "PROTOCOL", "raidboard: protocol error: {}"),
    (BootError, EXIT_BOOT, "BOOT_FAILED", "raidboard: boot failed: {}"),
    (KeyboardInterrupt, EXIT_INTERRUPTED, "INTERRUPTED", ""),   # ends the line ^C was echoed on
    (BrokenPipeError, EXIT_OK, None, None),         # the reader went away (`| head`): nothing is wrong
)
FAILURES = (BoardError, Exit) + tuple(x[0] for x in SAID)

# the Error Code of a JSON document for the exit codes a command chooses itself (Exit)
EXIT_NAMES = {EXIT_SCSI: "SCSI_STATUS", EXIT_NVRAM: "NO_VALID_BANK", EXIT_UNCONFIRMED: "NOT_CONFIRMED",
              EXIT_SNAPSHOT_LOST: "SNAPSHOT_LOST"}


def report(e, json_description=None, one_line=False, controller=0):
    """Say on stderr why a command ended with one of FAILURES; return its exit code. With
    `json_description` (--json) also print the failure's JSON document on stdout: on one line
    after a command's JSON Lines (`one_line`); `controller`: the pair's controller asked."""
    code, name, message, data, hint = _failure(e)
    if json_description is not None and name is not None:
        failure = {"Error Code": name, "Error Message": message, "Exit Code": code}
        if hint:
            failure["What To Do"] = hint
        render.print_document(render.document(data, json_description, failure, controller), one_line)
    return code


def _failure(e):
    # (exit code, Error Code, message, Response Data, hint); stderr said
    if isinstance(e, Exit):
        return e.code, EXIT_NAMES.get(e.code, "EXIT_%d" % e.code), e.why, e.data, None
    if isinstance(e, BoardError):
        print("raidboard: the board refused: %s: %s" % (shown(e.code), shown(e.message)), file=sys.stderr)
        hint = HINTS.get(e.code)
        if hint:
            print("  what to do: " + hint, file=sys.stderr)
        return EXIT_REFUSED, e.code, e.message, None, hint
    _, code, name, said = next(x for x in SAID if isinstance(e, x[0]))
    if said is not None:
        print(said.format(e), file=sys.stderr)
    return code, name, str(e), None, None
