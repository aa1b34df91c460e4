# Failbacks that meet something else (control/pair.md "Failback"): the restarted partner lost
# again while the survivor closes the portals it is handing back (the failback ends, then the
# survivor takes the drives and ports over again, as after any partner that died, instead of
# having handed them to nobody); and two failbacks at once (one runs, the other finds nothing).
import asyncio
from control import pair as P
from test_menu_pair import Ports, failed_over


class LostDuringClose(Ports):
    # the link drops while the portals close (their sessions end one by one)
    def __init__(self, pair, was):
        Ports.__init__(self)
        self.open = list(was)
        self.pair = pair

    async def close_ports(self, home):
        await Ports.close_ports(self, home)
        self.pair.link_down("socket error: ECONNRESET")
        await asyncio.sleep_ms(0)


def test_a_partner_lost_during_failback_is_taken_over_again_once_the_failback_ends():
    ctl = failed_over(1)
    pair = ctl.pair
    pair.partner = P.UP                  # controller 0 came back and proved the pair key
    ports = LostDuringClose(pair, pair.ports.open)
    pair.ports = ports

    async def failback():
        await pair.give_back()
        await asyncio.sleep_ms(50)       # the loss is handled once the failback has ended

    asyncio.run(failback())
    assert pair.serving == {0, 1} and sorted(ports.open) == [0, 1], (pair.serving, ports.open)
    assert pair.partner == P.DEAD and pair.giving == 0
    texts = [e["text"] for e in ctl.events.recent(16)]
    back = texts.index("PAIR: FAILBACK: CONTROLLER 0 GETS ITS DRIVES AND PORTS BACK")
    again = [i for i, t in enumerate(texts) if t.startswith("PAIR: FAILOVER: controller 0 is gone")]
    assert again and again[-1] > back, texts
    assert all(pair.owner(sd) == 1 for sd in ctl.drives), [pair.owner(sd) for sd in ctl.drives]
    ctl.iop.close()


class SlowClose(Ports):
    # closing the portals takes a while (their sessions end one by one); closing closed ones is
    # a fault
    async def close_ports(self, home):
        assert home in self.open, "portals of controller %d closed twice" % home
        await asyncio.sleep_ms(20)
        self.open.remove(home)


def test_two_failbacks_at_once_hand_back_once():
    # the partner's request (GIVE) and an operator's pair_failback arrive together
    ctl = failed_over(1)
    pair = ctl.pair
    pair.partner = P.UP
    ports = SlowClose()
    ports.open = list(pair.ports.open)
    pair.ports = ports

    async def both():
        await asyncio.gather(pair.give_back(), pair.failback())

    asyncio.run(both())
    assert pair.serving == {1} and ports.open == [1] and pair.giving == 0, (pair.serving, ports.open)
    texts = [e["text"] for e in ctl.events.recent(16)]
    assert texts.count("PAIR: FAILBACK: CONTROLLER 0 GETS ITS DRIVES AND PORTS BACK") == 1, texts
    ctl.iop.close()
