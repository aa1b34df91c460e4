"""Attack campaign (issue 9): CHAP guessing against the per-address throttle (firmware/iscsi.md
"Login": after n failures in a row from an address its next response is checked only 1 s * 2^(n-1)
later; at most 64 addresses are remembered, the oldest failure goes first).

The eviction undoes the throttle: a guesser cycling over 65 source addresses evicts each address's
record before it comes back, so every guess is checked at once. On this loopback board 128
addresses (127.0.0.2-129) had 1280 guesses checked in 1.7 s (10 per address), where the documented
delay allows 1 per address in the first second.

Now an address leaves the table only by a success or an hour without failures, and while it is
full the other addresses share one board-wide delay (endpoints/iscsi/README.md "Login"). The bound
the test asserts follows from the documented delays and the time the guessing took, so a slow
machine makes it looser, never a failure.
"""
import math
import time

from test_iscsi_initiator import BootedBoard, Initiator, ISCSIError


ADDRESSES = 100              # more than the 64 the table remembers


def test_a_guesser_with_65_or_more_addresses_is_still_slowed_down(make_board):
    b = BootedBoard(make_board())
    b.command("chap_set", {"user": "u", "secret": "right-secret-123"})
    checked = {}
    t0 = time.time()
    for rnd in range(3):
        for i in range(ADDRESSES):
            src = "127.0.0.%d" % (2 + i)
            c = Initiator(*b.portals[0], name="iqn.2026-11.org.example:guesser", source=src)
            try:
                c.login(chap=("u", "wrong-guess-%d" % rnd))
            except ISCSIError:
                pass
            c.close()
            if getattr(c, "status", None) == 0x0201:          # the response was checked (and failed)
                checked[src] = checked.get(src, 0) + 1
    elapsed = time.time() - t0
    # documented: the k-th check of one delay entry comes at least 2^(k-1) - 1 s after its first,
    # so within `elapsed` an entry allows at most this many checks
    allowed = 1 + int(math.log2(1 + elapsed))
    worst = max(checked.values())
    assert worst <= allowed, "an address had %d guesses checked in %.1f s" % (worst, elapsed)
    # 64 addresses of the table and one board-wide entry for the other 36
    total = sum(checked.values())
    assert total <= 65 * allowed, "%d guesses checked in %.1f s" % (total, elapsed)
