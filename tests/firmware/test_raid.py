# System drives at every RAID level, on micropython. Each level gets a property test: seeded random
# writes and reads against a flat reference image, then the same with one failed member, after a
# replacement and rebuild, and after a reboot; the member files themselves are read back and checked
# against an independent model of the documented layout (storage/README.md), parity XORed from the files.
import os
import random
from hw.iop import IOP
from hw import levels
from storage import raid
from storage.raid import SystemDrive, DriveError

TMP = os.getenv("RB_TMP") or "/tmp"
DISK = 1024  # blocks per disk (512 KiB): small, so the reference image fits the test heap
S = 8  # stripe unit, blocks


def fresh(name, n_slots=6):
    d = TMP + "/" + name
    try:
        os.mkdir(d)
    except OSError:
        pass
    names = ["0:%d" % i for i in range(n_slots)]
    return d, IOP(d, n_slots, DISK, names)


def rnd(nb):
    return bytearray(os.urandom(nb))


# ---- an independent model of the layouts of storage/README.md
def ndata(level, n):
    return {raid.RAID0: n, raid.RAID3: n - 1, raid.RAID5: n - 1, raid.RAID6: n // 2}.get(level, 1)


def copies(level, n, lba):
    # [(member, member offset)] holding logical sector lba
    if level == raid.NORAID:
        return [(0, lba)]
    if level == raid.RAID1:
        return [(0, lba), (1, lba)]
    nd = ndata(level, n)
    u = lba // S
    row = u // nd
    k = u % nd
    off = row * S + lba % S
    if level == raid.RAID0 or level == raid.RAID3:
        return [(k, off)]
    if level == raid.RAID5:
        p = n - 1 - row % n
        return [((p + 1 + k) % n, off)]
    return [(2 * k, off), (2 * k + 1, off)]


def parity_member(level, n, row):
    return n - 1 - row % n if level == raid.RAID5 else n - 1


def files_check(d, iop, sd, ref):
    # every online member's file holds the reference where the layout says; parity rows XOR to 0
    level, n = sd.level, sd.n
    fs = [open(iop.paths[m[0]], "rb") for m in sd.members]
    buf = bytearray(512)
    try:
        for lba in range(sd.blocks):
            want = ref[lba * 512:(lba + 1) * 512]
            for m, off in copies(level, n, lba):
                if iop.state(sd.members[m][0]) != "online":
                    continue
                fs[m].seek((sd.members[m][1] + off) * 512)
                fs[m].readinto(buf)
                assert buf == want, "sd %d lba %d: member %d offset %d differs" % (sd.number, lba, m, off)
        if level in (raid.RAID3, raid.RAID5):
            rows = (sd.blocks + (n - 1) * S - 1) // ((n - 1) * S)
            acc = bytearray(S * 512)
            unit = bytearray(S * 512)
            for row in range(rows):
                for i in range(len(acc)):
                    acc[i] = 0
                for m in range(n):
                    fs[m].seek((sd.members[m][1] + row * S) * 512)
                    fs[m].readinto(unit)
                    for i in range(0, len(acc), 4):
                        acc[i] ^= unit[i]
                        acc[i + 1] ^= unit[i + 1]
                        acc[i + 2] ^= unit[i + 2]
                        acc[i + 3] ^= unit[i + 3]
                assert acc == bytearray(len(acc)), "row %d: parity (member %d) does not XOR to zero" % (
                    row, parity_member(level, n, row))
    finally:
        for f in fs:
            f.close()


def exercise(sd, ref, seed, ops, maxlen=None):
    random.seed(seed)
    big = maxlen or 3 * sd.row_blocks + 5
    for i in range(ops):
        if random.randint(0, 3) == 0:
            cnt = random.randint(1, big)
        else:
            cnt = random.randint(1, S + 2)
        if cnt > sd.blocks:
            cnt = sd.blocks
        lba = random.randint(0, sd.blocks - cnt)
        a, b = lba * 512, (lba + cnt) * 512
        if random.randint(0, 2):
            data = rnd(b - a)
            if random.randint(0, 3) == 0:
                sd.write(lba, memoryview(data), old=memoryview(ref[a:b]))
            else:
                sd.write(lba, memoryview(data))
            ref[a:b] = data
        else:
            got = bytearray(b - a)
            sd.read(lba, memoryview(got))
            assert got == ref[a:b], "op %d: read %d+%d differs from the reference" % (i, lba, cnt)


def read_all(sd, ref):
    got = bytearray(sd.row_blocks * 512 * 4 if sd.row_blocks < 64 else 64 * 512)
    step = len(got) // 512
    for lba in range(0, sd.blocks, step):
        c = min(step, sd.blocks - lba)
        mv = memoryview(got)[:c * 512]
        sd.read(lba, mv)
        assert bytes(mv) == ref[lba * 512:(lba + c) * 512], "lba %d+%d differs" % (lba, c)


def members_for(n, odd_extents=True):
    # extents that do not start at 0 and differ in length: the drive uses the shortest
    if not odd_extents:
        return [(i, 0, DISK) for i in range(n)]
    return [(i, 8 + 4 * i, DISK - 16 - 5 * i) for i in range(n)]


def property_run(name, level, n, blocks=None, victim_i=-1):
    d, iop = fresh(name)
    mem = members_for(n)
    sd = SystemDrive(1, level, mem, S, iop, blocks)
    ref = bytearray(sd.blocks * 512)
    assert sd.status() == "ONLINE"
    exercise(sd, ref, 1, 250)
    files_check(d, iop, sd, ref)
    redundant = level in (raid.RAID1, raid.RAID3, raid.RAID5, raid.RAID6)
    victim = mem[victim_i][0]
    if redundant:
        # one failed member: reads and writes stay right, the drive is CRITICAL
        iop.fail(victim)
        assert sd.status() == "CRITICAL", sd.status()
        read_all(sd, ref)
        exercise(sd, ref, 2, 250)
        read_all(sd, ref)
        # a replacement disk: written to, never read, until rebuilt
        iop.replace(victim)
        assert iop.state(victim) == "rebuild"
        assert sd.status() == "CRITICAL"
        exercise(sd, ref, 3, 150)
        read_all(sd, ref)
        step = 100
        for lba in range(0, sd.blocks, step):
            sd.rebuild(lba, min(step, sd.blocks - lba))
        iop.set_online(victim)
        assert sd.status() == "ONLINE"
        assert sd.check(0, sd.blocks) == 0
        files_check(d, iop, sd, ref)
        exercise(sd, ref, 4, 150)
        files_check(d, iop, sd, ref)
    # reboot: new objects over the same files
    iop.close()
    iop = IOP(d, 6, DISK, ["0:%d" % i for i in range(6)])
    sd = SystemDrive(1, level, mem, S, iop, blocks)
    read_all(sd, ref)
    exercise(sd, ref, 5, 100)
    files_check(d, iop, sd, ref)
    # beyond what the level tolerates: OFFLINE, errors, never data
    iop.fail(mem[0][0])
    if level in (raid.RAID1, raid.RAID3, raid.RAID5):
        iop.fail(mem[1][0])
    if level == raid.RAID6:
        assert sd.status() == "CRITICAL"
        iop.fail(mem[1][0])  # the other half of pair 0
    assert sd.status() == "OFFLINE", sd.status()
    buf = bytearray(1024)
    for fn in (sd.read, sd.write):
        try:
            fn(0, memoryview(buf))
            raise AssertionError("%s on an OFFLINE drive did not fail" % fn)
        except DriveError as e:
            assert e.kind == "offline"
    iop.close()


def test_jbod():
    property_run("jbod", raid.NORAID, 1)


def test_raid0():
    property_run("raid0", raid.RAID0, 3)


def test_raid1():
    property_run("raid1", raid.RAID1, 2)


def test_raid3():
    property_run("raid3", raid.RAID3, 4)


def test_raid3_data_member_fails():
    property_run("raid3d", raid.RAID3, 3, victim_i=0)


def test_raid01_first_member_fails():
    property_run("raid01f", raid.RAID6, 4, victim_i=0)


def test_raid5():
    property_run("raid5", raid.RAID5, 4)


def test_raid5_three_disks_smaller_size():
    property_run("raid5s", raid.RAID5, 3, blocks=1000)


def test_raid5_five_disks():
    property_run("raid5w", raid.RAID5, 5)


def test_raid3_six_disks():
    # five data units a row: full-stripe parity folds sources two at a time and then the last one
    property_run("raid3x", raid.RAID3, 6)


def test_raid01():
    property_run("raid01", raid.RAID6, 4)


def test_raid01_six_disks_two_failures_in_different_pairs():
    d, iop = fresh("raid01b")
    sd = SystemDrive(2, raid.RAID6, members_for(6), S, iop)
    ref = bytearray(sd.blocks * 512)
    exercise(sd, ref, 7, 100)
    iop.fail(0)
    iop.fail(3)  # pair 0 and pair 1 each keep one copy
    assert sd.status() == "CRITICAL"
    exercise(sd, ref, 8, 150)
    read_all(sd, ref)
    iop.fail(1)
    assert sd.status() == "OFFLINE"


def test_small_raid5_write_costs_two_reads_two_writes():
    d, iop = fresh("cost")
    sd = SystemDrive(0, raid.RAID5, members_for(4, False), 16, iop)
    data = memoryview(rnd(512))
    iop.reset_counters()
    sd.write(100, data)
    assert (iop.reads, iop.writes) == (2, 2), (iop.reads, iop.writes)
    old = bytearray(4096)
    sd.read(304, memoryview(old))
    iop.reset_counters()
    sd.write(304, memoryview(rnd(4096)), old=memoryview(old))
    assert (iop.reads, iop.writes) == (1, 2), (iop.reads, iop.writes)
    assert iop.read_bytes == 4096 and iop.write_bytes == 8192
    # across two stripe units of one row: the parity once, each unit once
    sd.read(300, memoryview(old))
    iop.reset_counters()
    sd.write(300, memoryview(rnd(4096)), old=memoryview(old))
    assert (iop.reads, iop.writes) == (1, 3), (iop.reads, iop.writes)
    # a full stripe needs no read at all
    iop.reset_counters()
    sd.write(3 * 16, memoryview(rnd(3 * 16 * 512)))
    assert (iop.reads, iop.writes) == (0, 4)


def test_old_data_is_trusted_on_degraded_raid5():
    # old= stands in for the failed member's data: the parity must still come out right
    d, iop = fresh("olddeg")
    mem = members_for(3, False)
    sd = SystemDrive(0, raid.RAID5, mem, S, iop)
    ref = bytearray(sd.blocks * 512)
    exercise(sd, ref, 11, 60)
    iop.fail(0)
    for i in range(80):
        lba = random.randint(0, sd.blocks - 20)
        a, b = lba * 512, (lba + 20) * 512
        data = rnd(b - a)
        sd.write(lba, memoryview(data), old=memoryview(ref[a:b]))
        ref[a:b] = data
    read_all(sd, ref)


def test_check_finds_and_fixes_bad_parity_and_mirrors():
    d, iop = fresh("check")
    sd5 = SystemDrive(0, raid.RAID5, [(i, 0, 512) for i in range(3)], S, iop)
    sd1 = SystemDrive(1, raid.RAID1, [(3, 0, 512), (4, 0, 512)], S, iop)
    for sd in (sd5, sd1):
        ref = bytearray(sd.blocks * 512)
        exercise(sd, ref, 12, 40)
        assert sd.check(0, sd.blocks) == 0
    # corrupt two rows of the RAID 5 and three sectors of a mirror, behind the drives' backs
    junk = rnd(512)
    iop.write(0, 3, memoryview(junk))
    iop.write(1, 8 * 20 + 1, memoryview(junk))
    for lba in (7, 8, 300):
        iop.write(4, lba, memoryview(junk))
    assert sd5.check(0, sd5.blocks) == 2
    assert sd1.check(0, sd1.blocks) == 3
    assert sd5.check(0, sd5.blocks, fix=True) == 2
    assert sd1.check(0, sd1.blocks, fix=True) == 3
    assert sd5.check(0, sd5.blocks) == 0
    assert sd1.check(0, sd1.blocks) == 0
    iop.fail(0)
    try:
        sd5.check(0, 10)
        raise AssertionError("check on a CRITICAL drive did not fail")
    except DriveError as e:
        assert e.kind == "critical"


def test_validate_and_bad_input():
    assert levels.validate(raid.RAID5, 3) is None
    assert levels.validate(raid.RAID6, 4) is None
    for level, n in ((raid.NORAID, 2), (raid.RAID0, 1), (raid.RAID1, 3), (raid.RAID3, 2),
                     (raid.RAID5, 2), (raid.RAID6, 5), (raid.RAID6, 2), (4, 3), (raid.RAID0, 17)):
        assert isinstance(levels.validate(level, n), str), (level, n)
    assert raid.capacity(raid.RAID5, 4, 1000, 16) == 3 * 992
    assert raid.capacity(raid.RAID1, 2, 1000, 16) == 1000
    assert raid.capacity(raid.RAID6, 6, 100, 8) == 3 * 96
    d, iop = fresh("bad")
    for args in (
        (raid.RAID5, [(0, 0, 100), (1, 0, 100)], 8, None),  # too few members
        (raid.RAID0, [(0, 0, 100), (0, 50, 100)], 8, None),  # overlapping extents
        (raid.RAID0, [(0, 0, 100), (9, 0, 100)], 8, None),  # no such slot
        (raid.RAID0, [(0, 1000, 100), (1, 0, 100)], 8, None),  # beyond the disk
        (raid.RAID0, [(0, 0, 4), (1, 0, 4)], 8, None),  # smaller than a stripe unit
        (raid.RAID0, [(0, 0, 100), (1, 0, 100)], 0, None),  # no stripe
        (raid.RAID0, [(0, 0, 100), (1, 0, 100)], 8, 10000),  # more than the members hold
    ):
        try:
            SystemDrive(0, args[0], args[1], args[2], iop, args[3])
            raise AssertionError("accepted %r" % (args,))
        except ValueError as e:
            assert "system drive 0" in str(e)
    sd = SystemDrive(0, raid.RAID0, [(0, 0, 100), (1, 0, 100)], 8, iop)
    for lba, nb in ((-1, 512), (sd.blocks, 512), (0, 100)):
        try:
            sd.read(lba, memoryview(bytearray(nb)))
            raise AssertionError("read %d %d accepted" % (lba, nb))
        except ValueError:
            pass


def test_disk_io_error_drops_the_member_and_raid1_carries_on():
    d, iop = fresh("ioerr")
    sd = SystemDrive(0, raid.RAID1, [(0, 0, DISK), (1, 0, DISK)], S, iop)
    ref = bytearray(sd.blocks * 512)
    exercise(sd, ref, 13, 40)
    # the disk starts refusing writes (its file now read-only): the IOP fails the slot, RAID 1
    # carries on with the other copy
    iop.files[0].close()
    iop.files[0] = open(iop.paths[0], "rb")
    exercise(sd, ref, 14, 40)
    read_all(sd, ref)
    assert iop.state(0) == "failed"
    assert sd.status() == "CRITICAL"


def test_a_member_whose_file_fails_during_a_long_read():
    # a member disk file that shrinks under the board: the read in progress drops it and goes on
    # (RAID 5: the unit is reconstructed from the others; RAID 0: the drive is OFFLINE, an error)
    for level, n, name in ((raid.RAID5, 4, "shrink5"), (raid.RAID0, 3, "shrink0")):
        d, iop = fresh(name)
        sd = SystemDrive(0, level, [(i, 0, DISK) for i in range(n)], S, iop)
        ref = rnd(sd.blocks * 512)
        sd.write(0, memoryview(ref))
        _truncate(iop.paths[1], 4096)     # member 1 keeps only its first unit
        got = bytearray(sd.blocks * 512)
        if level == raid.RAID5:
            sd.read(0, memoryview(got))
            assert got == ref and iop.state(1) == "failed" and sd.status() == raid.CRITICAL
        else:
            try:
                sd.read(0, memoryview(got))
                raise AssertionError("a RAID 0 read past a failed member returned data")
            except DriveError as e:
                assert e.kind == "offline" and iop.state(1) == "failed"
        iop.close()


def _truncate(path, size):
    # MicroPython's os has no truncate: rewrite the file with its first `size` bytes
    f = open(path, "rb")
    head = f.read(size)
    f.close()
    f = open(path, "wb")
    f.write(head)
    f.close()
