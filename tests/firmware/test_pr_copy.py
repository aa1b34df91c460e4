# A logical unit's reservations as a pair carries them to the partner (scsi/pr.py state/load,
# control/pair.md "Reservations across the pair"): taken whole from one SCSI core and loaded into
# another, they answer and fence exactly as they did; a state that is not one is refused whole.
import json
import struct
import fw
from scsi import pr
from test_scsi import prout, c10

A = ("iqn.test:a", 0, 0, b"\x80\x00\x00\x01\x00\x01")     # with an ISID: a session's own I_T nexus
B = ("iqn.test:b", 1, 0, b"\x80\x00\x00\x02\x00\x01")     # through the other host port
C = ("iqn.test:c", 0, 0)                                   # not registered


def run(ctl, nexus, c, data=None):
    st, sn, d = ctl.execute(nexus, c, data)
    return st, bytes(d)


def po(ctl, nexus, sa, **kw):
    c, p = prout(sa, **kw)
    st, _ = run(ctl, nexus, c, p)
    assert st == 0, (sa, nexus, st)


def prin(ctl, sa):
    st, d = run(ctl, A, bytes([0x5E, sa, 0, 0, 0, 0, 0, 4, 0, 0]))
    assert st == 0
    return d


def key0(ctl):
    return pr.lukey(ctl.logical_unit(A))


def test_reservations_taken_whole_from_one_core_answer_and_fence_the_same_in_another():
    one = fw.boot()
    po(one, A, 6, sakey=0x1111)
    po(one, B, 6, sakey=0xFFFFFFFFFFFFFFFF)                  # the largest key survives JSON
    po(one, A, 1, rkey=0x1111, type_=pr.WR_EX_RO)             # write exclusive, registrants only
    k = key0(one)
    st = json.loads(json.dumps(one.core.pr.state(k)))        # as the link carries it
    other = fw.boot()
    other.core.pr.load(k, st)
    for sa in (0, 1, 3):                                     # READ KEYS, RESERVATION, FULL STATUS
        assert prin(other, sa) == prin(one, sa), sa
    wr, blk = c10(0x2A, 8, 1), bytes(512)
    for ctl in (one, other):
        assert run(ctl, C, wr, blk)[0] == 0x18               # not registered: fenced
        assert run(ctl, B, wr, blk)[0] == 0                  # a registrant writes
        assert run(ctl, C, c10(0x28, 8, 1))[0] == 0          # anyone reads
    # the generation goes on from where it was
    gen = struct.unpack(">I", prin(one, 0)[:4])[0]
    po(other, B, 0, rkey=0xFFFFFFFFFFFFFFFF, sakey=0)
    assert struct.unpack(">II", prin(other, 0)[:8]) == (gen + 1, 8)
    # taken away, nothing is left behind, and a RESERVE(6) works again
    assert other.core.pr.take(k) is not None and other.core.pr.state(k) is None
    assert k not in other.core.pr.keys()
    assert run(other, C, bytes([0x16, 0, 0, 0, 0, 0]))[0] == 0
    assert json.loads(json.dumps(other.core.pr.state(k)))["res"] == [1, ["iqn.test:c", 0], 0, 0]


def test_a_session_s_reserve_6_ends_with_the_ports_it_came_through():
    ctl = fw.boot()
    k = key0(ctl)
    assert run(ctl, B, bytes([0x16, 0, 0, 0, 0, 0]))[0] == 0          # through port 1
    ctl.core.pr.dirty.clear()
    ctl.core.pr.ports_lost([0])                                        # not its port: held
    assert ctl.core.pr.state(k)["res"][0] == 1 and not ctl.core.pr.dirty
    ctl.core.pr.ports_lost([1])
    assert ctl.core.pr.state(k) is None and ctl.core.pr.dirty == {k}
    assert run(ctl, C, c10(0x2A, 8, 1), bytes(512))[0] == 0


def test_every_change_and_only_a_change_is_marked_for_the_partner():
    ctl = fw.boot()
    k = key0(ctl)
    p = ctl.core.pr
    assert not p.dirty
    run(ctl, C, c10(0x28, 0, 1))
    assert not p.dirty                                       # a read changes nothing
    po(ctl, A, 6, sakey=5)
    assert p.dirty == {k}
    p.dirty.clear()
    c, d = prout(0, rkey=9, sakey=6)                         # the wrong key: refused, nothing to tell
    assert run(ctl, A, c, d)[0] == 0x18 and not p.dirty
    po(ctl, A, 1, rkey=5, type_=pr.WR_EX)                    # RESERVE
    assert p.dirty == {k}
    p.dirty.clear()
    po(ctl, A, 1, rkey=5, type_=pr.WR_EX)                    # the holder again: nothing changed
    assert not p.dirty
    po(ctl, A, 2, rkey=5, type_=pr.WR_EX)                    # RELEASE
    assert p.dirty == {k}
    p.dirty.clear()
    ctl.nexus_lost(*A[:2])                                   # persistent: the registration stays
    assert not p.dirty and p.state(k)["regs"]
    po(ctl, A, 3, rkey=5)                                    # CLEAR
    assert p.dirty == {k}


def test_a_state_that_is_not_one_is_refused_whole_and_changes_nothing():
    ctl = fw.boot()
    po(ctl, A, 6, sakey=7)
    po(ctl, A, 1, rkey=7, type_=pr.EX_AC)
    k = key0(ctl)
    good = json.loads(json.dumps(ctl.core.pr.state(k)))
    it = good["regs"][0][0]
    bad = [None, [], "x", {}, {"gen": 1}, {"gen": -1, "regs": []}, {"gen": 1 << 32, "regs": []},
           {"gen": 0, "regs": [[it, 1 << 64]]}, {"gen": 0, "regs": [[it, -1]]},
           {"gen": 0, "regs": [[["n", 70000], 1]]}, {"gen": 0, "regs": [[["n", 1, "zz"], 1]]},
           {"gen": 0, "regs": [[["n", 1, "abc"], 1]]}, {"gen": 0, "regs": [[[3, 1], 1]]},
           {"gen": 0, "regs": [[it, 1]] * (pr.MAX_REGS + 1)},
           {"gen": 0, "regs": [], "res": [0, it, 2, 7]},            # type 2 is obsolete
           {"gen": 0, "regs": [], "res": [0, None, pr.WR_EX, 7]},   # a holder's type, no holder
           {"gen": 0, "regs": [], "res": [0, it, pr.EX_AC_AR, 7]},  # all registrants: no holder
           {"gen": 0, "regs": [], "res": [1, it, 0, 5]},            # RESERVE(6) has no key
           {"gen": 0, "regs": [], "res": [2, it, 0, 0]}, {"gen": 0, "regs": [], "res": [1, it]},
           {"gen": 0, "regs": [], "res": [0, it, 3.0, 7]}, {"gen": 0, "regs": [], "res": [True, it, 0, 0]},
           {"gen": 1.0, "regs": []}, {"gen": 0, "regs": [[it, 2.0]]}]           # numbers that are not ints
    for st in bad:
        try:
            ctl.core.pr.load(k, st)
        except (ValueError, TypeError):
            pass
        else:
            raise AssertionError("loaded %r" % (st,))
        assert ctl.core.pr.state(k) == good, st
    assert run(ctl, C, c10(0x28, 0, 1))[0] == 0x18           # still reserved: exclusive access
