# The partner of a dual-active pair (FIG. 7): which controller serves which system drives and host
# ports, the configuration both NV memories hold, commands forwarded to a drive's owner, and what
# happens when the partner dies, rejoins or can no longer be heard. The rules: control/pair.md.
#
# The back-end link (endpoints/link) is handed in by main.py; this module gives it the handler
# methods hello, link_up, link_down, light and frame, and uses link.call (blocking, for what must
# be in the partner's memory before an answer) and link.request (awaited, for forwarded commands).
import os
import json
import binascii
import struct
import time
import asyncio
from micropython import const
from snapshot.engine import ACTIVE as ACTIVE_SNAPSHOT
from hw import nvram
from storage import cache as cachemod
from hw.hmac import hmac_sha256, same
from control.errors import CmdError
from control.mirror import (WriteBackMirror, ExceptionMirror, ExceptionFeed, read_int, write_int,
                            WB_FILE, WB_EPOCH, EPOCH_FILE)

# pair messages (kinds 16 and up on the link; endpoints/link/linkproto.md "Pair messages")
K_CFG = const(16)        # an NV memory image to store; reply b"ok" or b"conflict <generation>"
K_FWD = const(17)        # a SCSI command for a drive the receiver serves; reply: its outcome
K_CMD = const(18)        # a firmware command (JSON) for a drive the receiver serves; reply: JSON
K_DISK = const(19)       # disk slot states changed on the shared channels: read them again
K_GIVE = const(20)       # failback: "give me back my drives and ports" (reply when done)
K_STATE = const(21)      # what the sender serves now (JSON); no reply
K_SNAP = const(22)       # a snapshot began or ended (JSON); reply b"ok"
# 23 and 24 carried the write-back records and the snapshot's exceptions before they went to
# the mirror memory (control/mirror.py); a partner that sends them is told nothing
K_AUTH = const(25)       # HMAC-SHA256(pair key, label + our challenge + sender); b"ok" or b"refused"
K_NEXUS = const(26)      # task management or the end of a session, for the nexus state kept here; reply b"ok"
K_LOPS = const(27)       # the long operations handed over with the drives at failback (JSON); no reply
K_RESV = const(28)       # the backup LUN is reserved (b"\x01") or not (b"\x00") on the snapshot's owner; b"ok"
K_PRS = const(29)        # reservations of logical units the sender serves (JSON); b"ok"
K_QUERY = const(30)      # as K_CMD, for a command that only reads (QUERIES): light, so two asking
                         # each other at once (status screens during a failback) do not wait 5 s
K_FWD_WAIT = const(31)   # as K_FWD, from a controller blocked until the answer (a console's command)

REQUESTS = (K_CFG, K_FWD, K_CMD, K_SNAP, K_NEXUS, K_RESV, K_PRS, K_QUERY, K_FWD_WAIT)   # answered with a REPLY
REFUSED = b"refused"    # the REPLY to a request that could not be read
LIGHT = (K_CFG, K_DISK, K_STATE, K_SNAP, K_AUTH, K_NEXUS, K_LOPS, K_RESV, K_PRS, K_QUERY)   # handled at once, even inside a blocking call
QUERIES = ("snapshot_status", "snapshot_map", "lop_status")   # firmware commands a partner runs as K_QUERY
# requests whose sender is blocked until the receiver's reader runs them: two crossing would wait
# for each other (_crossing)
WAITED = (K_CMD, K_FWD_WAIT)
# what a backup LUN answers from the disks on either controller (claim 12): it is read-only
BACKUP_READS = (0x00, 0x08, 0x28, 0xA8, 0x88, 0x25, 0x9E, 0x1A, 0x5A)
# answered by the controller a host asked, whoever owns the drive: they describe the port
LOCAL_OPS = (0x12, 0xA0, 0xA3, 0x03)    # INQUIRY, REPORT LUNS, MAINTENANCE IN, REQUEST SENSE
# the two, as flags by operation code: routed() looks an opcode up once
_LOCAL = const(1)
_BACKUP_READ = const(2)
_OP_CLASS = bytearray(256)
for _op in LOCAL_OPS:
    _OP_CLASS[_op] = _LOCAL
for _op in BACKUP_READS:
    _OP_CLASS[_op] |= _BACKUP_READ
TUR = bytes(6)           # a CDB that is routed as every command for a logical unit's medium is
NEXUS_LOST = "nexus_lost"   # the NEXUS message's event for the end of a session (or all of them)
BOOT_WAIT_MS = const(3000)   # how long a booting controller waits to hear its partner

CALL_MS = const(5000)    # a blocking call that gets no answer in this time: the partner is lost
FWD_HDR = "<BBBBHHI"     # gport, lun, cdb length, isid length, initiator length, 0, data-out length
RSP_HDR = "<BBHI"        # status, sense length, 0, data-in length
BUSY_ANSWER = struct.pack(RSP_HDR, 8, 0, 0, 0)   # a K_FWD_WAIT that crossed one of ours: BUSY

# the partner as this controller sees it
UNKNOWN = "UNKNOWN"      # booting: not heard yet
UP = "UP"                # heard over the link
DEAD = "FAILED"          # gone and reset: its drives and ports are served here
APART = "LINK LOST"      # alive (its heartbeat on the disks moves) but the link is down

# this controller
ACTIVE = "ACTIVE"
STOOD_DOWN = "STOOD DOWN"     # lost the link while the partner lived: serves nothing (pair.md)

# NV parameter byte 0, bit 1: failback waits for a command instead of happening on rejoin
MANUAL_FAILBACK = const(0x02)

HEARTBEAT_FILE = "heartbeat"    # in each controller's own directory: a counter it rewrites
PID_FILE = "firmware.pid"
AGREED_FILE = "pair.agreed"     # the NV generation both held when they last agreed
KEY_FILE = "pair.key"           # in the state directory: the secret both controllers of it share
NONCE_LEN = const(16)


def pair_key(state_dir, me):
    # the pair's link secret: made by controller 0 at the first boot (controller 1 waits a while
    # for it, then makes it itself when booting alone), 32 random bytes
    path = state_dir + "/" + KEY_FILE
    for _ in range(0 if me == 0 else 500):
        if _key_there(path):
            break
        time.sleep_ms(20)
    if not _key_there(path):
        with open(path + ".tmp", "wb") as f:
            f.write(os.urandom(32))
        os.rename(path + ".tmp", path)
    with open(path, "rb") as f:
        return f.read()


def _key_there(path):
    try:
        return os.stat(path)[6] == 32
    except OSError:
        return False


def _query(payload):
    # a K_QUERY runs inline (light): only a command that reads, nothing that may call the partner
    d = json.loads(bytes(payload))
    if type(d) is not dict or d.get("name") not in QUERIES:
        raise ValueError("not a query")
    return True


def manual_failback(cfg):
    return bool(cfg.params[0] & MANUAL_FAILBACK)


def set_manual_failback(cfg, on):
    cfg.params[0] = (cfg.params[0] & ~MANUAL_FAILBACK) | (MANUAL_FAILBACK if on else 0)


def own_pid():
    # the unix port has no getpid(): /proc/self is this process
    with open("/proc/self/stat") as f:
        return int(f.read().split()[0])


def firmware_alive(pid, state_dir):
    # is `pid` a raidboard firmware on this state directory (not a recycled pid)?
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            cmd = f.read()
        with open("/proc/%d/stat" % pid) as f:
            if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                return False
    except (OSError, ValueError, IndexError):
        return False
    return b"main.py" in cmd and state_dir.encode() in cmd


class Pair:
    def __init__(self, ctl):
        self.ctl = ctl
        self.me = ctl.number
        self.other = 1 - self.me
        self.link = None
        self.Down = Exception            # the link's LinkDown, handed in with the link
        self.partner = UNKNOWN
        self.mode = ACTIVE
        self.serving = set()             # whose drives and host ports this controller serves
        self.partner_serving = set()     # what the partner said it serves
        self.waiting = False             # restarted, its drives still served by the partner
        eng = ctl.engine                 # the pair-wide snapshot: its primary, or None
        self.snap_primary = eng.primary_sd if eng.state == ACTIVE_SNAPSHOT else None
        self.partner_pid = 0
        self.joined = asyncio.Event()
        self.ports = None                # main.py: open_ports(home), close_ports(home) (async)
        self.pid = own_pid()
        self.beats = 0
        self.partner_dir = "%s/c%d" % (ctl.state_dir, self.other)
        write_int(ctl.own_dir + "/" + PID_FILE, self.pid)
        self.alua_changed = None         # core hook: a unit attention for every nexus (2A/06)
        self.mirror = WriteBackMirror(self)        # the cache's copy in the partner's memory
        self.exceptions = ExceptionMirror(self)    # the snapshot's runs, there
        self.feed = ExceptionFeed(ctl.own_dir, eng)   # the partner's runs, here
        self.backup_reserved = False     # the partner holds a reservation of the backup LUN: its reads go there
        self.reserved_told = False       # what the partner was last told of reservations here
        self.pr = ctl.core.pr            # the SCSI core's reservations
        self.held = self.pr.held         # (one dict and set for its life)
        self.dirty = self.pr.dirty
        self.pr.hold = True              # until the partner is met, or gone (pair.md "Reservations ...")
        self.pr.undo = {}
        self.pr_copy = {}                # lukey -> pr state(): the partner's, as it last told them
        self.key = pair_key(ctl.state_dir, self.me)
        self.nonce = b""
        self.hello_in = None
        self.handed = []                 # long operations the partner handed over at failback
        self.reclaim = False             # a claim of this controller's drives (GIVE) not seen through
        self.partner_stood = False       # the partner said it stood down (it serves nothing till it restarts)
        self.giving = 0                  # failbacks here (give_back), running or waiting: a lost partner waits for them
        self._failback = asyncio.Lock()

    def attach(self, link, down_exc, ports):
        self.link, self.Down, self.ports = link, down_exc, ports

    def up(self):
        # the partner is heard on the link: its mirror memory is reachable
        return self.partner == UP

    # ---- ownership -------------------------------------------------------------------------
    def owner(self, sd):
        # the controller that writes system drive sd now: its affinity's, or whoever serves it
        e = self.ctl.cfg.sd[sd]
        aff = 0 if e is None else e.affinity & 1
        if aff in self.serving:
            return self.me
        if self.mode == STOOD_DOWN:
            return None
        return self.other

    def mine(self, sd):
        return self.mode == ACTIVE and self.owner(sd) == self.me

    def server_of(self, home):
        # who serves controller `home`'s host ports (its target port group)
        if home in self.serving:
            return self.me
        return self.other

    def alua_state(self, lu, home):
        # asymmetric access state of logical unit lu through controller `home`'s target port
        # group: 0 active/optimized on the owner, 1 active/non-optimized elsewhere (I/O forwarded
        # over the link), 2 standby while this controller stood down (pair.md "ALUA")
        if self.mode == STOOD_DOWN:
            return 2
        return 0 if self.server_of(home) == self.owner(self.ctl.snapshot_home(lu.sd)) else 1

    # ---- the link's handler --------------------------------------------------------------------
    def hello(self):
        # a fresh challenge with every connection: the partner proves it knows the pair key
        self.nonce = os.urandom(NONCE_LEN)
        self.hello_in = None
        c = self.ctl.cfg
        return json.dumps({"controller": self.me, "pid": self.pid, "generation": c.generation,
                           "image": self.image_crc(), "serving": sorted(self.serving), "mode": self.mode,
                           "agreed": self.agreed(), "nonce": self.nonce.hex()}).encode()

    def image_crc(self):
        return binascii.crc32(self.ctl.nv.image)

    def light(self, kind):
        return kind in LIGHT or (kind in WAITED and self._crossing())

    def _crossing(self):
        # whether a WAITED request of the partner's, come while this controller is blocked on one
        # of its own not yet answered (or kept before it began: link.light_kept), crosses it: each
        # would wait for the other. Controller 1 answers it busy at once (light); controller 0
        # keeps it for its reader and gets controller 1's busy answer, so the one of controller 1
        # goes through (pair.md "Requests that cross")
        link = self.link
        return self.me == 1 and link.calling and link.call_kind in WAITED and link.call_reply is None

    def link_up(self, payload):
        # the partner's HELLO: kept until its proof (AUTH) arrives; ours goes out now
        try:
            h = json.loads(bytes(payload))
            self.hello_in = (int(h["generation"]), int(h["pid"]), set(h["serving"]),
                             int(h.get("agreed", -1)), int(h.get("image", -1)), h.get("mode") == STOOD_DOWN)
            theirs = bytes.fromhex(h["nonce"])
        except (ValueError, KeyError, TypeError):
            self.ctl.events.log("error", "PAIR: PARTNER'S HELLO UNREADABLE; LINK DROPPED")
            self.link.drop("unreadable hello")
            return
        asyncio.create_task(self._prove(theirs))

    async def _prove(self, nonce):
        try:
            ans = await self.link.request(K_AUTH, self._proof(nonce, self.me))
        except self.Down:
            return
        if bytes(ans) != b"ok":
            self.ctl.events.log("error", "PAIR: CONTROLLER %d REFUSED THIS CONTROLLER'S PROOF OF THE PAIR KEY"
                                % self.other)

    def _proof(self, nonce, who):
        return hmac_sha256(self.key, b"raidboard link" + nonce + bytes((who,)))

    def _authenticate(self, proof):
        # the partner's answer to our challenge: only a controller with this pair's key joins
        if self.hello_in is None or not same(bytes(proof), self._proof(self.nonce, self.other)):
            self.ctl.events.log("error", "PAIR: A PEER ON THE BACK-END LINK FAILED TO PROVE THE PAIR KEY; "
                                "LINK DROPPED")
            self.link.drop("failed authentication")
            return b"refused"
        gen, pid, serving, agreed, image, self.partner_stood = self.hello_in
        self.hello_in = None
        self.partner_pid, self.partner_serving = pid, serving
        was = self.partner
        self.partner = UP
        self.pr.hold = False
        self.ctl.events.log("info", "PAIR: CONTROLLER %d %s (pid %d, NV generation %d)"
                            % (self.other, "REJOINED" if was == DEAD else "JOINED", pid, gen))
        # decided now, before a configuration from the partner can arrive and hide the conflict
        asyncio.create_task(self._meet(self._agree(gen, agreed, image)))
        return b"ok"

    async def _meet(self, send):
        # outside the link's reader: agree on the configuration and the write-back copies, then
        # (booting) on who serves what
        if send:
            self.send_config()
        self.mirror.alone = False
        self.ctl.cache.remirror()
        self._mirror_reservations(True)     # all of them: the partner may have none, or old ones
        self.reservations_checked()
        self._follow_if_theirs()
        if self.joined.is_set() or self.mode != ACTIVE:
            return                       # (stood down while booting: serves nothing until restarted)
        if self.me in self.partner_serving or self.reclaim:
            # restarted while the partner served this controller's drives and ports (or a claim
            # of them was cut short: the partner may have given them back, long operations too)
            if self.me in self.partner_serving:
                if manual_failback(self.ctl.cfg) and not self.reclaim:
                    self.waiting = True
                    self.ctl.events.log("warn", "PAIR: CONTROLLER %d WAITS FOR FAILBACK BY COMMAND" % self.me)
                    return
                self.reclaim = True
                if not await self.claim_back():
                    # lost before the partner let them go: they may still be its, so nothing is
                    # served here until the loss is decided (_partner_lost: taken over, or apart)
                    self.ctl.events.log("error", "PAIR: LINK LOST WHILE CONTROLLER %d GAVE BACK THIS "
                                        "CONTROLLER'S DRIVES: NOTHING SERVED UNTIL THAT IS DECIDED"
                                        % self.other)
                    return
            self.reclaim = False
            self.ctl.took_back(self._handed())
        self.serving.add(self.me)
        self.settle_reservations()
        await self.ports.open_ports(self.me)
        if self.partner_stood:
            # (this one restarted while its partner had stood down, the link since healed): the
            # partner's drives are served here, as when it stood down
            await self.take_over("controller %d stood down" % self.other, UP)
        self._changed()
        self.joined.set()

    async def join(self, wait_ms=BOOT_WAIT_MS):
        # at boot: meet the partner, or take over its drives and ports when it is gone. A partner
        # that runs is never taken over from here, heard or not: while the two meet (a failback
        # can take a while) or while the link does not come up, this controller waits
        try:
            await asyncio.wait_for_ms(self.joined.wait(), wait_ms)
            return
        except asyncio.TimeoutError:
            pass
        told = False
        # (until joined: a take-over under way elsewhere, _partner_lost's, ends with that too)
        while not self.joined.is_set() and not self.waiting and self.mode == ACTIVE:
            if self.partner != UP and self.other not in self.serving:
                how = await self._partner_runs()
                if how != UP:
                    await self.take_over("controller %d did not answer at boot" % self.other, how)
                    continue
                if not told:
                    told = True
                    self.ctl.events.log("warn", "PAIR: CONTROLLER %d RUNS BUT IS NOT HEARD ON THE LINK: "
                                        "NOTHING SERVED HERE UNTIL THE TWO MEET OR IT STOPS" % self.other)
            try:
                await asyncio.wait_for_ms(self.joined.wait(), 500)
            except asyncio.TimeoutError:
                pass

    async def _partner_runs(self):
        # the partner's firmware as a booting controller finds it: UP while it runs and serves
        # (its process there, its disk heartbeat moving), APART when it stood down (it serves
        # nothing), DEAD when it is gone or was hung (then reset: pair.md "Failover")
        pid = self.partner_pid or self._pid_on_disk()
        if not (pid and firmware_alive(pid, self.ctl.state_dir)):
            return DEAD
        b0, mode = self.partner_beat()
        await asyncio.sleep_ms(350)              # three heartbeats of the partner
        b1, mode = self.partner_beat()
        if self.partner == UP or b1 != b0:
            return APART if mode == STOOD_DOWN else UP
        await self._reset_and_wait(pid, "its heartbeat stopped")
        return DEAD

    def link_down(self, reason):
        if self.partner != UP:
            return
        self.partner = UNKNOWN
        self.pr.hold = True              # no reservation changes until it is decided
        self.backup_reserved = self.reserved_told = False     # told afresh when the two meet again
        self.ctl.events.log("error", "PAIR: LINK TO CONTROLLER %d LOST (%s)" % (self.other, reason))
        asyncio.create_task(self._partner_lost())

    def frame(self, kind, seq, payload):
        if kind == K_AUTH:
            self._reply(seq, self._authenticate(payload))
            return
        if self.partner != UP:
            # nothing but a proof from a peer that has not given one (pair.md "Who is on the link")
            self.ctl.events.log("error", "PAIR: MESSAGE KIND %d FROM AN UNPROVEN PEER; LINK DROPPED" % kind)
            self.link.drop("message before authentication")
            return
        try:
            self._dispatch(kind, seq, payload)
        except (ValueError, TypeError, KeyError, IndexError) as e:
            # only a partner out of step with this firmware sends what cannot be read: it is
            # refused at once, so a request does not wait out its timeout (pair.md "Messages")
            self.ctl.events.log("error", "PAIR: MESSAGE KIND %d FROM CONTROLLER %d REFUSED: UNREADABLE (%s)"
                                % (kind, self.other, e))
            if kind in REQUESTS:
                self._reply(seq, REFUSED)

    def _dispatch(self, kind, seq, payload):
        if kind == K_CFG:
            self._reply(seq, self._store_config(payload))
        elif kind == K_DISK:
            self.ctl.disks_changed()
        elif kind == K_STATE:
            self.partner_serving = set(json.loads(bytes(payload))["serving"])
            if self.waiting and self.me not in self.partner_serving:
                asyncio.create_task(self._served_again())
        elif kind == K_SNAP:
            self._reply(seq, self._follow_snapshot(payload))
        elif kind == K_FWD or kind == K_FWD_WAIT:
            self._reply(seq, BUSY_ANSWER if kind == K_FWD_WAIT and self._crossing()
                        else self._execute_forwarded(payload))
        elif kind == K_CMD and self._crossing():
            self._reply(seq, json.dumps({
                "error": "PARTNER_BUSY",
                "message": "controller %d was waiting for controller %d to run a command of its own "
                           "at that moment: run it again" % (self.me, self.other)}).encode())
        elif kind == K_CMD or kind == K_QUERY and _query(payload):
            self._reply(seq, self._command_forwarded(payload))
        elif kind == K_LOPS:
            ops = json.loads(bytes(payload))
            if not isinstance(ops, list):
                raise TypeError("not a list of long operations")
            self.handed = ops
        elif kind == K_NEXUS:
            self._reply(seq, self._nexus_event_here(payload))
        elif kind == K_GIVE:
            asyncio.create_task(self._give_on_request(seq))
        elif kind == K_RESV:
            if len(payload) != 1 or payload[0] > 1:
                raise ValueError("not a reservation state")
            self.backup_reserved = payload[0] == 1
            self._reply(seq, b"ok")
        elif kind == K_PRS:
            self._reply(seq, self._store_reservations(payload))
        else:
            self.ctl.events.log("error", "PAIR: UNKNOWN MESSAGE KIND %d IGNORED" % kind)

    def _reply(self, seq, payload):
        try:
            self.link.reply(seq, payload)
        except self.Down:
            pass            # the partner is gone; its request went with it

    def _tell(self, kind, payload):
        asyncio.create_task(self._send(kind, payload))

    async def _send(self, kind, payload):
        try:
            await self.link.send(kind, payload)
        except self.Down:
            pass            # the partner learns it when the two meet again

    # ---- one configuration for the pair (pair.md "Configuration") ----------------------------------
    def agreed(self):
        # the NV generation both held when they last agreed (kept in the own directory)
        return read_int(self.ctl.own_dir + "/" + AGREED_FILE)

    def _set_agreed(self, gen):
        write_int(self.ctl.own_dir + "/" + AGREED_FILE, gen)

    def _agree(self, theirs, their_agreed, their_image):
        # -> whether this controller's configuration goes to the partner
        mine = self.ctl.cfg.generation
        base = self.agreed()
        if theirs == mine and their_image == self.image_crc():
            self._set_agreed(mine)
            return False
        # the one that changed since they last agreed sends; never agreed counts as changed
        changed_here = base < 0 or mine > base
        changed_there = base < 0 or theirs > max(base, their_agreed)
        if changed_here and changed_there:
            # both changed the configuration while apart: no silent merge. Controller 0's stands;
            # controller 1 keeps its own image aside and takes controller 0's (pair.md)
            self.ctl.events.log("error", "PAIR: CONFIGURATION CONFLICT: CONTROLLER %d AT GENERATION %d, "
                                "CONTROLLER %d AT %d, BOTH CHANGED SINCE %d; CONTROLLER 0'S KEPT"
                                % (self.me, mine, self.other, theirs, base))
            if self.me == 1:
                aside = "%s/nvram.conflict-%d.bin" % (self.ctl.own_dir, mine)
                with open(aside, "wb") as f:
                    f.write(self.ctl.nv.image)
                self.ctl.events.log("warn", "PAIR: CONTROLLER 1'S CONFIGURATION KEPT AS %s" % aside)
            return self.me == 0
        return changed_here

    def send_config(self):
        # the configuration in NV memory here goes into the partner's before the change is answered
        if self.partner != UP:
            return
        try:
            ans = bytes(self.link.call(K_CFG, self.ctl.nv.image, CALL_MS))
        except self.Down:
            return       # lost: the partner takes it by generation when the two meet again
        if ans == b"ok":
            self._set_agreed(self.ctl.cfg.generation)
        else:
            self.ctl.events.log("error", "PAIR: CONTROLLER %d REFUSED THE CONFIGURATION: %s"
                                % (self.other, ans.decode()))

    def _store_config(self, image):
        try:
            cfg = self.ctl.adopt_config(bytes(image))
        except nvram.NvramError as e:
            self.ctl.events.log("error", "PAIR: CONFIGURATION FROM CONTROLLER %d UNUSABLE: %s" % (self.other, e))
            return b"unusable " + str(e).encode()
        self._set_agreed(cfg.generation)
        return b"ok"

    def partner_journal(self):
        # at a takeover: the copy of the partner's write-back journal kept here, when it is
        # current (the partner never wrote back without it), else the journal it left (pair.md)
        mine = self.ctl.own_dir + "/" + WB_FILE
        theirs = self.partner_dir + "/" + cachemod.JOURNAL_FILE
        if read_int(self.ctl.own_dir + "/" + WB_EPOCH) == read_int(self.partner_dir + "/" + EPOCH_FILE, 0):
            return mine, theirs
        self.ctl.events.log("error", "PAIR: NO CURRENT COPY OF CONTROLLER %d'S WRITE-BACK DATA (it wrote "
                            "back alone): the journal it left is used" % self.other)
        return theirs, mine

    # ---- commands for drives the partner serves -------------------------------------------------
    def routed(self, nexus, cdb):
        # the partner executes a SCSI command for a logical unit whose drive it serves (on every
        # command: one opcode lookup, then the drive's owner)
        cls = _OP_CLASS[cdb[0]]
        if cls & _LOCAL:
            return False
        ctl = self.ctl
        lu = ctl.logical_unit(nexus)
        if lu is None:
            return False
        sd = lu.sd
        e = ctl.cfg.sd[sd]
        if e.is_log():
            if cls & _BACKUP_READ and ctl.engine.follower and not e.write_back() and not self.backup_reserved:
                return False    # the backup LUN read from the shared disks here (pair.md)
            sd = ctl.snapshot_home(sd)
        return self.owner(sd) == self.other

    def reservations_checked(self):
        # after every command and nexus event this controller executes, and when the two meet: a
        # change of reservations, and a change in whether the backup LUN is reserved here, reach
        # the partner before the answer, so that while it is, the partner sends its backup LUN
        # reads here (pair.md). False: a change could not reach it and was undone (the command
        # fails as in an ALUA transition, and is retried)
        held = self.held
        if not held and not self.reserved_told and not self.dirty:
            return True         # the usual case, on every command: nothing reserved, nothing said
        if self.dirty and not self._mirror_reservations(False):
            return False
        log_sd = self.ctl.engine.log_sd
        now = False
        if held and log_sd >= 0:
            for k in held:
                if k >> 1 == log_sd:
                    now = True
        if now != self.reserved_told and self.partner == UP:
            if self.link.calling:
                # inside a light handler while a call waits (an event that can only end a
                # reservation): the partner hears it as soon as the loop runs again
                asyncio.create_task(self._reservations_later())
                return True
            try:
                self.link.call(K_RESV, b"\x01" if now else b"\x00", CALL_MS)
                self.reserved_told = now
            except self.Down:
                pass
        return True

    async def _reservations_later(self):
        self.reservations_checked()

    # ---- reservations across the pair (pair.md "Reservations across the pair") ---------------------
    def _mirror_reservations(self, full):
        # the reservations of the logical units served here that changed (full: all of them) go
        # into the partner's memory before the command that changed them is answered; False: it
        # did not get them (Controller.execute_here then undoes the command's changes)
        pr = self.pr
        if self.partner != UP:
            pr.dirty.clear()            # (taken over) it hears all of them when the two meet
            return True
        if self.link.calling:
            # inside a light handler while a call of ours waits (an event, never a command): as
            # soon as the loop runs again
            asyncio.create_task(self._reservations_later())
            return True
        out = {}
        for k in (range(2 * nvram.MAX_SD) if full else pr.dirty):
            if self._serves_key(k):
                out[str(k)] = pr.state(k)
        pr.dirty.clear()
        if not out:
            return True
        try:
            ans = bytes(self.link.call(K_PRS, json.dumps(out).encode(), CALL_MS))
        except self.Down:
            ans = b"lost"
        if ans == b"ok":
            return True
        self.ctl.events.log("error", "PAIR: RESERVATIONS NOT IN CONTROLLER %d'S MEMORY (%r): THE COMMAND "
                            "THAT CHANGED THEM IS UNDONE" % (self.other, ans[:60]))
        return False

    def _store_reservations(self, p):
        # the partner's reservations, kept to be served from here after a failover, failback or move
        d = json.loads(bytes(p))
        if type(d) is not dict:
            raise ValueError("not a map of logical units")
        got = []
        for ks, st in d.items():
            k = int(ks)
            if not 0 <= k < 2 * nvram.MAX_SD:
                raise ValueError("no logical unit %d" % k)
            if st is not None:
                self.pr.check(st)
            got.append((k, st))
        keys = self.pr.keys()
        for k, st in got:      # (checked whole before any is kept)
            if k in keys:
                # this controller serves it and has its own state (only a move under way can send
                # it): that one stands
                self.ctl.events.log("warn", "PAIR: RESERVATIONS OF LOGICAL UNIT %d FROM CONTROLLER %d "
                                    "IGNORED: THIS CONTROLLER HOLDS THEM" % (k, self.other))
                continue
            if st is None:
                self.pr_copy.pop(k, None)
            else:
                self.pr_copy[k] = st
        return b"ok"

    def _serves_key(self, k):
        # whether this controller executes the commands of logical unit k (a pr.lukey)
        return self.mine(self.ctl.snapshot_home(k >> 1))

    def settle_reservations(self):
        # after a change of what is served where: each logical unit's reservations go to, or leave,
        # the SCSI core here (a drive no longer defined keeps what it had, where it is); then the
        # partner hears whether the backup LUN is reserved here now
        pr, copy, sds = self.pr, self.pr_copy, self.ctl.cfg.sd
        moved = False
        here = pr.keys()
        for k in list(copy):
            if sds[k >> 1] is not None and self._serves_key(k):
                st = copy.pop(k)
                if k not in here:
                    pr.load(k, st)
                    moved = True
        for k in pr.keys():
            if sds[k >> 1] is not None and not self._serves_key(k):
                st = pr.take(k)
                if k in pr.undo:
                    # a command here changed it and waits for the partner to take that: the
                    # partner has it as it was before (the command fails if it is not taken)
                    st = pr.undo.pop(k)
                moved = True
                if st is not None:
                    copy[k] = st
        if moved:
            self.reservations_checked()

    def snapshot_changed(self, state):
        # the engine here began or ended a snapshot: the partner is told before the answer, so one
        # snapshot at a time holds pair-wide and its backup LUN answers there too (claims 9, 11)
        eng = self.ctl.engine
        self.snap_primary = eng.primary_sd if state == ACTIVE_SNAPSHOT else None
        if state == ACTIVE_SNAPSHOT:
            self.exceptions.start()
        else:
            # first in its mirror memory, which the partner reads before every backup LUN read:
            # the message below may come late (a loaded partner), the writes after it go uncopied
            try:
                self.exceptions.end(eng.snap_id, state)
            except OSError as e:
                self.ctl.events.log("error", "PAIR: SNAPSHOT END NOT IN THE PARTNER'S MEMORY: %s" % e)
        if self.partner == UP:
            msg = {"state": state, "primary": eng.primary_sd, "snap_id": eng.snap_id,
                   "generation": eng.generation, "started": eng.started, "last": eng.last}
            try:
                self.link.call(K_SNAP, json.dumps(msg).encode(), CALL_MS)
            except self.Down:
                pass
        # the backup LUN is served where the primary is: its reservations come here (or leave)
        # once the partner, answering, has stopped serving it (and told what it held)
        self.settle_reservations()

    def announce_exceptions(self, c, slot, k):
        # a run of exceptions, in the partner's mirror memory before its copy begins and so
        # before the primary is overwritten (claim 11)
        self.exceptions.add(self.ctl.engine.snap_id, c, slot, k)

    def _follow_if_theirs(self):
        # a snapshot whose primary the partner serves: this engine follows it, read from the log
        p = self.ctl.engine.primary_sd
        if self.ctl.engine.state != ACTIVE_SNAPSHOT or self.owner(p) != self.other:
            return
        self.ctl.follow_log(True)

    def _follow_snapshot(self, p):
        try:
            d = json.loads(bytes(p))
            state, primary = int(d["state"]), int(d["primary"])
        except (ValueError, KeyError, TypeError):
            self.ctl.events.log("error", "PAIR: SNAPSHOT MESSAGE UNREADABLE")
            return b"unreadable"
        eng = self.ctl.engine
        if eng.log is not None:
            eng.follow(state, primary, self.ctl.drives.get(primary), d.get("snap_id", 0),
                       d.get("generation", 0), d.get("started"), d.get("last"))
        self.snap_primary = primary if state == ACTIVE_SNAPSHOT else None
        self.settle_reservations()
        return b"ok"

    def _fwd_parts(self, nexus, cdb, data_out):
        iname = nexus[0].encode()
        isid = nexus[3] if len(nexus) > 3 else b""
        data = data_out or b""
        head = struct.pack(FWD_HDR, nexus[1], nexus[2], len(cdb), len(isid), len(iname), 0, len(data))
        return [head, iname, isid, bytes(cdb), data]

    async def forward(self, nexus, cdb, data_out):
        self.ctl.core.see(nexus)
        try:
            r = await self.link.request(K_FWD, self._fwd_parts(nexus, cdb, data_out))
        except self.Down:
            return self.transition()
        return self._outcome(r)

    def forward_blocking(self, nexus, cdb, data_out):
        try:
            r = self.link.call(K_FWD_WAIT, self._fwd_parts(nexus, cdb, data_out), CALL_MS)
        except self.Down:
            return self.transition()
        return self._outcome(r)

    def _outcome(self, r):
        if len(r) < struct.calcsize(RSP_HDR):
            # refused by the owner (pair.md "Messages"): as if it had been lost with the command
            self.ctl.events.log("error", "PAIR: FORWARDED COMMAND REFUSED BY CONTROLLER %d" % self.other)
            return self.transition()
        status, slen, _, dlen = struct.unpack_from(RSP_HDR, r, 0)
        off = struct.calcsize(RSP_HDR)
        sense = bytes(r[off:off + slen]) if slen else None
        return status, sense, r[off + slen:off + slen + dlen]

    def transition(self):
        # the owner was lost with the command: retryable, as ALUA's "state transition" is
        return 2, self.ctl.transition_sense(), b""

    def _fwd_unpack(self, p):
        # a FWD (or NEXUS) payload -> nexus, CDB (or event name), data-out (None when empty)
        gport, lun, clen, ilen, nlen, _, dlen = struct.unpack_from(FWD_HDR, p, 0)
        o = struct.calcsize(FWD_HDR)
        iname = bytes(p[o:o + nlen]).decode()
        o += nlen
        isid = bytes(p[o:o + ilen])
        o += ilen
        cdb = bytes(p[o:o + clen])
        o += clen
        data = p[o:o + dlen] if dlen else None
        return ((iname, gport, lun, isid) if ilen else (iname, gport, lun)), cdb, data

    def _execute_forwarded(self, p):
        nexus, cdb, data = self._fwd_unpack(p)
        if not self.mine(self.ctl.snapshot_home(self.ctl.sd_at(nexus))):
            status, sense, din = self.transition()
        else:
            status, sense, din = self.ctl.execute(nexus, cdb, data)
        sense = sense or b""
        return [struct.pack(RSP_HDR, status, len(sense), 0, len(din)), sense, din]

    # ---- task management and session ends (pair.md "Task management and sessions") -----------
    def nexus_event(self, nexus, what):
        # A transport event of `nexus` here: a task management function (Controller.task_mgmt's
        # names) or NEXUS_LOST. The owner of a drive keeps the unit attentions and RESERVE(6/10)
        # of every nexus whose commands it executes, so it hears the event too: a LUN reset of a
        # logical unit the partner serves runs there only (True: nothing to do here); target
        # resets and the end of a session run on both.
        if what == "lun_reset":
            if not self.routed(nexus, TUR):
                return False
        elif what not in ("target_warm_reset", "target_cold_reset", NEXUS_LOST):
            return False             # ABORT / CLEAR TASK SET: no command waits in either core
        if self.partner == UP:
            try:
                self.link.call(K_NEXUS, self._fwd_parts(nexus, what.encode(), None), CALL_MS)
            except self.Down:
                pass                 # the partner is lost, and its nexus state with it
        return what == "lun_reset"

    def _nexus_event_here(self, p):
        nexus, what, _ = self._fwd_unpack(p)
        what = what.decode()
        if what == NEXUS_LOST:
            self.ctl.core.nexus_lost(nexus[0], nexus[1], nexus[3] if len(nexus) > 3 else None)
        else:
            self.ctl.core.task_mgmt(nexus, what)
        asyncio.create_task(self._reservations_later())     # it may have ended one
        return b"ok"

    def command_home(self, name, args):
        # the controller that must run firmware command `name` (None: this one)
        sd = args.get("sd") if isinstance(args, dict) else None
        # sd_owner too: the drive's owner destages its cache and checks its long operations
        if name in ("snapshot_start", "lop_start", "sd_policy", "lop_stop", "lop_clear", "sd_owner") \
                and type(sd) is int and 0 <= sd < nvram.MAX_SD:
            sd = self.ctl.snapshot_home(sd)
        elif name in ("snapshot_stop", "snapshot_status", "snapshot_map"):
            sd = self.ctl.snapshot_home(None)
        else:
            return None
        if sd is None or self.owner(sd) != self.other:
            return None
        return self.other

    def remote_command(self, name, args):
        # run a firmware command on the partner (blocking: the console waits for it)
        try:
            r = json.loads(bytes(self.link.call(K_QUERY if name in QUERIES else K_CMD,
                                                json.dumps({"name": name, "args": args}).encode(), CALL_MS)))
        except self.Down:
            raise CmdError("PARTNER_LOST", "controller %d serves this drive and did not answer" % self.other)
        except ValueError:      # REFUSED (pair.md "Messages")
            raise CmdError("PARTNER_LOST", "controller %d serves this drive and refused the command" % self.other)
        if "error" in r:
            raise CmdError(r["error"], r["message"])
        return r["result"]

    def _command_forwarded(self, p):
        try:
            req = json.loads(bytes(p))
            return json.dumps({"result": self.ctl.command(req["name"], req["args"], local=True)}).encode()
        except CmdError as e:
            return json.dumps({"error": e.code, "message": e.message}).encode()
        except (ValueError, KeyError, TypeError) as e:
            return json.dumps({"error": "BAD_ARGUMENT", "message": "unreadable forwarded command: %s" % e}).encode()

    def disks_changed(self):
        # slot states are shared: the partner reads them again
        if self.partner == UP:
            self._tell(K_DISK, b"")

    # ---- failover (claim 10) and failback ------------------------------------------------------
    async def heartbeat(self, period_ms=100):
        # the disks' heartbeat: a counter in this controller's own directory, rewritten while the
        # firmware runs, read by the partner to tell a lost link from a dead controller
        path = "%s/%s" % (self.ctl.own_dir, HEARTBEAT_FILE)
        while True:
            self.beats += 1
            with open(path, "w") as f:
                f.write("%d %s\n" % (self.beats, self.mode))
            await asyncio.sleep_ms(period_ms)

    def partner_beat(self):
        try:
            with open("%s/%s" % (self.partner_dir, HEARTBEAT_FILE)) as f:
                w = f.read().split()
            return int(w[0]), " ".join(w[1:])
        except (OSError, ValueError, IndexError):
            return -1, ""

    async def _partner_lost(self):
        # is the partner dead, hung, or alive behind a lost link? (pair.md "Failover")
        while self.giving:
            # a failback under way ends first: the partner's drives are then its own again, and
            # this decides from there (dead: taken over as any; apart: one stands down)
            await asyncio.sleep_ms(10)
        if self.mode == STOOD_DOWN:
            return
        pid = self.partner_pid or self._pid_on_disk()
        if not (pid and firmware_alive(pid, self.ctl.state_dir)):
            await self.take_over("controller %d is gone" % self.other)
            return
        b0, _ = self.partner_beat()
        await asyncio.sleep_ms(350)              # three heartbeats of the partner
        if self.partner != UNKNOWN:
            return                               # the link came back, or a boot's take-over decided
        b1, mode = self.partner_beat()
        if not firmware_alive(pid, self.ctl.state_dir):
            await self.take_over("controller %d is gone" % self.other)     # (since it was looked at)
            return
        if b1 == b0:
            await self._reset_and_wait(pid, "its heartbeat stopped")
            await self.take_over("controller %d hung and was reset" % self.other)
            return
        # both alive, the link lost: controller 1 stands down, controller 0 takes over once it has
        self.partner = APART
        if self.me == 1:
            await self.stand_down()
            return
        for _ in range(20):
            if mode == STOOD_DOWN:
                break
            await asyncio.sleep_ms(100)
            _, mode = self.partner_beat()
        if mode != STOOD_DOWN:
            await self._reset_and_wait(pid, "it did not stand down")
        await self.take_over("controller %d stood down after the link was lost" % self.other,
                             APART if mode == STOOD_DOWN else DEAD)

    def _pid_on_disk(self):
        return read_int(self.partner_dir + "/" + PID_FILE, 0)

    async def _reset_and_wait(self, pid, why):
        # nothing of the partner's may be written here until its process is gone for sure
        self._reset_partner(pid, why)
        while firmware_alive(pid, self.ctl.state_dir):
            await asyncio.sleep_ms(10)

    def _reset_partner(self, pid, why):
        # the reset line of the real pair: here a SIGKILL to the partner's firmware process
        self.ctl.events.log("error", "PAIR: CONTROLLER %d RESET (%s)" % (self.other, why))
        if firmware_alive(pid, self.ctl.state_dir):
            os.system("kill -KILL %d" % pid)

    async def take_over(self, why, partner=DEAD):
        self.pr.hold = False             # decided: this controller's reservations are the only ones
        if self.other in self.serving or self.mode == STOOD_DOWN:
            return
        self.partner = partner
        self.ctl.events.log("error", "PAIR: FAILOVER: %s; CONTROLLER %d SERVES ITS DRIVES AND PORTS"
                            % (why, self.me))
        # booting, or waiting for a failback: its own drives were the partner's too until now,
        # and with them long operations it may have handed over before it was lost
        own = self.me not in self.serving
        self.waiting = self.reclaim = False
        self.serving.add(self.other)
        self.serving.add(self.me)
        self.settle_reservations()
        # the sessions at the portals the partner served ended with it: their RESERVE(6/10) too
        homes = self.partner_serving | {self.other}
        self.pr.ports_lost([2 * h + p for h in homes for p in range(nvram.PORTS)])
        self.ctl.take_over(self.partner_dir)
        if self.handed:
            self.ctl.lop_mgr.adopt_saved(self._handed(), "FAILBACK")
        if own:
            await self.ports.open_ports(self.me)
        await self.ports.open_ports(self.other)
        self._changed()
        self.joined.set()

    async def stand_down(self):
        self.mode = STOOD_DOWN
        self.ctl.events.log("error", "PAIR: LINK LOST WITH CONTROLLER %d ALIVE: CONTROLLER %d STANDS DOWN "
                            "(serves no drive until it restarts)" % (self.other, self.me))
        for home in sorted(self.serving):
            await self.ports.close_ports(home)
        self.serving = set()
        self._changed()                  # (its reservations leave the core there: alua_moved)

    async def give_back(self):
        # failback: the partner's drives destaged and its ports closed here, then it serves them.
        # One at a time: the partner's request and an operator's pair_failback may meet, and the
        # second then finds nothing left to give
        self.giving += 1
        try:
            async with self._failback:
                if self.other not in self.serving:
                    return
                self.ctl.events.log("info", "PAIR: FAILBACK: CONTROLLER %d GETS ITS DRIVES AND PORTS BACK"
                                    % self.other)
                await self.ports.close_ports(self.other)
                ops = self.ctl.release(self.other)
                if self.partner == UP:
                    self._mirror_reservations(True)     # in its memory before it serves them
                self.serving.discard(self.other)
                self.settle_reservations()
                if ops and self.partner == UP:
                    try:
                        await self.link.send(K_LOPS, json.dumps(ops).encode())
                    except self.Down:
                        pass
                self._follow_if_theirs()
                self._changed()
        finally:
            self.giving -= 1

    async def _give_on_request(self, seq):
        if self.other in self.serving:
            await self.give_back()
        self._reply(seq, b"ok")

    def _handed(self):
        ops, self.handed = self.handed, []
        return ops

    async def claim_back(self):
        # this controller restarted while the partner served its drives and ports: ask for them
        try:
            await self.link.request(K_GIVE, b"")
        except self.Down:
            return False
        self.partner_serving.discard(self.me)
        return True

    async def _served_again(self):
        # manual failback done on the partner: this controller's drives and ports are its own again
        self.waiting = False
        self.serving.add(self.me)
        self.settle_reservations()
        self.ctl.took_back(self._handed())
        await self.ports.open_ports(self.me)
        self._changed()
        self.joined.set()

    def check_failback(self):
        # refuses a failback command that has nothing to do (before it starts in the background)
        if self.waiting or (self.other in self.serving and self.partner == UP):
            return
        raise CmdError("NOTHING_TO_DO", "each controller serves its own drives and ports"
                       if self.partner == UP else "controller %d is not running" % self.other)

    async def fail_self(self, why):
        # this controller's firmware declares itself failed: it stops at once, as a board held in
        # reset; the partner takes over (its link sees the end, its pid check finds none)
        self.ctl.events.log("error", "PAIR: CONTROLLER %d FAILED (%s)" % (self.me, why))
        await asyncio.sleep_ms(20)          # the event reaches attached consoles first
        raise SystemExit(6)

    def reset_partner(self, why):
        pid = self.partner_pid or self._pid_on_disk()
        if not (pid and firmware_alive(pid, self.ctl.state_dir)):
            raise CmdError("NOTHING_TO_DO", "controller %d is not running" % self.other)
        self._reset_partner(pid, why)

    def cut_link(self, down):
        self.link.hold(down)
        if down:
            self.link.drop("closed by command")
        self.ctl.events.log("warn", "PAIR: BACK-END LINK %s BY COMMAND" % ("CUT" if down else "RESTORED"))

    def alua_moved(self):
        # what is served where changed (_changed, a drive moved by command, a configuration from
        # the partner): reservations follow. (Callers that await before this settle first.)
        self.settle_reservations()
        if self.alua_changed is not None:
            self.alua_changed()

    async def failback(self):
        # the command (either controller): drives and ports go back to where their affinity says
        if self.waiting:
            if not await self.claim_back():
                raise CmdError("PARTNER_LOST", "controller %d did not answer" % self.other)
            await self._served_again()
        elif self.other in self.serving and self.partner == UP:
            await self.give_back()

    def _changed(self):
        # ALUA states moved: every host hears 2A/06, the partner hears what this one serves
        self.alua_moved()
        if self.partner == UP:
            self._tell(K_STATE, json.dumps({"serving": sorted(self.serving)}).encode())

    # ---- for status displays ---------------------------------------------------------------------
    def status(self):
        return {"controller": self.me, "mode": self.mode, "partner": self.partner,
                "serving": sorted(self.serving), "partner_serving": sorted(self.partner_serving),
                "failback": "manual" if manual_failback(self.ctl.cfg) else "automatic",
                "disk_writes": self.ctl.iop.writes, "disk_reads": self.ctl.iop.reads,
                "snapshot_follower": self.ctl.engine.follower,
                "link": self._link_counters()}

    def _link_counters(self):
        k = self.link
        if k is None:
            return None
        return {"up": k.up, "frames_in": k.frames_in, "frames_out": k.frames_out, "bad_frames": k.bad_frames,
                "resyncs": k.resyncs, "retransmits": k.retransmits}
