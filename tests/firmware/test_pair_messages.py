# What a controller of a pair does with a partner's message it cannot read (control/pair.md
# "Messages"): it logs the refusal and answers a request with `refused` at once, so the partner
# never waits out its timeout, and it carries on.
from control import pair as P
from test_menu_pair import controller


class Replies:
    # the link as the pair logic uses it to answer: what it answered, to which request
    def __init__(self):
        self.sent = []

    def reply(self, seq, payload=b"", gen=0):
        self.sent.append((seq, bytes(payload)))


def partner_up():
    ctl, _ = controller(0)
    ctl.pair.link = Replies()
    ctl.pair.partner = P.UP          # as after the partner proved the pair key
    return ctl


def refusals(ctl):
    return [e["text"] for e in ctl.events.recent(64) if "REFUSED: UNREADABLE" in e["text"]]


def test_an_unreadable_request_is_refused_at_once_and_logged():
    ctl = partner_up()
    junk = b"\xff\x00{"
    for seq, kind in enumerate((P.K_FWD, P.K_EXC, P.K_NEXUS, P.K_SNAP, P.K_CFG, P.K_WB), 1):
        ctl.pair.frame(kind, seq, memoryview(junk))
        assert ctl.pair.link.sent[-1][0] == seq, (kind, ctl.pair.link.sent)
    answers = [a for _, a in ctl.pair.link.sent]
    assert answers[:3] == [P.REFUSED] * 3 and answers[3] == b"unreadable", answers
    assert answers[4].startswith(b"unusable") and answers[5] == P.REFUSED, answers
    assert len(refusals(ctl)) == 4
    assert "MESSAGE KIND 26 FROM CONTROLLER 1 REFUSED: UNREADABLE (buffer too small)" in refusals(ctl)[2]
    # a firmware command answers with its own error
    ctl.pair.frame(P.K_CMD, 9, memoryview(junk))
    assert ctl.pair.link.sent[-1][0] == 9 and b'"BAD_ARGUMENT"' in ctl.pair.link.sent[-1][1]


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


def test_write_back_records_go_to_the_partner_in_messages_the_link_can_carry():
    # a journal rewrite sends every dirty line: records of whole cache lines, whatever their
    # size, are split between messages, never cut, and none passes the link's largest frame
    from endpoints.link import frame as F
    import fw

    class Link:
        def __init__(self):
            self.sizes = []

        def call(self, kind, parts, ms):
            assert kind == P.K_WB
            self.sizes.append(F.size(parts))
            return b"ok"

    class Ctl:
        own_dir = fw.tmpdir("mirror")

    class Pair:
        ctl, partner, link, Down = Ctl(), P.UP, Link(), Exception

    m = P.Mirror(Pair())
    m.reset()
    for size in (4096, 229376, 262144, 1048576, 65536, 262144, 262144, 262144, 262144, 512):
        m.record(bytes(24), bytes(size))
    m.commit()
    sizes = Pair.link.sizes
    assert max(sizes) <= F.MAX_PAYLOAD and len(sizes) >= 4, sizes
    assert sum(sizes) == 5 + 10 * 24 + sum((4096, 229376, 262144, 1048576, 65536, 262144, 262144, 262144, 262144, 512)) + (len(sizes) - 1)
