"""Attack campaign (issue 9): stalled iSCSI clients against a witness on the other portal.

firmware/iscsi.md "Fair share of the pool": a command that finds the transfer-buffer pool exhausted
waits in arrival order; no peer holds a buffer longer than the task timeout, "so a waiter is served
within about that time; it gets BUSY only if none comes free within twice the timeout".

16 connections from one source address (the documented per-address bound) each keep sending
WRITE(16) of 1 MiB whose data-out never comes. Every buffer the reaper takes back at the timeout
goes to an attacker connection queued earlier, so the witness waits the full 2 x timeout and gets
BUSY, or its command runs only after ~2 x timeout. Measured (task timeout 2 s, 16 attackers): 6
witness commands of 256 KiB in 20 s, 1 BUSY, every one 4.0-4.25 s; with 48 attackers (3
addresses), 6 of 8 BUSY. At the default timeout (10 s) that is 20 s per large command.

Now one address holds and waits for at most half the pool (README "Fair share of the pool"). The
test proves it by counts, not durations: the task timeout is longer than the test, so no buffer
comes free by it while the witness writes, and every attacker has writes waiting for their data;
the witness is served all the same. Attackers past their address's half of the pool are answered
BUSY at once, with none of their data asked for.
"""
import struct
import threading
import time

from test_iscsi_initiator import BootedBoard, Initiator, bhs

TIMEOUT_S = 60                 # no stalled write is aborted while the test runs


def attacker(b, idx, stop, waiting, busy):
    c = Initiator(*b.portals[0], name="iqn.2026-11.org.example:stall%d" % idx, source="127.0.0.2",
                  timeout=5)
    c.login(ops={"InitialR2T": "Yes", "ImmediateData": "No"})

    def drain():
        try:
            while not stop.is_set():
                r = c.recv()
                if r.op == 0x31:              # R2T: a write of ours waits for its data
                    waiting.add(idx)
                elif r.op == 0x21 and r.bhs[3] == 0x08:   # BUSY: past the address's share
                    busy.add(idx)
        except Exception:
            pass
    threading.Thread(target=drain, daemon=True).start()
    try:
        while not stop.is_set():
            p = bhs(0x01, 0x80 | 0x20 | 1, 0, c.next_itt(), [(20, 1 << 20), (24, c.cmdsn), (28, c.expstatsn)])
            p[32:48] = struct.pack(">BBQIBB", 0x8A, 0, 0, 2048, 0, 0)   # 1 MiB write, no data ever
            c.send(p)
            c.cmdsn += 1
            time.sleep(0.05)
    except OSError:
        pass
    finally:
        c.close()


def test_stalled_writers_do_not_starve_a_witness_on_the_other_portal(make_board):
    b = BootedBoard(make_board(iscsi_task_timeout_s=TIMEOUT_S))
    stop = threading.Event()
    waiting, busy = set(), set()
    threads = [threading.Thread(target=attacker, args=(b, i, stop, waiting, busy), daemon=True)
               for i in range(16)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.5)
        # its socket timeout only guards against a hang: before the fix it waited for the task timeout
        w = Initiator(*b.portals[1], name="iqn.2026-11.org.example:witness", timeout=20)
        w.login()
        data = bytes(256 * 1024)
        statuses = [w.write(0, 4096, data)["status"] for _ in range(4)]   # > 64 KiB: a pool buffer each
        w.logout()
        aborted = [e["text"] for e in b.command("events", {"n": 64})["events"] if "task aborted" in e["text"]]
    finally:
        stop.set()
        for t in threads:
            t.join(5)
    assert statuses == [0] * 4, statuses                 # GOOD, no BUSY
    assert aborted == []                                 # served without a buffer taken back
    # the attack was on all along: each attacker holds a buffer its data never comes for, or
    # (past the address's half of the pool) is answered BUSY with none of its data asked for
    assert waiting | busy == set(range(16)) and len(waiting) <= 4, (waiting, busy)
