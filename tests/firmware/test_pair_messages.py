# What a controller of a pair does with a partner's message it cannot read (control/pair.md
# "Messages"): it logs the refusal and answers a request with `refused` at once, so the partner
# never waits out its timeout, and it carries on.
import json
from control import pair as P
from endpoints.link import link as L
from scsi import pr as prmod
from test_menu_pair import controller


class Replies:
    calling = False
    # the link as the pair logic uses it to answer: what it answered, to which request
    def __init__(self):
        self.sent = []

    def reply(self, seq, payload=b"", gen=0):
        # (a payload may come in parts, as the link takes it)
        self.sent.append((seq, b"".join(bytes(x) for x in payload) if type(payload) is list else bytes(payload)))


def partner_up(n=0):
    ctl, _ = controller(n)
    ctl.pair.link = Replies()
    ctl.pair.partner = P.UP          # as after the partner proved the pair key
    return ctl


def refusals(ctl):
    return [e["text"] for e in ctl.events.recent(64) if "REFUSED: UNREADABLE" in e["text"]]


def test_an_unreadable_request_is_refused_at_once_and_logged():
    ctl = partner_up()
    junk = b"\xff\x00{"
    for seq, kind in enumerate((P.K_FWD, P.K_RESV, P.K_NEXUS, P.K_SNAP, P.K_CFG), 1):
        ctl.pair.frame(kind, seq, memoryview(junk))
        assert ctl.pair.link.sent[-1][0] == seq, (kind, ctl.pair.link.sent)
    answers = [a for _, a in ctl.pair.link.sent]
    assert answers[:3] == [P.REFUSED] * 3 and answers[3] == b"unreadable", answers
    assert answers[4].startswith(b"unusable"), answers
    assert len(refusals(ctl)) == 3
    assert "MESSAGE KIND 26 FROM CONTROLLER 1 REFUSED: UNREADABLE (buffer too small)" in refusals(ctl)[2]
    # a firmware command answers with its own error
    ctl.pair.frame(P.K_CMD, 9, memoryview(junk))
    assert ctl.pair.link.sent[-1][0] == 9 and b'"BAD_ARGUMENT"' in ctl.pair.link.sent[-1][1]


def test_the_retired_mirror_messages_are_ignored_and_logged():
    # 23 and 24 carried write-back records and exceptions before the mirror memory took them
    ctl = partner_up()
    for kind in (23, 24):
        ctl.pair.frame(kind, 5, memoryview(b"\x00\x01"))
    assert ctl.pair.link.sent == []
    assert sum("UNKNOWN MESSAGE KIND" in e["text"] for e in ctl.events.recent(8)) == 2


def test_unreadable_one_way_messages_are_logged_and_change_nothing():
    ctl = partner_up()
    before = (set(ctl.pair.partner_serving), list(ctl.pair.handed))
    for kind, payload in ((P.K_STATE, b"[1]"), (P.K_STATE, b"not json"), (P.K_LOPS, b'{"kind": 1}'),
                          (P.K_LOPS, b"\xc3")):
        ctl.pair.frame(kind, 9, memoryview(payload))
    assert (set(ctl.pair.partner_serving), list(ctl.pair.handed)) == before
    assert len(refusals(ctl)) == 4 and ctl.pair.link.sent == []


def test_a_refused_forwarded_command_reaches_the_host_as_a_lost_owner():
    ctl = partner_up()
    assert ctl.pair._outcome(P.REFUSED) == ctl.pair.transition()
    assert any("FORWARDED COMMAND REFUSED BY CONTROLLER 1" in e["text"] for e in ctl.events.recent(64))


def _journal_records(path):
    # (header, data) of each record of a write-back journal file, as storage/cache.py writes them
    import struct
    from storage import cache
    out = []
    with open(path, "rb") as f:
        b = f.read()
    o = 0
    while o < len(b):
        nb = struct.unpack_from("<IIIII", b, o)[4]
        out.append(bytes(b[o + cache.HDR:o + cache.HDR + nb * 512]))
        o += cache.HDR + nb * 512
    return out


def test_write_back_records_are_in_the_partners_memory_as_they_are_journaled():
    # the cache's copy goes straight into the partner's directory (its mirror memory): appended
    # record by record, a fresh copy put in place whole and only then stamped with the epoch
    import fw
    from control import mirror as M
    from storage import cache

    class Ctl:
        own_dir = fw.tmpdir("mine")
        events = None

    class Pair:
        ctl, partner_dir, other, partner = Ctl(), fw.tmpdir("partners"), 1, P.UP

        def up(self):
            return self.partner == P.UP

    p = Pair()
    m = M.WriteBackMirror(p)
    hdr = bytearray(cache.HDR)
    m.reset()
    hdr[16] = 1
    m.record(hdr, bytes(512))
    assert M.read_int(p.partner_dir + "/mirror.epoch") == -1          # not in place before commit
    m.commit()
    assert M.read_int(p.partner_dir + "/mirror.epoch") == 0
    m.record(hdr, b"\x07" * 512)                                       # appended at once
    assert _journal_records(p.partner_dir + "/mirror.journal") == [bytes(512), b"\x07" * 512]
    m.reset()                                                          # a fresh copy, aside
    m.record(hdr, b"\x09" * 512)
    assert len(_journal_records(p.partner_dir + "/mirror.journal")) == 2
    m.commit()
    assert _journal_records(p.partner_dir + "/mirror.journal") == [b"\x09" * 512]
    # the partner not up: this controller writes back alone, its epoch bumped once
    p.partner = P.UNKNOWN
    m.record(hdr, bytes(512))
    m.record(hdr, bytes(512))
    assert M.read_int(Ctl.own_dir + "/epoch") == 1 and m.alone
    assert _journal_records(p.partner_dir + "/mirror.journal") == [b"\x09" * 512]


def test_a_snapshot_s_end_is_in_the_partner_s_memory_before_its_message():
    # control/pair.md "The snapshot across the pair": the end goes into the partner's mirror
    # memory first, so a SNAP message that comes late (here: never) cannot leave the partner
    # reading the writes that are no longer copied as the image
    import os
    import struct
    import binascii
    import fw
    from control import mirror as M
    from test_menu_pair import failed_over
    ctl = failed_over(0)                 # serving its drives (its partner did not answer at boot)
    ctl.pair.partner = P.UP              # ... and now heard, but slow to answer

    class Late(Replies):
        def call(self, kind, payload, timeout_ms):
            raise ctl.pair.Down("no reply to kind %d" % kind)
    ctl.pair.link = Late()
    try:
        os.mkdir(ctl.pair.partner_dir)
    except OSError:
        pass
    initiate, terminate = fw.cdb(0x20, 0, 0x60, 0, 0, 0, 0, 0, 0, 0), fw.cdb(0x20, 0, 0x61, 0, 0, 0, 0, 0, 0, 0)
    assert fw.run(ctl, 0, initiate)[0] == 0
    sid = ctl.engine.snap_id
    assert fw.run(ctl, 0, terminate)[0] == 0
    with open(ctl.pair.partner_dir + "/" + M.EXC_FILE, "rb") as f:
        data = f.read()
    assert len(data) == M.ENTRY, data
    assert struct.unpack("<IIII", data[:16]) == (sid, M.END, 0, 0)      # ended, state IDLE
    assert struct.unpack("<I", data[16:])[0] == binascii.crc32(data[:16])


def test_the_partner_s_reservations_are_kept_whole_or_refused_whole():
    # (control/pair.md "Reservations across the pair")
    ctl = partner_up()
    p = ctl.pair
    st = {"gen": 3, "regs": [[["iqn.h", 2], 5]], "res": [0, ["iqn.h", 2], 1, 5]}
    p.serving = set()         # as a controller that serves none of them: all are the partner's
    for seq, junk in enumerate((b"[]", b'{"x": null}', b'{"99": null}', b'{"0": {"gen": 1}}',
                                b'{"0": %s, "1": 7}' % json.dumps(st).encode(), b"\xff"), 1):
        p.frame(P.K_PRS, seq, memoryview(junk))
        assert p.link.sent[-1] == (seq, P.REFUSED), junk
    assert p.pr_copy == {} and len(refusals(ctl)) == 6
    p.frame(P.K_PRS, 20, memoryview(json.dumps({"0": st, "1": None}).encode()))
    assert p.link.sent[-1] == (20, b"ok") and p.pr_copy == {0: st}
    # served here from now on (as after a failover): the SCSI core has them
    p.serving = {0}
    p.settle_reservations()
    assert p.pr_copy == {} and ctl.core.pr.state(0) == st
    # what is served here is this controller's own: the partner's word does not replace it
    p.frame(P.K_PRS, 21, memoryview(b'{"0": null}'))
    assert p.link.sent[-1] == (21, b"ok") and ctl.core.pr.state(0) == st
    # no longer served here (a failback): back to the partner's side, nothing left in the core
    p.serving = set()
    p.settle_reservations()
    assert p.pr_copy == {0: st} and 0 not in ctl.core.pr.keys()


class Calls(Replies):
    # a link that also makes calls: `answer(kind, payload)` gives each one's reply (or raises
    # LinkDown); light frames the partner sends meanwhile are handled inside, as the link does
    def __init__(self, answer):
        Replies.__init__(self)
        self.calling = False
        self.calls = []
        self.answer = answer

    def call(self, kind, payload, ms):
        self.calls.append((kind, bytes(payload)))
        return self.answer(kind, payload)


def prout(ctl, nexus, sa, rkey=0, sakey=0, type_=0):
    c = bytes([0x5F, sa, type_, 0, 0, 0, 0, 0, 24, 0])
    return ctl.execute_here(nexus, c, rkey.to_bytes(8, "big") + sakey.to_bytes(8, "big") + bytes(8))


def register(ctl, key):
    return prout(ctl, ("iqn.test:h", 0, 0), 6, sakey=key)


def owner_on_a_link(lost):
    # a controller serving its drives, its partner met, over a link whose calls fail while lost[0]
    ctl = partner_up()
    p = ctl.pair
    p.serving = {0}
    p.pr.hold = False                        # (as once the two met)

    def answer(kind, payload):
        if lost[0]:
            raise L.LinkDown("lost")
        return b"ok"

    p.link = Calls(answer)
    return ctl


def test_a_reservation_change_the_partner_does_not_get_is_undone_and_fails_retryably():
    lost = [True]
    ctl = owner_on_a_link(lost)
    p = ctl.pair
    st, sn, _ = register(ctl, 0x77)
    assert (st, bytes(sn[2:3]), bytes(sn[12:14])) == (2, b"\x02", b"\x04\x0a"), (st, sn)
    assert ctl.core.pr.state(0) is None                       # undone
    assert any("RESERVATIONS NOT IN CONTROLLER 1'S MEMORY" in e["text"] for e in ctl.events.recent(8))
    lost[0] = False
    assert register(ctl, 0x77)[0] == 0
    told = json.loads(p.link.calls[-1][1])
    assert p.link.calls[-1][0] == P.K_PRS and told["0"] == ctl.core.pr.state(0)
    assert told["0"]["regs"][0][1] == 0x77
    # while the partner is lost and not yet decided, nothing is changed at all
    p.link_down("socket error: ECONNRESET")
    n = len(p.link.calls)
    assert register(ctl, 0x78)[0] == 2 and len(p.link.calls) == n
    assert ctl.core.pr.state(0)["regs"][0][1] == 0x77


def test_the_backup_lun_s_reservations_come_over_once_the_partner_has_stopped_serving_it():
    # a snapshot starts here while the log drive is the partner's: it serves the backup LUN until
    # it answers the snapshot message, and a change it makes meanwhile arrives inside that call
    ctl = partner_up()
    p = ctl.pair
    eng = ctl.engine
    log = eng.log_sd
    ctl.cfg.sd[log].affinity = 1
    p.serving = {0}
    ks = [log * 2, log * 2 + 1]
    st = {"gen": 2, "regs": [[["iqn.h", 2], 9]], "res": [0, ["iqn.h", 2], 3, 9]}
    p.pr_copy = {k: {"gen": 1, "regs": [], "res": None} for k in ks}      # what it said before

    def answer(kind, payload):
        if kind == P.K_SNAP:    # its last change, told before its answer
            p.frame(P.K_PRS, 50, memoryview(json.dumps({str(k): st for k in ks}).encode()))
        return b"ok"

    p.link = Calls(answer)
    eng.primary_sd = 0
    p.snapshot_changed(P.ACTIVE_SNAPSHOT)
    assert [ctl.core.pr.state(k) for k in ks] == [st, st] and p.pr_copy == {}



def test_an_undone_preempt_is_not_heard_of_by_the_node_it_would_have_preempted():
    lost = [False]
    ctl = owner_on_a_link(lost)
    a, b = ("iqn.test:a", 0, 0), ("iqn.test:b", 0, 0)
    assert prout(ctl, a, 0, sakey=0xA)[0] == 0 and prout(ctl, b, 0, sakey=0xB)[0] == 0
    assert prout(ctl, b, 1, rkey=0xB, type_=1)[0] == 0
    before = ctl.core.pr.state(0)
    lost[0] = True
    assert prout(ctl, a, 4, rkey=0xA, sakey=0xB, type_=1)[0] == 2     # PREEMPT b: undone
    assert ctl.core.pr.state(0) == before
    lost[0] = False
    assert ctl.execute_here(b, bytes(6), None)[0] == 0                 # no 2A/05 for b
    assert prout(ctl, a, 4, rkey=0xA, sakey=0xB, type_=1)[0] == 0     # told: done, and heard
    st, sn, _ = ctl.execute_here(b, bytes(6), None)
    assert st == 2 and bytes(sn[12:14]) == b"\x2a\x05"


def test_a_change_undone_stays_undone_when_its_logical_unit_moves_during_the_telling():
    # the partner starts a snapshot of its primary while this controller's PRS call waits: the
    # backup LUN's reservations leave here inside that call; then the call fails. The host is
    # told to retry, so the partner's copy must not have the change either
    ctl = partner_up()
    p = ctl.pair
    log = ctl.engine.log_sd
    ctl.cfg.sd[log].affinity = 0
    ctl.cfg.sd[0].affinity = 1               # the primary is the partner's
    p.serving = {0}
    p.pr.hold = False
    bk = log * 2 + 1                         # the backup LUN (LUN 1)

    def answer(kind, payload):
        if kind == P.K_PRS:
            msg = {"state": 1, "primary": 0, "snap_id": 1, "generation": 1, "started": 0, "last": 0}
            p.frame(P.K_SNAP, 60, memoryview(json.dumps(msg).encode()))     # light: inside the call
            raise L.LinkDown("lost")
        return b"ok"

    p.link = Calls(answer)
    assert p._serves_key(bk)
    st, sn, _ = prout(ctl, ("iqn.test:h", 0, 1), 6, sakey=0x77)
    assert st == 2 and bytes(sn[12:14]) == b"\x04\x0a"
    assert ctl.core.pr.state(bk) is None and p.pr_copy.get(bk) is None, p.pr_copy
    assert not ctl.core.pr.undo


def test_a_telling_put_off_inside_a_call_is_not_a_failure():
    # (a light handler, inside a call of ours: RESV goes out once the loop runs again)
    ctl = partner_up()
    p = ctl.pair
    p.serving = {0}
    log = ctl.engine.log_sd
    p.pr.held[log * 2 + 1] = prmod.Res(True, ("iqn.x", 0), 0, 0)      # the backup LUN reserved here
    p.link = Calls(lambda k, pl: b"ok")
    p.link.calling = True
    assert p.reservations_checked() is True


def test_a_status_query_is_answered_even_while_this_controller_waits_on_a_call_of_its_own():
    # both controllers' status screens ask each other for the snapshot during a failback: each
    # answers the other's query inside its own call, so neither waits out the 5 s
    ctl = partner_up()
    p = ctl.pair
    assert p.light(P.K_QUERY) and not p.light(P.K_CMD)
    p.link.calling = True
    p.frame(P.K_QUERY, 31, memoryview(b'{"name": "snapshot_status", "args": {}}'))
    seq, ans = p.link.sent[-1]
    assert seq == 31 and json.loads(ans)["result"]["state"] == "IDLE", ans
    # only commands that read go this way: anything else is refused (it may call the partner)
    p.frame(P.K_QUERY, 32, memoryview(b'{"name": "snapshot_start", "args": {"sd": 0}}'))
    p.frame(P.K_QUERY, 33, memoryview(b'[1]'))
    assert p.link.sent[-2:] == [(32, P.REFUSED), (33, P.REFUSED)]
    assert ctl.engine.state != P.ACTIVE_SNAPSHOT


def _waiting_on(link, kind):
    # the link as it is while this controller is blocked on a call of `kind` (link.post)
    link.calling = True
    link.call_kind = kind
    link.call_reply = None


def _wb(ctl, sd):
    from hw import nvram
    return bool(ctl.cfg.sd[sd].raid & nvram.WB_MSK)


def test_controller_1_answers_busy_a_request_that_crosses_one_of_its_own():
    # both blocked on a request the other runs on its main loop would wait 5 s for each other
    # (every host of both stalled): controller 1 answers the partner's at once, and runs nothing
    ctl = partner_up(1)
    p = ctl.pair
    _waiting_on(p.link, P.K_CMD)
    assert p.light(P.K_CMD) and p.light(P.K_FWD_WAIT) and not p.light(P.K_FWD)
    before = _wb(ctl, 0)
    p.frame(P.K_CMD, 40, memoryview(json.dumps({"name": "sd_policy", "args": {"sd": 0, "wb": not before}}).encode()))
    seq, ans = p.link.sent[-1]
    assert seq == 40 and json.loads(ans)["error"] == "PARTNER_BUSY" and _wb(ctl, 0) == before
    fwd = b"".join(bytes(x) for x in p._fwd_parts(("iqn.x", 0, 0), bytes([0x35]) + bytes(9), None))
    p.frame(P.K_FWD_WAIT, 41, memoryview(fwd))
    assert p.link.sent[-1] == (41, P.BUSY_ANSWER)
    assert p._outcome(P.BUSY_ANSWER) == (8, None, b"")          # BUSY reaches the console
    # blocked on the partner's FWDW as well; but once its answer is in, nothing crosses it
    _waiting_on(p.link, P.K_FWD_WAIT)
    assert p.light(P.K_CMD)
    p.link.call_reply = b"the answer"
    assert not p.light(P.K_CMD) and not p.light(P.K_FWD_WAIT)


def test_no_request_is_answered_busy_where_none_cross():
    # controller 0 keeps a crossing request for its reader (controller 1 answers its own busy);
    # a call the partner answers inline (here CFG) crosses nothing; a host's FWD is never refused
    c0 = partner_up(0)
    _waiting_on(c0.pair.link, P.K_CMD)
    assert not c0.pair.light(P.K_CMD) and not c0.pair.light(P.K_FWD_WAIT)
    c1 = partner_up(1)
    _waiting_on(c1.pair.link, P.K_CFG)
    assert not c1.pair.light(P.K_CMD) and not c1.pair.light(P.K_FWD_WAIT)
    c1.pair.link.calling = False              # the reader runs it: it is executed
    c1.pair.serving = {0, 1}
    fwd = b"".join(bytes(x) for x in c1.pair._fwd_parts(("iqn.x", 0, 0), bytes(6), None))
    c1.pair.frame(P.K_FWD_WAIT, 42, memoryview(fwd))
    seq, ans = c1.pair.link.sent[-1]
    assert seq == 42 and ans != P.BUSY_ANSWER and c1.pair._outcome(ans)[0] == 0, ans
