# Write-back cache on micropython: reads see dirty data, the cache stays inside its buffer slots,
# acknowledged writes are in the journal and come back after a kill (simulated, and a real kill -9
# of a child firmware process), a torn journal tail is ignored, flush/discard keep the journal honest.
import os
import sys
import random
from hw.iop import IOP
from hw.buffer import Buffer
from storage.raid import SystemDrive, RAID5, RAID1
from storage.cache import WriteBackCache

TMP = os.getenv("RB_TMP") or "/tmp"
DISK = 1024
NAMES = ["0:%d" % i for i in range(6)]


def board(name, slots=8, slot_bytes=4096):
    d = TMP + "/" + name
    try:
        os.mkdir(d)
    except OSError:
        pass
    iop = IOP(d, 6, DISK, NAMES)
    sd0 = SystemDrive(0, RAID5, [(i, 0, DISK) for i in range(4)], 8, iop)
    sd1 = SystemDrive(1, RAID1, [(4, 0, DISK), (5, 0, DISK)], 8, iop)
    buf = Buffer(slots * slot_bytes, slot_bytes)
    return d, iop, sd0, sd1, buf


def rnd(nb):
    return bytearray(os.urandom(nb))


def random_io(cache, sd, ref, seed, ops, check=True):
    random.seed(seed)
    for i in range(ops):
        cnt = random.randint(1, 24)
        lba = random.randint(0, sd.blocks - cnt)
        a, b = lba * 512, (lba + cnt) * 512
        if random.randint(0, 2):
            data = rnd(b - a)
            cache.write(sd, lba, memoryview(data))
            ref[a:b] = data
        elif check:
            got = bytearray(b - a)
            cache.read(sd, lba, memoryview(got))
            assert got == ref[a:b], "op %d: cached read %d+%d differs" % (i, lba, cnt)
        assert cache.dirty() <= cache.max_lines


def whole(sd):
    out = bytearray(sd.blocks * 512)
    sd.read(0, memoryview(out))
    return out


def test_reads_see_dirty_data_and_flush_destages():
    d, iop, sd0, sd1, buf = board("basic")
    c = WriteBackCache(d + "/wb.journal", buf)
    assert c.replay({0: sd0, 1: sd1})["records"] == 0
    ref = bytearray(sd0.blocks * 512)
    random_io(c, sd0, ref, 1, 400)
    assert c.dirty(0) > 0
    assert whole(sd0) != ref  # write-back: the disks lag behind the cache
    got = bytearray(len(ref))
    c.read(sd0, 0, memoryview(got))
    assert got == ref
    iop.reset_counters()
    n = c.flush(sd0)
    assert n > 0 and iop.writes > 0
    assert c.dirty() == 0 and buf.free == buf.slots
    assert whole(sd0) == ref
    assert os.stat(d + "/wb.journal")[6] == 0


def test_bounded_by_its_buffer_slots():
    # slots of 4 KiB + 512 (like the controller's chunk + header slots): lines of 8 blocks
    d, iop, sd0, sd1, buf = board("bounded", slots=8, slot_bytes=4096 + 512)
    c = WriteBackCache(d + "/wb.journal", buf, max_lines=5)
    assert c.spl == 8
    c.replay({0: sd0, 1: sd1})
    ref0 = bytearray(sd0.blocks * 512)
    ref1 = bytearray(sd1.blocks * 512)
    random_io(c, sd0, ref0, 2, 200)
    random_io(c, sd1, ref1, 3, 200)
    assert c.dirty() == 5 and buf.free == 3
    assert c.destaged > 0
    # another user (the snapshot engine) takes the rest of the buffer: the cache keeps working
    held = [buf.take() for i in range(3)]
    assert buf.take() == -1
    random_io(c, sd0, ref0, 4, 200)
    assert buf.free == 0 and c.dirty() == 5
    # the cache's own slots go to the other user too: it falls back to write-through
    c.flush()
    assert buf.free == 5
    more = [buf.take() for i in range(5)]
    random_io(c, sd0, ref0, 5, 50)
    assert c.dirty() == 0 and c.write_through > 0
    assert whole(sd0) == ref0
    for i in held + more:
        buf.give(i)
    c.flush()
    assert whole(sd1) == ref1


def test_acknowledged_writes_survive_a_simulated_kill():
    d, iop, sd0, sd1, buf = board("simkill")
    c = WriteBackCache(d + "/wb.journal", buf, journal_limit=1 << 30)
    c.replay({0: sd0, 1: sd1})
    ref0 = whole(sd0)
    ref1 = whole(sd1)
    random_io(c, sd0, ref0, 6, 300, check=False)
    random_io(c, sd1, ref1, 7, 300, check=False)
    assert c.dirty(1) > 0 and whole(sd1) != ref1
    # the process dies: nothing flushed, objects dropped; a new board boots over the same files
    del c, sd0, sd1, iop, buf
    d, iop, sd0, sd1, buf = board("simkill")
    c = WriteBackCache(d + "/wb.journal", buf)
    rep = c.replay([sd0, sd1])
    assert rep["records"] > 0 and rep["torn_bytes"] == 0 and rep["errors"] == [], rep
    assert whole(sd0) == ref0
    assert whole(sd1) == ref1
    assert c.replay([sd0, sd1])["records"] == 0  # the journal was emptied


def test_torn_journal_tail_is_ignored():
    d, iop, sd0, sd1, buf = board("torn", slots=64)
    c = WriteBackCache(d + "/wb.journal", buf, journal_limit=1 << 30)
    c.replay([sd0, sd1])
    base = whole(sd0)
    sizes = []
    image16 = None
    ref = bytearray(base)
    random.seed(8)
    for i in range(30):
        cnt = random.randint(1, 8)  # within one line: one record per write
        lba = random.randint(0, 120) * 8
        data = rnd(cnt * 512)
        c.write(sd0, lba, memoryview(data))
        ref[lba * 512:(lba + cnt) * 512] = data
        sizes.append(c.journal_bytes)
        if i == 16:
            image16 = bytearray(ref)
    c.close()
    journal = open(d + "/wb.journal", "rb").read()
    # cut the journal in the middle of record 17 (a kill during its append)
    cut = sizes[16] + 100
    f = open(d + "/wb.journal", "wb")
    f.write(journal[:cut])
    f.close()
    # nothing was destaged (the cache never filled): the disks still hold the old image
    d, iop, sd0, sd1, buf = board("torn", slots=64)
    assert whole(sd0) == base
    c = WriteBackCache(d + "/wb.journal", buf)
    rep = c.replay([sd0, sd1])
    assert rep["records"] == 17 and rep["torn_bytes"] == 100 and rep["errors"] == [], rep
    assert whole(sd0) == image16
    # garbage after the records is more than a kill can leave: replayed up to it, and reported
    c.close()
    f = open(d + "/wb.journal", "wb")
    f.write(journal[:sizes[16]])
    f.write(bytes(range(256)) * 256)
    f.close()
    c = WriteBackCache(d + "/wb.journal", buf)
    rep = c.replay([sd0, sd1])
    assert rep["records"] == 17 and rep["torn_bytes"] == 65536, rep
    assert len(rep["errors"]) == 1 and "damaged" in rep["errors"][0], rep
    assert whole(sd0) == image16
    # a flipped bit in a record stops the replay there as well
    c.close()
    f = open(d + "/wb.journal", "wb")
    bad = bytearray(journal[:sizes[5]])
    bad[sizes[3] + 30] ^= 1
    f.write(bad)
    f.close()
    c = WriteBackCache(d + "/wb.journal", buf)
    rep = c.replay([sd0, sd1])
    assert rep["records"] == 4 and rep["torn_bytes"] == sizes[5] - sizes[3], rep


def test_a_board_with_smaller_buffer_slots_stops_the_replay_and_says_why_once():
    d, iop, sd0, sd1, buf = board("shrunk", slots=8, slot_bytes=4096)
    c = WriteBackCache(d + "/wb.journal", buf)
    c.replay([sd0, sd1])
    c.write(sd0, 0, memoryview(rnd(512)))
    c.write(sd0, 64, memoryview(rnd(4096)))          # a record of 8 blocks
    c.close()
    d, iop, sd0, sd1, buf = board("shrunk", slots=8, slot_bytes=1024)
    rep = WriteBackCache(d + "/wb.journal", buf).replay([sd0, sd1])
    assert rep["records"] == 1 and len(rep["errors"]) == 1, rep
    assert "larger than a buffer slot" in rep["errors"][0], rep


def test_acknowledged_writes_survive_kill_9():
    d = TMP + "/kill9"
    os.mkdir(d)
    here = __file__.rsplit("/", 1)[0]
    fw = here + "/../../firmware"
    child = d + "/child.py"
    f = open(child, "w")
    f.write("""import sys, os
sys.path.insert(0, %r)
from hw.iop import IOP
from hw.buffer import Buffer
from storage.raid import SystemDrive, RAID5
from storage.cache import WriteBackCache
d = %r
iop = IOP(d, 6, %d, %r)
sd = SystemDrive(0, RAID5, [(i, 0, %d) for i in range(4)], 8, iop)
c = WriteBackCache(d + "/wb.journal", Buffer(8 * 4096, 4096))
c.replay([sd])
ack = open(d + "/acked", "w")
for i in range(int(sys.argv[1])):
    data = bytearray(4096)
    for j in range(0, 4096, 512):
        data[j] = i & 255
        data[j + 1] = i >> 8
    c.write(sd, i * 8, memoryview(data))
    ack.write("%%d\\n" %% i)
os.system("kill -9 $PPID")
print("still alive")
""" % (fw, d, DISK, NAMES, DISK))
    f.close()
    n = 300
    os.system("'%s' '%s' %d > '%s/out' 2>&1" % (sys.executable, child, n, d))
    out = open(d + "/out").read()
    assert "still alive" not in out, out
    acked = open(d + "/acked").read().split()
    assert len(acked) == n, "the child died before acknowledging everything: %r" % out
    iop = IOP(d, 6, DISK, NAMES)
    sd = SystemDrive(0, RAID5, [(i, 0, DISK) for i in range(4)], 8, iop)
    c = WriteBackCache(d + "/wb.journal", Buffer(8 * 4096, 4096))
    rep = c.replay([sd])
    assert rep["records"] > 0 and rep["errors"] == [], rep
    blk = bytearray(512)
    for i in range(n):
        sd.read(i * 8 + 7, memoryview(blk))
        assert blk[0] == i & 255 and blk[1] == i >> 8, "acknowledged write %d lost" % i


def test_flush_one_drive_and_discard_keep_the_journal_honest():
    d, iop, sd0, sd1, buf = board("flush1")
    c = WriteBackCache(d + "/wb.journal", buf)
    c.replay([sd0, sd1])
    ref0 = whole(sd0)
    ref1 = whole(sd1)
    random_io(c, sd0, ref0, 9, 60, check=False)
    random_io(c, sd1, ref1, 10, 60, check=False)
    c.flush(sd0)
    assert c.dirty(0) == 0 and c.dirty(1) > 0
    assert whole(sd0) == ref0
    # a write to drive 0 that bypasses the cache (its policy went write-through) must not be
    # undone by a replay of older records
    direct = rnd(4096)
    sd0.write(0, memoryview(direct))
    ref0[0:4096] = direct
    del c
    d, iop, sd0, sd1, buf = board("flush1")
    c = WriteBackCache(d + "/wb.journal", buf)
    rep = c.replay([sd0, sd1])
    assert rep["records"] > 0
    assert whole(sd0) == ref0
    assert whole(sd1) == ref1
    # discard: a deleted drive's dirty data is dropped, and gone from the journal
    random_io(c, sd1, ref1, 11, 30, check=False)
    assert c.discard(1) > 0 and c.dirty() == 0
    del c
    c = WriteBackCache(d + "/wb.journal", buf)
    assert c.replay([sd0, None])["records"] == 0


def test_bad_input_and_missing_drive_at_replay():
    d, iop, sd0, sd1, buf = board("badin")
    c = WriteBackCache(d + "/wb.journal", buf)
    try:
        c.write(sd0, 0, memoryview(bytearray(512)))
        raise AssertionError("write before replay accepted")
    except ValueError:
        pass
    c.replay([sd0, sd1])
    for lba, nb in ((-1, 512), (sd0.blocks, 512), (0, 100)):
        try:
            c.write(sd0, lba, memoryview(bytearray(nb)))
            raise AssertionError("write %d %d accepted" % (lba, nb))
        except ValueError:
            pass
    try:
        WriteBackCache(d + "/x", buf, max_lines=99)
        raise AssertionError("max_lines beyond the buffer accepted")
    except ValueError:
        pass
    c.write(sd1, 5, memoryview(rnd(1024)))
    del c
    c = WriteBackCache(d + "/wb.journal", buf)
    rep = c.replay({0: sd0})  # drive 1 was deleted meanwhile
    assert rep["records"] == 1 and len(rep["errors"]) == 1 and "drive 1" in rep["errors"][0], rep
