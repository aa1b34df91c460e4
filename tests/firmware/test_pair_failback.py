# A failback cut short (control/pair.md "Failback"): the restarted partner is lost again while the
# survivor closes the portals it is handing back. The failback ends, and then the survivor takes
# the partner's drives and ports over again, as after any partner that died, instead of having
# handed them to nobody.
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
