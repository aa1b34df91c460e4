"""Shared by the attack campaign scripts: boot a board under /tmp/atk/, talk to its console and
iSCSI ports as a tenant would. Run a script from this folder with the project's venv python."""
import sys, os, json, struct, time, socket
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))          # tests/: harness, initiator
from harness import Board, write_board
from test_iscsi_initiator import Initiator, sense_key
from raidboard import proto
A = "iqn.2026-11.org.example:tenant-a"
B = "iqn.2026-11.org.example:tenant-b"
def boot(tmp, fresh=True, **kw):
    import shutil
    if fresh: shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp, exist_ok=True)
    st = os.path.join(tmp, "state"); os.makedirs(st, exist_ok=True)
    path, d = write_board(tmp, **kw)
    return Board(path, st, d["heap_kb"])
def cmd(b, name, args=None):
    with proto.Link("socket://%s:%d" % tuple(b.console)) as link:
        return link.request(name, args or {})
def tenant(b, name, port=0, **kw):
    c = Initiator(*b.portals[port], name=name, **kw); c.login(); return c
