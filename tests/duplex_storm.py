"""Duplex crash torture (issue 11; used by tests/test_crash_duplex.py and `make torture`): a pair
under a host storm, one controller killed (-9) at a random instant of each round, taken over by the
other, restarted and given its drives back (failback) before the next round; the victims alternate.

The storm, all through real iSCSI at the board file's portal addresses:
- a writer at controller 0's host port 0 writes LUN 0 (SD0, controller 0's, the snapshot's primary:
  its first writes after an initiate are copies to the log drive);
- a writer at controller 1's host port 0 writes LUN 2 (SD2, a RAID 1 of slots 6-7, controller 1's);
- a reader at controller 1's host port 1 reads the backup LUN (LUN 1) through the controller that
  does not own the primary (forwarded) and checks each block against the image at initiate;
- one round in three, a console (of either controller) terminates the snapshot and initiates it
  again, so kills land during terminate and initiate as well as during writes and copies;
- one round in four (those that kill controller 0), a FIG. 8 copy of the snapshot's image to SD3
  (controller 0's, LUN COPY) runs slowly from before the kill: the survivor resumes it, and at the
  check it runs at full rate to its end, which ends the snapshot;
- one round in five, a second kill lands while the killed controller boots again and takes its
  drives back: of the returning controller (the survivor keeps serving everything), or, another
  round in five, of the survivor (the one just back takes everything over); each is checked as a
  kill is, then the pair fails back.
Every block written says which block and which write it is (crash_storm.tagged).

After each kill, once the survivor serves both controllers' drives: every LUN is read through all
four portal addresses; each block of LUN 0 and LUN 2 must hold its last acknowledged write, the
backup LUN the image at initiate (if the snapshot is active: it must be, unless the kill cut an
initiate or a terminate short), and the four portals must agree. After a copy round the copy must
complete (status word 0x0100) and its destination hold the image at initiate. A block that does not is one
divergence; so is every error a host saw that is not one of the retryable ones (RETRYABLE below,
documented in firmware/control/pair.md "What a host sees during a failover"):
- the connection reset or refused, or a login that fails, while a portal changes hands: the host
  logs in again at the same address and repeats the command;
- CHECK CONDITION 02/04/0A NOT READY, ASYMMETRIC ACCESS STATE TRANSITION: a forwarded command whose
  owner went away; repeated;
- CHECK CONDITION 06/2A/06 UNIT ATTENTION, ASYMMETRIC ACCESS STATE CHANGED: once per nexus after a
  failover or failback; repeated.
Hosts repeat a write until it is acknowledged (same data), so nothing is left in flight at a check.
A console's snapshot_start or snapshot_stop cut short by the kill (its connection lost, or the refusal
PARTNER_LOST: the owner it was sent to died) may or may not have run: the survivor's snapshot_status
says which. Any other refusal is a divergence.
"""
import collections
import random
import struct
import threading
import time

import test_iscsi_initiator as I
from raidboard import proto
from crash_storm import Ledger, differ, seed_of, tagged
from harness import Pair

REGION = 2048                     # blocks of each LUN the storm writes (1 MiB: 16 snapshot chunks)
PRIMARY, BACKUP, OWN1, COPY = 0, 1, 2, 3   # LUNs: SD0 (controller 0's), the backup LUN, SD2
                                           # (controller 1's), SD3 (controller 0's, FIG. 8 copies)
RETRYABLE = {(0x02, 0x04, 0x0A), (0x06, 0x2A, 0x06)}
GIVE_UP = 60                      # s a host keeps retrying one command (only bounds a hang)


def retryable(r):
    s = r["sense"] or b""
    return r["status"] == 2 and len(s) >= 14 and (s[2] & 0x0F, s[12], s[13]) in RETRYABLE


def rw16(op, lba, n):
    return struct.pack(">BBQIBB", op, 0, lba, n, 0, 0)


class Host:
    """One initiator at one portal address; it logs in again after a reset and repeats a command
    that got a retryable answer. Anything else goes to `errors`."""

    def __init__(self, addr, errors, name=I.INITIATOR, pause=0.02):
        self.addr, self.errors, self.name = addr, errors, name
        self.pause = pause                      # s between two tries
        self.ini = None
        self.retries = collections.Counter()    # what was retried: "reset" or the sense "02/04/0A"

    def run(self, lun, cdb, data_out=None, read_len=0):
        """-> the GOOD answer, or None (the error is in self.errors)"""
        deadline = time.time() + GIVE_UP
        while time.time() < deadline:
            try:
                if self.ini is None:
                    self.ini = I.Initiator(*self.addr, name=self.name, timeout=10)
                    self.ini.login()
                r = self.ini.command(lun, cdb, data_out=data_out, read_len=read_len)
            except (OSError, I.ISCSIError):
                self.close()
                self.retries["reset"] += 1
                time.sleep(self.pause)
                continue
            if r["status"] == 0:
                return r
            if not retryable(r):
                self.errors.append("%s LUN %d %s: status %d sense %s" % (
                    self.addr, lun, cdb[:1].hex(), r["status"], (r["sense"] or b"").hex()))
                return None
            self.retries["%02X/%02X/%02X" % (r["sense"][2] & 0x0F, r["sense"][12], r["sense"][13])] += 1
            time.sleep(self.pause)
        self.errors.append("%s LUN %d: no answer in %d s" % (self.addr, lun, GIVE_UP))
        return None

    def read_seeds(self, lun, lba, n):
        r = self.run(lun, rw16(0x88, lba, n), read_len=n * 512)
        if r is None:
            return None
        d = r["data"]
        return [seed_of(lba + i, d[i * 512:(i + 1) * 512]) for i in range(n)]

    def read_region(self, lun):
        out = []
        for lba in range(0, REGION, 256):
            got = self.read_seeds(lun, lba, 256)
            if got is None:
                return None
            out += got
        return out

    def close(self):
        if self.ini is not None:
            self.ini.close()
            self.ini = None


def give_controller_1_a_drive(pair):
    """SD2, a RAID 1 of slots 6-7 made on controller 1 (so its own), as LUN OWN1 of both host ports"""
    c1 = pair.c[1]
    c1.command("sd_create", {"raid": 1, "slots": [6, 7], "mb": 8})
    for port in (0, 1):
        c1.command("lun_map", {"port": port, "lun": OWN1, "sd": 2})


class Storm:
    def __init__(self, tmp, rnd, log=None):
        self.rnd, self.log = rnd, log or (lambda s: None)
        self.pair = Pair(tmp, populated_slots=11)
        self.errors = []
        self.divergences = 0
        self.ledgers = {PRIMARY: Ledger(), OWN1: Ledger()}
        self.seed = {PRIMARY: 0, OWN1: 0}
        self.image = None           # block -> seed of the primary at initiate (None: no snapshot)
        self.pending = None         # ("start" | "stop", image) of a snapshot command the kill may cut
        self.primary_lock = threading.Lock()    # initiate and terminate see no primary write in flight
        self.backup_lock = threading.Lock()     # nor a backup LUN read
        self.writes = {PRIMARY: 0, OWN1: 0}
        give_controller_1_a_drive(self.pair)
        c0 = self.pair.c[0]
        c0.command("sd_create", {"raid": 0, "slots": [8, 9, 10]})     # SD3: big enough for SD0
        for port in (0, 1):
            c0.command("lun_map", {"port": port, "lun": COPY, "sd": 3})
        self.copies = 0
        self.copy_started = 0       # time.time() of the last FIG. 8 copy's start
        self.failbacks_cut = 0      # kills during a failback (the returning one, or the survivor)
        self.hosts = {PRIMARY: self.host(0, 0), OWN1: self.host(1, 0), BACKUP: self.host(1, 1)}
        for lun in (PRIMARY, OWN1):
            self.write(lun, 0, REGION)
        self.snapshot(self.pair.c[0], "start")

    def host(self, n, port, name=I.INITIATOR):
        return Host(self.pair.portal(n, port), self.errors, name)

    def write(self, lun, lba, n):
        self.seed[lun] += 1
        s = self.seed[lun]
        data = b"".join(tagged(b, s) for b in range(lba, lba + n))
        self.ledgers[lun].go(s, lba, n)
        if self.hosts[lun].run(lun, rw16(0x8A, lba, n), data_out=data) is not None:
            self.ledgers[lun].ack()
            self.writes[lun] += 1

    def snapshot(self, ctl, how):
        """terminate ("stop") or initiate ("start") on SD0 with no primary write in flight; a kill
        may cut it short (pending until a check reads the survivor's state)"""
        with self.primary_lock, self.backup_lock:
            self.pending = (how, dict(self.ledgers[PRIMARY].acked) if how == "start" else self.image)
            self.image = None
            try:
                ctl.command("snapshot_%s" % how, {"sd": 0} if how == "start" else {})
            except (proto.LinkError, OSError) as e:        # the console's controller died under it
                self.log("snapshot_%s cut: %s" % (how, e))
                return
            except proto.BoardError as e:
                if e.code != "PARTNER_LOST":     # (the owner it was sent to died under it)
                    self.errors.append("snapshot_%s: %s %s" % (how, e.code, e))
                self.log("snapshot_%s cut: %s" % (how, e))
                return
            self.image = self.pending[1] if how == "start" else None
            self.pending = None

    # the storm's threads: each runs until `stop` is set
    def writer(self, lun, stop):
        while not stop.is_set():
            n = self.rnd.randint(1, 16)
            lba = self.rnd.randrange(0, REGION - n)
            if lun == PRIMARY:
                with self.primary_lock:
                    self.write(lun, lba, n)
            else:
                self.write(lun, lba, n)

    def reader(self, stop):
        while not stop.is_set():
            with self.backup_lock:
                if self.image is not None:
                    self.read_backup(self.rnd.randrange(0, REGION - 64))
            time.sleep(0)           # let a terminate or an initiate have the lock

    def read_backup(self, lba):
        got = self.hosts[BACKUP].read_seeds(BACKUP, lba, 64)
        bad = differ(got, self.image, lba) if got is not None else 0
        if bad:
            self.log("backup LUN read at %d: %d blocks not the image at initiate" % (lba, bad))
            self.divergences += bad

    def recycler(self, stop):
        ctl = self.pair.c[self.rnd.randrange(2)]
        self.snapshot(ctl, "stop")
        if self.pending is None and not stop.is_set():
            self.snapshot(ctl, "start")

    def round(self, k):
        """one kill: -> divergences found after it"""
        victim, survivor = k % 2, 1 - k % 2
        stop = threading.Event()
        jobs = [lambda: self.writer(PRIMARY, stop), lambda: self.writer(OWN1, stop), lambda: self.reader(stop)]
        copy = k % 4 == 0 and self.image is not None
        recycle = k % 3 == 2 and self.image is not None and not copy
        if copy:        # full and slow (1 %), so that it runs at the kill and long after
            self.copy_started = time.time()
            self.pair.c[0].command("lop_start", {"op": "copy", "sd": 0, "to": 3, "rate": 1, "full": True})
        if recycle:
            jobs.append(lambda: self.recycler(stop))
        threads = [threading.Thread(target=j, daemon=True) for j in jobs]
        for t in threads:
            t.start()
        time.sleep(self.rnd.uniform(0.0, 0.15) if recycle else self.rnd.uniform(0.02, 0.4))
        self.pair.kill(victim)
        self.pair.wait(survivor, lambda s: s["serving"] == [0, 1], "took over", timeout=GIVE_UP)
        self.until_writes(3)                # the hosts go on through the taken-over portal
        stop.set()
        for t in threads:
            t.join(GIVE_UP * 2)
        before = self.divergences
        if copy:
            self.finish_copy(self.pair.c[survivor])
        self.check(self.pair.c[survivor])
        if k % 5 == 1:
            # the returning controller is killed again while it boots, joins and takes its
            # drives back: the survivor keeps serving everything
            self.pair.c[victim].launch()
            time.sleep(self.rnd.uniform(0.0, 0.6))
            self.pair.kill(victim)
            self.failbacks_cut += 1
            self.pair.wait(survivor, lambda s: s["serving"] == [0, 1], "kept everything", timeout=GIVE_UP)
            self.check(self.pair.c[survivor])
        elif k % 5 == 3:
            # the survivor dies while the returning controller takes its drives back: the one
            # that just came back takes everything over
            self.pair.c[victim].launch()
            time.sleep(self.rnd.uniform(0.0, 0.6))
            self.pair.kill(survivor)
            self.pair.c[victim].wait_ready(GIVE_UP)
            self.pair.wait(victim, lambda s: s["serving"] == [0, 1], "took everything", timeout=GIVE_UP)
            self.check(self.pair.c[victim])
            victim, survivor = survivor, victim
            self.failbacks_cut += 1
        self.pair.restart(victim)
        self.pair.wait(survivor, lambda s: s["serving"] == [survivor] and s["partner"] == "UP",
                       "gave back", timeout=GIVE_UP)
        self.pair.wait(victim, lambda s: s["serving"] == [victim], "own ports", timeout=GIVE_UP)
        if self.image is None:
            self.snapshot(self.pair.c[0], "start")
        return self.divergences - before

    def until_writes(self, n):
        want = {lun: w + n for lun, w in self.writes.items()}
        deadline = time.time() + GIVE_UP
        while any(self.writes[lun] < want[lun] for lun in want) and time.time() < deadline and \
                len(self.errors) == 0:
            time.sleep(0.01)

    def finish_copy(self, survivor):
        """the copy the kill cut short went on on the survivor: at full rate it completes, its
        destination holds the image at initiate, and the snapshot ended with it"""
        resumed = [e for e in survivor.command("events", {"n": 64})["events"]
                   if "COPY" in e["text"] and "RESUMED" in e["text"] and "FAILOVER" in e["text"]]
        if not resumed or resumed[-1]["time"] < self.copy_started:
            self.log("FIG. 8 copy not resumed by the survivor")
            self.divergences += 1
        survivor.command("lop_start", {"op": "rate", "rate": 100})
        deadline = time.time() + GIVE_UP
        while survivor.command("lop_status")["copy_word"] == "0x0000" and time.time() < deadline:
            time.sleep(0.1)
        word = survivor.command("lop_status")["copy_word"]
        if word != "0x0100":
            self.log("FIG. 8 copy ended with status word %s" % word)
            self.divergences += 1
        h = self.host(0, 1, name=I.INITIATOR + ":copy")      # the survivor serves every portal
        seen = h.read_region(COPY)
        h.close()
        bad = differ(seen, self.image) if seen is not None else 0
        if bad:
            self.log("FIG. 8 copy: %d blocks of its destination not the image at initiate" % bad)
        self.divergences += bad
        self.copies += 1
        self.image = None           # the copy's end ended the snapshot (check() sees it so)

    def check(self, survivor):
        active = survivor.command("snapshot_status")["state"] == "ACTIVE"
        if self.pending is not None:        # the kill cut the command short: either outcome is right
            how, image = self.pending
            self.image, self.pending = (image if active else None), None
        elif active != (self.image is not None):
            self.log("snapshot %s after the kill" % ("active" if active else "gone"))
            self.divergences += 1
        first = {}
        for n in (0, 1):
            for port in (0, 1):
                h = self.host(n, port, name=I.INITIATOR + ":check")
                for lun in (PRIMARY, OWN1, BACKUP):
                    if lun == BACKUP and self.image is None:
                        continue
                    seen = h.read_region(lun)
                    if seen is None:
                        continue         # counted in errors
                    if lun not in first:
                        first[lun] = seen
                        bad = differ(seen, self.image) if lun == BACKUP else self.ledgers[lun].settle(seen)
                    else:
                        bad = sum(1 for a, b in zip(seen, first[lun]) if a != b)
                    if bad:
                        self.log("LUN %d through controller %d's port %d: %d divergent blocks" % (lun, n, port, bad))
                    self.divergences += bad
                h.close()

    def close(self):
        for h in self.hosts.values():
            h.close()
        self.pair.kill()


def run_duplex_storm(tmp, kills, rnd, log=None):
    """-> (divergences, retries, counts) over `kills` kill/failback rounds: a divergence is a block
    that broke a promise or a host error that is not retryable; retries counts what the hosts
    retried by kind ("reset", "02/04/0A", "06/2A/06"); counts: "copies", the FIG. 8 copies a kill
    cut short that completed on the survivor, and "failback_kills", the kills during failbacks."""
    storm = Storm(tmp, rnd, log)
    try:
        for k in range(kills):
            bad = storm.round(k)
            if bad and log:
                log("kill %d: %d divergences" % (k, bad))
        for e in storm.errors:
            (log or print)("host error: " + e)
        return (storm.divergences + len(storm.errors), sum((h.retries for h in storm.hosts.values()), collections.Counter()),
                {"copies": storm.copies, "failback_kills": storm.failbacks_cut})
    finally:
        storm.close()
