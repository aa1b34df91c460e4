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
from control import pair as P
from test_menu_pair import controller


def stand_in(ctl, beating=True):
    # a process /proc names "main.py <state dir>", its pid in the partner's pid file, rewriting
    # the partner's heartbeat every 50 ms (or once only: a hung one); -> its pid
    pdir = ctl.pair.partner_dir
    try:
        os.mkdir(pdir)
    except OSError:
        pass
    with open(pdir + "/beat.sh", "w") as f:
        f.write('i=0\nwhile :; do i=$((i+1)); echo "$i ACTIVE" > %s/heartbeat; %s; done\n'
                % (pdir, "sleep 0.05" if beating else "sleep 60"))
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
