# Crash consistency of multi-member writes (storage/README.md "Crash consistency"), on micropython.
# A CrashIOP "kills" the firmware at its N-th file write (that write cut to a prefix or not made at
# all); the objects are dropped and a fresh IOP + SystemDrive are built over the same files, as a
# restarted process would. Every crash point of random writes of every shape is tried; after each
# restart the members must agree (mirror copies equal, parity rows XOR to zero: read from the member
# files), blocks outside the cut write must be as before and blocks inside it old or new.
import os
import random
import struct
import binascii
from hw.iop import IOP, INTENT_FILE
from storage import raid
from storage.raid import SystemDrive
from test_raid import files_check, rnd

TMP = os.getenv("RB_TMP") or "/tmp"
DISK = 512
S = 8
NAMES = ["0:%d" % i for i in range(6)]


class Crash(Exception):
    pass


class CrashIOP(IOP):
    # dies at its `left`-th file write from now (member writes and intent records both count);
    # with `cut` the dying write leaves a prefix on the file, as a kill inside write(2) can
    def __init__(self, d, intent=True):
        super().__init__(d, 6, DISK, NAMES, intent)
        self.left = -1
        self.cut = 0

    def _dies(self):
        if self.left < 0:
            return False
        if self.left == 0:
            self.left = -1
            return True
        self.left -= 1
        return False

    def write(self, slot, lba, mv):
        if self._dies():
            half = len(mv) // 1024
            if self.cut and half:
                super().write(slot, lba, mv[:half * 512])
            raise Crash()
        super().write(slot, lba, mv)

    def intent(self, *a):
        if not self.intent_on:
            return  # no record, no file write
        if self._dies():
            if self.cut:
                path = self.state_dir + "/" + INTENT_FILE
                with open(path, "rb") as f:
                    old = f.read()
                super().intent(*a)
                with open(path, "rb") as f:
                    new = f.read()
                with open(path + ".t", "wb") as f:
                    f.write(new[:20] + old[20:])  # the header cut in the middle
                os.rename(path + ".t", path)
            raise Crash()
        super().intent(*a)


def newdir(name):
    d = TMP + "/" + name
    try:
        os.mkdir(d)
    except OSError:
        pass
    return d


def shape(sd, rng):
    # a write of one of the shapes the RAID code treats differently
    RB = sd.row_blocks
    kind = rng.randint(0, 5)
    if kind == 0:
        cnt = 1
    elif kind == 1:
        cnt = rng.randint(2, S)           # inside one unit, most of the time
    elif kind == 2:
        cnt = S + rng.randint(1, S)       # across a unit boundary
    elif kind == 3 and sd.parity:
        row = rng.randint(0, sd.blocks // RB - 1)
        return row * RB, RB               # a full row
    else:
        cnt = 2 * RB + rng.randint(1, S)  # several rows
    cnt = min(cnt, sd.blocks)
    return rng.randint(0, sd.blocks - cnt), cnt


def read_all(sd):
    got = bytearray(sd.blocks * 512)
    step = 64
    for lba in range(0, sd.blocks, step):
        c = min(step, sd.blocks - lba)
        sd.read(lba, memoryview(got)[lba * 512:(lba + c) * 512])
    return got


def verify(sd, ref, lba, cnt, new):
    # what the restarted drive returns: as before outside the cut write, old or new block by block
    # inside it (then the reference follows what is there)
    got = read_all(sd)
    a, b = lba * 512, (lba + cnt) * 512
    assert got[:a] == ref[:a] and got[b:] == ref[b:], "data outside the cut write %d+%d changed" % (lba, cnt)
    for i in range(cnt):
        blk = got[a + i * 512:a + (i + 1) * 512]
        assert blk == ref[a + i * 512:a + (i + 1) * 512] or blk == new[i * 512:(i + 1) * 512], \
            "block %d of the cut write %d+%d is neither old nor new" % (lba + i, lba, cnt)
    ref[a:b] = got[a:b]


def crash(iop, sd, lba, data, surely=True):
    # the write dies at the crash point set in iop (surely: it must reach one); the process is gone
    try:
        sd.write(lba, memoryview(data))
        if surely:
            raise AssertionError("no crash")
    except Crash:
        pass
    iop.close()


def restart(d, number, level, mem, intent=True):
    # what the next firmware process builds from the files: (iop, system drive)
    iop = CrashIOP(d, intent)
    return iop, SystemDrive(number, level, mem, S, iop)


def crash_trials(name, level, n, trials, seed, prepare=None, intent=True):
    # random writes, each tried at every crash point until it completes; answers (dir, iop, sd, ref)
    d = newdir(name)
    iop = CrashIOP(d, intent)
    mem = [(i, 4 * i, DISK - 4 * i) for i in range(n)]
    sd = SystemDrive(1, level, mem, S, iop)
    ref = bytearray(sd.blocks * 512)
    rng = random.Random(seed) if hasattr(random, "Random") else random
    rng.seed(seed)
    for i in range(20):
        lba, cnt = shape(sd, rng)
        data = rnd(cnt * 512)
        sd.write(lba, memoryview(data))
        ref[lba * 512:(lba + cnt) * 512] = data
    if prepare:
        prepare(iop, sd)
    online = sd.status() == raid.ONLINE
    crashes = 0
    for t in range(trials):
        lba, cnt = shape(sd, rng)
        new = rnd(cnt * 512)
        c = 0
        while True:
            iop.left = c
            iop.cut = c & 1
            try:
                sd.write(lba, memoryview(new))
                iop.left = -1
                ref[lba * 512:(lba + cnt) * 512] = new
                if online and t % 5 == 0:
                    files_check(d, iop, sd, ref)  # the member files, against a model of the layout
                break
            except Crash:
                crashes += 1
            # the process is gone: nothing of it survives but the files
            iop.close()
            iop, sd = restart(d, 1, level, mem, intent)
            assert sd.resync_ok, sd.resync_note
            verify(sd, ref, lba, cnt, new)
            if online:
                assert sd.check(0, sd.blocks) == 0, "members disagree after the restart"
            c += 1
    assert crashes >= trials, "only %d crash points for %d writes" % (crashes, trials)
    return d, iop, sd, ref


def rebuild(sd):
    # the rebuild pass over the whole drive
    for lba in range(0, sd.blocks, 200):
        sd.rebuild(lba, min(200, sd.blocks - lba))


def rebuild_online(iop, sd, slot):
    # finish a replacement: rebuild pass, member online
    rebuild(sd)
    iop.set_online(slot)


def every_crash_point(*trials):
    # crash_trials, then the member files against the layout
    files_check(*crash_trials(*trials))


def test_raid1_every_crash_point():
    every_crash_point("r1", raid.RAID1, 2, 25, 1)


def test_raid01_every_crash_point():
    every_crash_point("r01", raid.RAID6, 4, 25, 2)


def test_raid5_every_crash_point():
    every_crash_point("r5", raid.RAID5, 4, 25, 3)


def test_raid3_every_crash_point():
    every_crash_point("r3", raid.RAID3, 3, 20, 4)


def test_raid5_degraded_every_crash_point():
    # a data member gone: the write hole proper. Units of the failed member that a write does not
    # touch must still reconstruct to what they were, whatever part of the write reached the disks.
    def prepare(iop, sd):
        iop.fail(1)
    d, iop, sd, ref = crash_trials("r5d", raid.RAID5, 4, 40, 5, prepare)
    assert sd.status() == raid.CRITICAL
    iop.replace(1)
    rebuild_online(iop, sd, 1)
    files_check(d, iop, sd, ref)


def test_raid3_degraded_parity_member_every_crash_point():
    def prepare(iop, sd):
        iop.fail(2)  # the dedicated parity disk
    d, iop, sd, ref = crash_trials("r3p", raid.RAID3, 3, 15, 6, prepare)
    iop.replace(2)
    rebuild_online(iop, sd, 2)
    files_check(d, iop, sd, ref)


def test_raid5_rebuild_member_every_crash_point():
    # a replacement already rebuilt but not yet online: torn writes must reach it through the
    # resync, or it would come online with stale rows
    def prepare(iop, sd):
        iop.replace(2)
        rebuild(sd)
    d, iop, sd, ref = crash_trials("r5r", raid.RAID5, 4, 30, 7, prepare)
    assert iop.state(2) == "rebuild"
    iop.set_online(2)
    files_check(d, iop, sd, ref)


def test_raid1_rebuild_member_every_crash_point():
    def prepare(iop, sd):
        iop.replace(0)  # the first member: the resync must copy from the second
        rebuild(sd)
    d, iop, sd, ref = crash_trials("r1r", raid.RAID1, 2, 20, 8, prepare)
    iop.set_online(0)
    files_check(d, iop, sd, ref)


def test_without_the_record_the_members_disagree():
    # the same crashes with the record off: what the checks above would catch
    d = newdir("off1")
    iop = CrashIOP(d, intent=False)
    sd = SystemDrive(0, raid.RAID1, [(0, 0, DISK), (1, 0, DISK)], S, iop)
    iop.left = 1  # member 0 written, member 1 not
    crash(iop, sd, 10, rnd(4096))
    iop, sd = restart(d, 0, raid.RAID1, [(0, 0, DISK), (1, 0, DISK)], intent=False)
    assert sd.resync_note is None
    assert sd.check(0, sd.blocks) == 8  # sectors whose copies differ
    # degraded RAID 5: data written, parity not: the failed member's untouched unit reads wrong
    d = newdir("off5")
    iop = CrashIOP(d, intent=False)
    mem = [(i, 0, DISK) for i in range(3)]
    sd = SystemDrive(0, raid.RAID5, mem, S, iop)
    ref = rnd(2 * S * 512)
    sd.write(0, memoryview(ref))  # row 0: parity on member 2, data units on members 0 and 1
    iop.fail(1)
    iop.left = 1  # reads are free; RMW writes data (member 0), then would write the parity
    crash(iop, sd, 0, rnd(512))
    iop, sd = restart(d, 0, raid.RAID5, mem, intent=False)
    got = bytearray(S * 512)
    sd.read(S, memoryview(got))  # unit 1, on the failed member, never written by the cut write
    assert got != ref[S * 512:], "the torn write left the reconstruction right"
    # the same with the record on: the unit reconstructs as it was
    d = newdir("on5")
    iop = CrashIOP(d)
    sd = SystemDrive(0, raid.RAID5, mem, S, iop)
    sd.write(0, memoryview(ref))
    iop.fail(1)
    iop.left = 2  # the row record, then member 0's data; the parity is cut
    crash(iop, sd, 0, rnd(512))
    iop, sd = restart(d, 0, raid.RAID5, mem)
    assert sd.resync_ok and "row 0" in sd.resync_note, sd.resync_note
    sd.read(S, memoryview(got))
    assert got == ref[S * 512:]


def test_record_torn_foreign_or_garbage_is_ignored():
    d = newdir("rec")
    iop = CrashIOP(d)
    mem = [(0, 0, DISK), (1, 0, DISK)]
    sd = SystemDrive(3, raid.RAID1, mem, S, iop)
    sd.write(0, memoryview(rnd(1024)))
    # a record cut while written: nothing of its write had started, nothing to resync
    iop.left = 0
    iop.cut = 1
    crash(iop, sd, 100, rnd(1024), surely=False)
    iop = CrashIOP(d)
    assert iop.intent_pending is None
    sd = SystemDrive(3, raid.RAID1, mem, S, iop)
    assert sd.resync_note is None and sd.check(0, sd.blocks) == 0
    # a whole record, but for another drive number, or this number with another layout
    iop.left = 1
    crash(iop, sd, 100, rnd(1024), surely=False)
    iop = CrashIOP(d)
    assert iop.intent_pending is not None
    other = SystemDrive(4, raid.RAID1, mem, S, iop)
    moved = SystemDrive(3, raid.RAID1, [(0, 0, DISK - 8), (1, 0, DISK - 8)], S, iop)
    assert other.resync_note is None and moved.resync_note is None and iop.intent_pending is not None
    sd = SystemDrive(3, raid.RAID1, mem, S, iop)
    assert sd.resync_ok and sd.resync_note == "blocks 100+2, written when the firmware stopped, resynced"
    assert iop.intent_pending is None  # applied once: a drive built again later does not resync
    assert SystemDrive(3, raid.RAID1, mem, S, iop).resync_note is None
    assert sd.check(0, sd.blocks) == 0
    iop.close()
    # garbage, a short file, an absurd payload length, a record that does not fit the drive
    path = d + "/" + INTENT_FILE
    fmt = "<4sBBHIIIIIiI"
    hdr = bytearray(40)
    struct.pack_into(fmt, hdr, 0, b"RBIX", 1, 0, 3, sd.geo, 9, DISK - 1, 5, 0, -1, 0)
    struct.pack_into("<I", hdr, 36, binascii.crc32(memoryview(hdr)[:36]))
    huge = bytearray(hdr)
    struct.pack_into("<I", huge, 32, 0xFFFFFFF0)
    for i, junk in enumerate((rnd(300), b"RBIX", bytes(huge), bytes(hdr))):
        with open(path, "wb") as f:
            f.write(junk)
        iop = CrashIOP(d)
        sd = SystemDrive(3, raid.RAID1, mem, S, iop)
        if i == 3:
            assert not sd.resync_ok and "does not fit" in sd.resync_note, sd.resync_note
        else:
            assert sd.resync_note is None, sd.resync_note
        damaged = [p for p in iop.problems if "damaged" in p[1]]
        assert bool(damaged) == (junk[:4] not in (b"RBIX", bytes(4))), (junk[:4], iop.problems)
        sd.write(0, memoryview(rnd(512)))  # and the drive works on
        iop.close()


def test_slot_state_changes_clear_the_record():
    # a record of a completed write must not be resynced against later member states: failing a
    # disk of a RAID 5 after its last write would otherwise report rows it cannot resync
    d = newdir("clr")
    iop = CrashIOP(d)
    mem = [(i, 0, DISK) for i in range(3)]
    sd = SystemDrive(0, raid.RAID5, mem, S, iop)
    sd.write(5, memoryview(rnd(512)))
    iop.fail(0)
    iop.close()
    iop = CrashIOP(d)
    assert iop.intent_pending is None
    sd = SystemDrive(0, raid.RAID5, mem, S, iop)
    assert sd.resync_note is None and sd.status() == raid.CRITICAL


def test_member_lost_since_the_cut_write_is_reported():
    # ONLINE when cut, a data member missing at restart: those rows cannot be resynced; say so
    d = newdir("lost")
    iop = CrashIOP(d)
    mem = [(i, 0, DISK) for i in range(3)]
    sd = SystemDrive(0, raid.RAID5, mem, S, iop)
    iop.left = 2
    crash(iop, sd, 0, rnd(512), surely=False)
    os.remove(iop.paths[1])
    iop = CrashIOP(d)
    assert iop.state(1) == "removed"
    sd = SystemDrive(0, raid.RAID5, mem, S, iop)
    assert not sd.resync_ok and "slot 1 is removed" in sd.resync_note, sd.resync_note
    assert sd.status() == raid.CRITICAL


def test_one_record_per_write_and_none_for_single_member_levels():
    d = newdir("cost")
    iop = IOP(d, 6, DISK, NAMES)
    r1 = SystemDrive(0, raid.RAID1, [(0, 0, DISK), (1, 0, DISK)], S, iop)
    r5 = SystemDrive(1, raid.RAID5, [(2, 0, DISK), (3, 0, DISK), (4, 0, DISK)], S, iop)
    r0 = SystemDrive(2, raid.RAID0, [(0, DISK - 64, 64), (1, DISK - 64, 64)], S, iop)
    jb = SystemDrive(3, raid.NORAID, [(5, 0, DISK)], S, iop)
    big = memoryview(rnd(5 * 2 * S * 512))  # five RAID 5 rows
    for sd in (r1, r5, r0, jb):
        iop.reset_counters()
        w0 = iop.intent_writes
        sd.write(3, big[:512])
        sd.write(0, big)
        want = 2 if (sd.mirror or sd.parity) else 0
        assert iop.intent_writes - w0 == want, (sd.level, iop.intent_writes - w0)
    # member I/O is what it was: a small RAID 5 write is still 2 reads + 2 writes
    iop.reset_counters()
    r5.write(100, big[:512])
    assert iop.writes == 2, iop.writes
    # degraded parity drive: one record per row, after reading what the lost member holds
    iop.fail(3)
    w0 = iop.intent_writes
    r5.write(0, big)
    assert iop.intent_writes - w0 == 5


def test_snapshot_log_slot_on_a_raid1_log_drive():
    # a log slot is chunk + trailer in one write; cut after the first mirror, the restarted drive
    # has the trailer on both copies or on neither, never one
    d = newdir("log")
    mem = [(4, 0, DISK), (5, 0, DISK)]
    cb = 16
    for cut in range(4):
        iop = CrashIOP(d)
        sd = SystemDrive(1, raid.RAID1, mem, S, iop)
        slot = memoryview(rnd((cb + 1) * 512))
        slot[cb * 512:cb * 512 + 4] = b"TRLR"
        lba = 1 + cut * (cb + 1)
        iop.left = 1 + cut // 2
        iop.cut = cut & 1
        crash(iop, sd, lba, slot, surely=False)
        iop, sd = restart(d, 1, raid.RAID1, mem)
        assert sd.check(0, sd.blocks) == 0
        t = []
        for m in mem:
            with open(iop.paths[m[0]], "rb") as f:
                f.seek((lba + cb) * 512)
                t.append(f.read(4))
        assert t[0] == t[1], (cut, t)
        iop.close()


def test_the_controller_resyncs_at_boot():
    # the real boot path: Controller builds its drives, the cut write is resynced before use
    import fw
    ctl = fw.boot()
    sd = getattr(ctl.drives[1], "drive", ctl.drives[1])  # factory: SD1 = RAID 1 (the log drive)
    assert sd.level == raid.RAID1
    real = ctl.iop.write
    done = []

    def dies_after_one(slot, lba, mv):
        if done:
            raise Crash()
        done.append(slot)
        real(slot, lba, mv)
    ctl.iop.write = dies_after_one
    try:
        sd.write(40, memoryview(rnd(8192)))
        raise AssertionError("no crash")
    except Crash:
        pass
    ctl.iop.write = real
    assert sd.check(0, sd.blocks) == 16  # the torn state the restart must repair
    ctl = fw.reboot(ctl)
    sd = getattr(ctl.drives[1], "drive", ctl.drives[1])
    assert sd.resync_ok and sd.resync_note == "blocks 40+16, written when the firmware stopped, resynced"
    assert sd.check(0, sd.blocks) == 0
    ctl.iop.close()
