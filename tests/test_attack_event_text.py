"""Attack campaign (issue 9): text a stranger puts in the event log.

The iSCSI login takes any UTF-8 as InitiatorName (control characters included) and the board logs
it in its events ("login from <name> refused …"), also for a login that CHAP refuses: no
credentials are needed. `raidboard events` prints the event text as it is, so the name's escape
sequences reach the operator's terminal (window title, clear screen, colours, …). host/README.md
shows control characters as \\uXXXX elsewhere (`nvram dump`, `mask list`).
"""
import subprocess
import sys
from pathlib import Path

from test_iscsi_initiator import BootedBoard, Initiator, ISCSIError

RAIDBOARD = str(Path(sys.executable).with_name("raidboard"))
EVIL = "iqn.2026-11.org.example:\x1b]0;PWNED\x07\x1b[2J\x1b[31mEVIL"


def test_an_initiator_name_cannot_put_escape_sequences_on_the_operators_terminal(make_board):
    b = BootedBoard(make_board())
    b.command("chap_set", {"user": "u", "secret": "right-secret-123"})
    c = Initiator(*b.portals[0], name=EVIL)
    try:
        c.login()                                   # no credentials: refused (0x0201)
    except ISCSIError:
        pass
    c.close()
    p = subprocess.run([RAIDBOARD, "--port", "socket://%s:%d" % tuple(b.b.console), "events", "-n", "10"],
                       capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    assert b"PWNED" in p.stdout                     # the refusal was logged with the name
    assert b"\x1b" not in p.stdout and b"\x07" not in p.stdout, p.stdout[-300:]
