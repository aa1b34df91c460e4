# A controller booting into a pair never takes over a partner that runs (control/pair.md
# "Booting"): not while the two are still meeting (a failback can take longer than the boot's wait
# for the partner), not while the partner runs but the link does not come up, and not after the
# link was lost in the middle of a failback. Each of those once ended with both controllers serving
# the same drives, or with the booting one failing to open portals its partner still held.
# The partner here is a stand-in process: named as a firmware of this state directory, it beats
# the disk heartbeat (or stops beating, as a hung one); the host ports are main.py's, recorded.
import asyncio
import os
import time
import fw
from control import pair as P
from test_menu_pair import controller


def stand_in(ctl, beating=True, mode="ACTIVE"):
    # a process /proc names "main.py <state dir>", its pid in the partner's pid file, rewriting
    # the partner's heartbeat (with `mode`) every 50 ms, or once only (a hung one); -> its pid
    pdir = ctl.pair.partner_dir
    try:
        os.mkdir(pdir)
    except OSError:
        pass
    with open(pdir + "/beat.sh", "w") as f:
        f.write('i=0\nwhile :; do i=$((i+1)); echo "$i %s" > %s/heartbeat; %s; done\n'
                % (mode, pdir, "sleep 0.05" if beating else "sleep 60"))
    os.system("bash -c 'exec -a \"main.py %s\" bash %s/beat.sh' </dev/null >/dev/null 2>&1 & echo $! > %s/%s"
              % (ctl.state_dir, pdir, pdir, P.PID_FILE))
    with open("%s/%s" % (pdir, P.PID_FILE)) as f:
        pid = int(f.read())
    while True:                  # until bash has become the stand-in and beaten once
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                if f.read().startswith(b"main.py") and ctl.pair.partner_beat()[0] > 0:
                    return pid
        except OSError:
            pass
        time.sleep_ms(5)


def gone(pid):
    os.system("kill -KILL %d" % pid)


def texts(ctl):
    return [e["text"] for e in ctl.events.recent(32)]


def test_a_partner_that_runs_unheard_is_waited_for_not_taken_over():
    ctl, ports = controller(0)
    pid = stand_in(ctl)
    state = {}

    async def boot():
        t = asyncio.create_task(ctl.pair.join(100))
        for _ in range(20):                  # 2 s of the partner running, not heard
            await asyncio.sleep_ms(100)
        state["while"] = (set(ctl.pair.serving), list(ports.open))
        gone(pid)                            # now it stops: taken over
        await t

    asyncio.run(boot())
    assert state["while"] == (set(), []), state
    assert "PAIR: CONTROLLER 1 RUNS BUT IS NOT HEARD ON THE LINK: NOTHING SERVED HERE UNTIL THE TWO " \
           "MEET OR IT STOPS" in texts(ctl)
    assert ctl.pair.serving == {0, 1} and ports.open == [0, 1], (ctl.pair.serving, ports.open)
    ctl.iop.close()


def test_a_partner_hung_at_boot_is_reset_and_taken_over():
    ctl, ports = controller(1)
    pid = stand_in(ctl, beating=False)
    asyncio.run(ctl.pair.join(100))
    assert not P.firmware_alive(pid, ctl.state_dir)
    assert "PAIR: CONTROLLER 0 RESET (its heartbeat stopped)" in texts(ctl)
    assert ctl.pair.serving == {0, 1} and ports.open == [1, 0], (ctl.pair.serving, ports.open)
    ctl.iop.close()


def test_a_meeting_that_outlasts_the_boot_s_wait_is_waited_for():
    ctl, ports = controller(0)
    pid = stand_in(ctl)
    pair = ctl.pair
    seen = {}

    async def boot():
        t = asyncio.create_task(pair.join(100))
        pair.partner = P.UP                  # heard and proven; its failback takes a while
        await asyncio.sleep_ms(1500)
        seen["meeting"] = (set(pair.serving), list(ports.open))
        pair.serving.add(0)                  # the meeting ends (as _meet does)
        await ports.open_ports(0)
        pair.joined.set()
        await t

    asyncio.run(boot())
    gone(pid)
    assert seen["meeting"] == (set(), []), seen
    assert pair.serving == {0} and ports.open == [0], (pair.serving, ports.open)
    assert not any(t.startswith("PAIR: FAILOVER") for t in texts(ctl)), texts(ctl)
    ctl.iop.close()


def test_a_link_lost_while_the_partner_gives_back_leaves_the_drives_unserved_until_it_is_decided():
    ctl, ports = controller(0)
    pair = ctl.pair
    pair.partner = P.UP                      # a restart: the partner serves this controller's too
    pair.partner_serving = {0, 1}
    pid = stand_in(ctl)

    async def lost(kind, payload):
        pair.link_down("socket error: ECONNRESET")    # (the partner is alive: apart)
        raise pair.Down("lost")

    pair.link.request = lost
    seen = {}

    async def meet():
        await pair._meet(False)
        seen["after"] = (set(pair.serving), list(ports.open))
        gone(pid)                            # then it dies: its drives and this one's are taken
        for _ in range(100):
            if pair.joined.is_set():
                break
            await asyncio.sleep_ms(50)

    asyncio.run(meet())
    assert seen["after"] == (set(), []), seen
    assert "PAIR: LINK LOST WHILE CONTROLLER 1 GAVE BACK THIS CONTROLLER'S DRIVES: NOTHING SERVED UNTIL " \
           "THAT IS DECIDED" in texts(ctl)
    assert pair.serving == {0, 1} and sorted(ports.open) == [0, 1], (pair.serving, ports.open)
    ctl.iop.close()


def test_a_partner_that_stood_down_is_taken_over_at_boot_without_a_reset():
    # it lives (its heartbeat moves) but serves nothing until it is restarted
    ctl, ports = controller(0)
    pid = stand_in(ctl, mode="STOOD DOWN")
    asyncio.run(ctl.pair.join(100))
    assert P.firmware_alive(pid, ctl.state_dir)
    assert ctl.pair.serving == {0, 1} and ports.open == [0, 1] and ctl.pair.partner == P.APART
    assert not any("RESET" in t for t in texts(ctl)), texts(ctl)
    gone(pid)
    ctl.iop.close()


def test_a_controller_that_stood_down_while_booting_serves_nothing_when_the_link_returns():
    ctl, ports = controller(1)
    pair = ctl.pair
    pair.partner, pair.partner_serving = P.UP, {0, 1}
    pid = stand_in(ctl)
    asked = []

    async def lost(kind, payload):
        pair.link_down("heartbeat lost after 500 ms")
        raise pair.Down("lost")

    async def answered(kind, payload):
        asked.append(kind)
        return b"ok"

    async def boot():
        t = asyncio.create_task(pair.join(100))
        pair.link.request = lost
        await pair._meet(False)              # its claim cut short; then, both alive, it stands down
        await t
        pair.link.request = answered         # the link comes back (it is not held)
        pair.partner, pair.partner_serving = P.UP, {0, 1}
        await pair._meet(False)

    asyncio.run(boot())
    gone(pid)
    assert pair.mode == P.STOOD_DOWN and (asked, pair.serving, ports.open) == ([], set(), [])
    ctl.iop.close()


def claim_cut_short():
    # a restarted controller whose partner serves its drives, hands over a consistency check of
    # SD0 (as lop.state saves it) and loses the link before it answers the claim (GIVE)
    donor = fw.boot()
    donor.command("lop_start", {"op": "check", "sd": 0})
    saved = [op.save() for op in donor.lops.ops]
    donor.iop.close()
    assert saved
    ctl, ports = controller(0)
    pair = ctl.pair
    pair.partner, pair.partner_serving = P.UP, {0, 1}
    pid = stand_in(ctl)

    async def lost(kind, payload):
        pair.handed = list(saved)            # its LOPS came, then the link went before the answer
        pair.link_down("socket error: ECONNRESET")
        raise pair.Down("lost")

    pair.link.request = lost
    return ctl, ports, pid, saved


def test_long_operations_handed_over_before_a_claim_was_cut_short_run_here():
    ctl, ports, pid, saved = claim_cut_short()
    pair = ctl.pair

    async def meet():
        await pair._meet(False)
        gone(pid)                            # it dies: everything is taken over here
        while not pair.joined.is_set():
            await asyncio.sleep_ms(50)

    asyncio.run(meet())
    assert pair.serving == {0, 1} and pair.handed == []
    assert any(op.sd == 0 for op in ctl.lops.ops), ctl.lops.ops
    ctl.iop.close()


def test_a_claim_cut_short_is_finished_when_the_link_returns_at_once():
    # the partner gave the drives back, but its answer was lost with the link, which returns at
    # once: its new HELLO says it serves only its own. The drives are taken back as after any
    # failback (snapshot index, change tracking, the long operations it handed over)
    ctl, ports, pid, saved = claim_cut_short()
    pair = ctl.pair
    took = []
    took_back = ctl.took_back
    ctl.took_back = lambda ops=(): (took.append(list(ops)), took_back(ops))

    async def meet():
        await pair._meet(False)
        await asyncio.sleep_ms(50)
        pair.partner, pair.partner_serving = P.UP, {1}     # met again
        await pair._meet(False)
        await asyncio.sleep_ms(500)          # (the loss, looked at, finds it back)

    asyncio.run(meet())
    gone(pid)
    assert (pair.serving, ports.open) == ({0}, [0]) and took == [saved], (pair.serving, took)
    ctl.iop.close()


def test_a_take_over_made_while_the_lost_partner_was_looked_at_stands():
    # the link drops while the partner lives (looked at: apart?), then it dies and the boot's
    # wait takes everything over: the first look's stale answer must not stand this one down
    ctl, ports = controller(1)
    pair = ctl.pair
    pid = stand_in(ctl)

    async def boot():
        t = asyncio.create_task(pair.join(100))
        await asyncio.sleep_ms(10)
        pair.partner = P.UP
        pair.link_down("heartbeat lost after 500 ms")
        await asyncio.sleep_ms(60)
        gone(pid)
        await t
        await asyncio.sleep_ms(600)

    asyncio.run(boot())
    assert pair.mode == P.ACTIVE and pair.serving == {0, 1}, (pair.mode, pair.serving, texts(ctl))
    ctl.iop.close()
