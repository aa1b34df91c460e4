"""Attack campaign (issue 9): connection slots as the thing a stranger starves.

firmware/iscsi.md "Connections": at most 64 at once over both portals, 16 of them from one source
address; another is closed as soon as it is accepted. A client with 4 source addresses opens 64
TCP connections and sends nothing at all (no credentials needed: CHAP is on). Each is kept until
the login timeout (30 s) and can be reopened at once, so no host can log in, CHAP secret or not.
"""
import socket
import time

from test_iscsi_initiator import BootedBoard, Initiator

SECRET = "right-secret-123"


def test_silent_connections_from_four_addresses_do_not_lock_out_a_real_host(make_board):
    b = BootedBoard(make_board())
    b.command("chap_set", {"user": "u", "secret": SECRET})
    squatters = []
    try:
        for a in range(4):
            for i in range(16):
                s = socket.socket()
                s.bind(("127.0.0.%d" % (20 + a), 0))
                s.connect(b.portals[i % 2])
                squatters.append(s)
        time.sleep(0.5)
        w = Initiator(*b.portals[1], name="iqn.2026-11.org.example:witness", timeout=5)
        try:
            w.login(chap=("u", SECRET))
            ok = True
            w.logout()
        except OSError:
            ok = False
        assert ok, "the authorised host could not log in while 64 silent sockets were open"
    finally:
        for s in squatters:
            s.close()
