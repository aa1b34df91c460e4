"""A hostile-tenant campaign against the host ports (issue 9), and what a well-behaved initiator
feels of it. On host port 0, from one address: 8 sessions each hold a 1-block WRITE whose data
never comes, and 8 more ask for 8 MiB of reads each and never read them. Meanwhile a witness
session from another address on host port 1 writes 512 bytes and reads 128 KiB, ROUNDS times.
Then a CHAP guesser sends GUESSES wrong answers as fast as it can from one address.

Figures: BUSY answers the witness got, its slowest command (the board here aborts stalled tasks
after TIMEOUT_S; the shipped default is 10 s, endpoints/iscsi/README.md), and how many of the guesses were checked.
Usage: run.py --only abuse"""
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import test_iscsi_abuse as A       # noqa: E402
import test_iscsi_initiator as I   # noqa: E402

TIMEOUT_S = 2
ROUNDS = 30
GUESSES = 200


def witness(board, emit):
    w = A.session(board, 1, "iqn.2026-01.bench:witness", source="127.0.0.2")   # another host
    busy = 0
    worst = 0.0
    for i in range(ROUNDS):
        for op in (lambda: w.write(0, 1000 + i, bytes([i]) * 512), lambda: w.read(0, 0, A.BIG_READ)):
            t0 = time.perf_counter()
            status = op()["status"]
            worst = max(worst, time.perf_counter() - t0)
            busy += status == A.BUSY
    w.logout()
    emit("abuse_witness_busy_count", busy, "count")
    emit("abuse_witness_max_ms", worst * 1000, "ms")


def chap_guessing(board, emit):
    board.command("chap_set", {"user": "backup", "secret": A.SECRET})
    answers = [A.chap_login(board, "127.0.0.5", "guess-%d" % i) for i in range(GUESSES)]
    emit("abuse_chap_guesses_checked", answers.count(0x0201), "count")
    emit("abuse_chap_guesses_sent", len(answers), "count")
    board.command("chap_set", {"user": "", "secret": ""})


def run(emit, argv=()):
    with tempfile.TemporaryDirectory() as tmp:
        board = I.BootedBoard.boot(tmp, iscsi_task_timeout_s=TIMEOUT_S)
        try:
            holders = [A.session(board, 0, "iqn.2026-01.bench:holder%d" % i) for i in range(A.HOLDERS)]
            for i, c in enumerate(holders):
                A.hold_write(c, lba=i)
            readers = [A.stall_read(board, "iqn.2026-01.bench:reader%d" % i, "127.0.0.1")
                       for i in range(A.HOLDERS)]
            witness(board, emit)
            for c in holders + readers:
                c.close()
            chap_guessing(board, emit)
        finally:
            board.stop()


if __name__ == "__main__":
    run(lambda name, value, unit: print("BENCH %s %s %s" % (name, value, unit)))
