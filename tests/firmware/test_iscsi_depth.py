# Writes at queue depth whose data comes with them (endpoints/iscsi/flow.py write_now): while the
# connection's own buffer holds a write the I/O processor's thread has not finished, the next ones
# take parking places; past those they are answered BUSY, never dropped, and a connection lost in
# the middle of one gives its place back. The thread is made slow by holding the answers of its
# writes (the target's complete() does nothing until the test lets it), so the buffers stay held.
import _thread
import asyncio
import gc
import fw
from endpoints.iscsi import target as iscsi
from endpoints.iscsi import flow
from test_no_alloc import _Host


def _run(ctl, parks, host):
    # the target (with `parks` parking places) serving `host(port, iqn, out, held)` in a thread
    # of its own, its write answers held until the host is done; held[0]: how many writes the
    # thread was given (a chain each), kept up to date here (the host reads nothing of the
    # board's own: in this build, without a GIL, only this thread may); -> (out, the target)
    tgt = iscsi._targets[id(ctl)] = iscsi.Target(ctl, parks=parks)
    out = []
    held = [0]

    async def main():
        port = await iscsi.start(ctl, 0, "127.0.0.1", 0)
        tgt.complete = lambda: None                    # the thread's answers are held
        _thread.start_new_thread(host, (port, ctl.iqn, out, held))
        while not out or out[-1] is not None:
            held[0] = ctl.iop.chains.submitted
            await asyncio.sleep_ms(5)
        while tgt.conns:                               # the host's connections are gone
            await asyncio.sleep_ms(5)
        del tgt.complete
        await iscsi.stop(ctl)                          # (every held write answered)

    gc.collect()
    gc.disable()                 # (none may start in the host's thread: test_no_alloc.py says why)
    try:
        asyncio.run(main())
    finally:
        gc.enable()
    return out, tgt


def _host(fn):
    def run(port, iqn, out, held):
        try:
            fn(port, iqn, out, held)
        except Exception as e:
            out.append(repr(e))
        out.append(None)
    return run


def test_writes_past_the_parking_places_are_answered_busy_never_dropped():
    # eight writes sent at once: once one has gone to the thread (its answer held), the board is
    # busy and each next one does too while it finds a buffer (the connection's, then the two
    # parking places); the others are answered BUSY at once. Every write is answered or held.
    ctl = fw.boot()

    @_host
    def host(port, iqn, out, held):
        h = _Host(port, iqn)
        h.s.write(b"".join(h.write_pdu(i * 128) for i in range(8)))   # (one send: queued deep)
        h.s.settimeout(0.2)
        got = []
        for _ in range(150):                    # (30 s at most: only a dropped write waits so long)
            if len(got) + held[0] >= 8:
                break
            try:
                got.append(h.answer())
            except OSError:
                pass
        out.append((got, held[0]))
        h.s.close()

    out, tgt = _run(ctl, 2, host)
    answers, held = out[0]
    statuses = [st for op, st, itt in answers if op == 0x21]
    assert len(statuses) == len(answers) and set(statuses) <= {0x00, 0x08}, answers
    assert len(answers) + held == 8, (answers, held)            # none dropped
    assert 1 <= held <= 3, held                                  # own buffer + 2 parking places
    assert statuses.count(0x08) == tgt.busy >= 1, (answers, tgt.busy)


def test_a_connection_lost_while_a_write_s_data_comes_gives_its_parking_place_back():
    # a write's header in and its data never: the connection closes under it (before the board
    # reads the header or after), on twenty connections
    @_host
    def host(port, iqn, out, held):
        for i in range(20):
            h = _Host(port, iqn)
            # sent at once: the first goes to the thread in the connection's buffer (the board is
            # busy, the next header being in), the second takes a parking place for its data
            h.s.write(h.write_pdu(0) + h.write_pdu(128, data=False))
            h.s.close()
        out.append("sent")

    out, tgt = _run(fw.boot(), flow.PARK_SLOTS, host)
    assert out[0] == "sent", out
    assert len(tgt.parks) == flow.PARK_SLOTS and not tgt.parked, (len(tgt.parks), tgt.parked)
