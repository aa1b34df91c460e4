# One end of a two-process link test (MicroPython): `micropython linkpair.py ROLE PORT MODE N`.
# ROLE 1 listens on 127.0.0.1:PORT (0: any; it prints "PORT <n>"), ROLE 0 dials it. Kind 16 is
# light: its handler answers at once with the request's first 8 bytes (as a mirror's
# acknowledgement would). Kind 18 is not: the reader handles it, and its handler first makes a
# call of its own back to the partner (the payload it holds must survive the frames that call
# reads), then answers. MODE "cross": both ends make N sync calls at the same time (every 8th
# one of ROLE 0's of kind 18: not both, for two calls of kinds the other side does not answer
# inline would wait for each other), each answering the other's light requests inline while it waits; "bench": ROLE 0 times N calls of 4 KiB
# (after 100 unmeasured) and prints "RTT_US <median> <p99>". Each end prints
# "DONE calls=<made> served=<answered> nested=<kind 18 answered> parsers=<receive buffers used>"
# once both are done.
import sys

sys.path.insert(0, __file__.rsplit("/", 1)[0] + "/../../firmware")
import asyncio
import time
from endpoints.link import link as L

ECHO = 16      # light: answered inline
DONE = 17      # "I made all my calls"
NEST = 18      # handled by the reader, with a call back to the partner before the answer


class Log:
    def log(self, level, text):
        print("event", level, text)


class Pair:
    def __init__(self, role):
        self.role = role
        self.link = None
        self.served = 0
        self.nested = 0
        self.partner_done = False

    def hello(self):
        return b"controller %d" % self.role

    def link_up(self, payload):
        pass

    def link_down(self, reason):
        print("LINK DOWN", reason)

    def light(self, kind):
        return kind == ECHO

    def frame(self, kind, seq, payload):
        if kind == ECHO:
            self.served += 1
            self.link.reply(seq, payload[:8])
        elif kind == NEST:
            held = bytes(payload)
            back = self.link.call(ECHO, payload[:8], 2000)
            if back != held[:8] or payload != held:
                raise AssertionError("payload changed under a nested call")
            self.nested += 1
            self.served += 1
            self.link.reply(seq, payload[:8])
        elif kind == DONE:
            self.partner_done = True


async def calls(pair, n, size, measure, nest=False):
    link = pair.link
    data = bytearray(size)
    times = []
    for i in range(n):
        data[0:8] = (pair.role * 1000000 + i).to_bytes(8, "little")
        t0 = time.ticks_us()
        r = link.call(NEST if nest and pair.role == 0 and i % 8 == 7 else ECHO, data, 2000)
        if measure:
            times.append(time.ticks_diff(time.ticks_us(), t0))
        if r != data[0:8]:
            raise AssertionError("call %d: wrong reply %r" % (i, r))
        if i % 16 == 0:
            await asyncio.sleep_ms(0)      # let the loop run now and then, as firmware would
    return times


async def main(role, port, mode, n):
    pair = Pair(role)
    link = L.Link(role, ("127.0.0.1", port), pair, Log())
    pair.link = link
    link.start()
    if role:
        print("PORT", link.port)
    while not link.up:
        await asyncio.sleep_ms(5)
    made = 0
    if mode == "cross":
        await calls(pair, n, 512, False, True)
        made = n
    elif role == 0:
        await calls(pair, 100, 4096, False)
        times = await calls(pair, n, 4096, True)
        times.sort()
        print("RTT_US", times[len(times) // 2], times[len(times) * 99 // 100])
        made = n
    await link.send(DONE, b"")
    while not pair.partner_done:
        await asyncio.sleep_ms(5)
    await asyncio.sleep_ms(50)             # the partner's last ACKs
    print("DONE calls=%d served=%d nested=%d parsers=%d" % (made, pair.served, pair.nested, 1 + len(link.spares)))
    link.close()


asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])))
