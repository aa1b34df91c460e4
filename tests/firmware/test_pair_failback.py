# A failback cut short (control/pair.md "Failback"): the restarted partner is lost again while the
# survivor closes the portals it is handing back. The survivor keeps its partner's drives and
# ports, says so, and counts the partner as failed, instead of handing them to nobody.
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


def test_a_partner_lost_during_failback_gets_nothing_and_the_survivor_keeps_serving():
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
    assert pair.partner == P.DEAD and not pair.giving
    texts = [e["text"] for e in ctl.events.recent(16)]
    assert "PAIR: FAILBACK STOPPED: CONTROLLER 0 LOST DURING IT; CONTROLLER 1 KEEPS ITS DRIVES AND PORTS" in texts, texts
    assert all(pair.owner(sd) == 1 for sd in ctl.drives), [pair.owner(sd) for sd in ctl.drives]
    ctl.iop.close()
