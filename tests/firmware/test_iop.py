# I/O processor and buffer on micropython: sparse disk files, slot states that persist, bad disk
# files reported at boot, counters, and a buffer pool that never grows.
import os
import asyncio
from hw.iop import IOP, DiskError
from hw.buffer import Buffer

TMP = os.getenv("RB_TMP") or "/tmp"
NAMES = ["0:0", "0:1", "1:0", "1:1"]
BLOCKS = 20000  # ~10 MB per disk, sparse


def fresh(name):
    d = TMP + "/" + name
    os.mkdir(d)
    return d


def test_disks_are_sparse_files_and_data_round_trips():
    d = fresh("sparse")
    iop = IOP(d, 4, BLOCKS, NAMES)
    assert iop.problems == []
    for nm in ("0-0", "0-1", "1-0", "1-1"):
        st = os.stat(d + "/disk-%s.img" % nm)
        assert st[6] == BLOCKS * 512
    data = bytearray(os.urandom(4096))
    iop.write(2, BLOCKS - 8, memoryview(data))
    got = bytearray(4096)
    iop.read(2, BLOCKS - 8, memoryview(got))
    assert got == data
    iop.read(1, 0, memoryview(got))
    assert got == bytearray(4096)  # a blank disk reads zeros
    assert (iop.reads, iop.writes, iop.read_bytes, iop.write_bytes) == (2, 1, 8192, 4096)
    iop.reset_counters()
    assert (iop.reads, iop.writes, iop.read_bytes, iop.write_bytes) == (0, 0, 0, 0)
    # the data is in the file where the LBA says (what the RAID tests rely on)
    f = open(d + "/disk-1-0.img", "rb")
    f.seek((BLOCKS - 8) * 512)
    assert f.read(4096) == data
    f.close()
    # sparse: ~10 MB files take almost no room (st_blocks is not in micropython's stat: use du)
    assert os.system("test $(du -k %s/disk-0-0.img | cut -f1) -lt 100" % d) == 0


def test_states_fail_remove_replace_and_persist():
    d = fresh("states")
    iop = IOP(d, 4, BLOCKS, NAMES)
    buf = memoryview(bytearray(512))
    iop.write(0, 5, memoryview(bytearray(b"x" * 512)))
    iop.fail(1)
    iop.remove(2)
    for slot, reason in ((1, "failed"), (2, "removed")):
        for fn in (iop.read, iop.write):
            try:
                fn(slot, 0, buf)
                raise AssertionError("I/O on a %s disk accepted" % reason)
            except DiskError as e:
                assert e.slot == slot and e.reason == reason
    iop.replace(3)
    assert iop.state(3) == "rebuild"
    iop.write(3, 0, buf)  # a replacement disk takes writes
    iop.close()
    # reboot: the states come back from the slot file
    iop = IOP(d, 4, BLOCKS, NAMES)
    assert [iop.state(s) for s in range(4)] == ["online", "failed", "removed", "rebuild"]
    got = bytearray(512)
    iop.read(0, 5, memoryview(got))
    assert got == bytearray(b"x" * 512)
    # replacing a disk gives a blank one; set_online ends the rebuild
    iop.replace(0)
    iop.read(0, 5, memoryview(got))
    assert got == bytearray(512)
    iop.set_online(0)
    iop.set_online(3)
    iop.replace(2)
    assert iop.state(2) == "rebuild"
    iop.close()
    iop = IOP(d, 4, BLOCKS, NAMES)
    assert [iop.state(s) for s in range(4)] == ["online", "failed", "rebuild", "online"]
    assert "slots.state.tmp" not in os.listdir(d)


def test_bad_disk_files_are_reported_not_fatal():
    d = fresh("baddisk")
    iop = IOP(d, 4, BLOCKS, NAMES)
    iop.close()
    # a short file, a missing file (pulled while off) and a junk state line
    f = open(d + "/disk-0-1.img", "wb")
    f.write(b"short")
    f.close()
    os.remove(d + "/disk-1-0.img")
    f = open(d + "/slots.state", "a")
    f.write("9:9 online\nthis is junk\n")
    f.close()
    iop = IOP(d, 4, BLOCKS, NAMES)
    assert iop.state(0) == "online"
    assert iop.state(1) == "failed"
    assert iop.state(2) == "removed"
    text = "\n".join([p[1] for p in iop.problems])
    assert "disk-0-1.img is 5 bytes" in text, text
    assert "disk-1-0.img missing" in text, text
    assert "no slot 9:9" in text and "junk" in text, text
    assert os.stat(d + "/disk-0-1.img")[6] == 5  # the bad file is left as it was
    # a replacement brings the slot back
    iop.replace(1)
    assert os.stat(d + "/disk-0-1.img")[6] == BLOCKS * 512


def test_a_slot_state_file_of_binary_garbage_is_set_aside_not_fatal():
    d = fresh("garbage")
    iop = IOP(d, 4, BLOCKS, NAMES)
    iop.close()
    os.remove(d + "/disk-1-0.img")
    junk = bytes([0xFF, 0xFE, 0x00, 0x80]) * 50
    f = open(d + "/slots.state", "wb")
    f.write(junk)
    f.close()
    iop = IOP(d, 4, BLOCKS, NAMES)
    assert [iop.state(s) for s in range(4)] == ["online", "online", "removed", "online"]
    text = "\n".join([p[1] for p in iop.problems])
    assert "not a slot state file" in text, text
    assert open(d + "/slots.state.bad", "rb").read() == junk
    assert "disk-1-0.img" not in os.listdir(d)      # a missing disk is not re-created as blank


def test_bad_arguments_are_clear_errors():
    d = fresh("badargs")
    for args in ((4, BLOCKS, ["0:0"]), (1, 0, ["0:0"]), (1, BLOCKS, ["zero"])):
        try:
            IOP(d, *args)
            raise AssertionError("accepted %r" % (args,))
        except ValueError:
            pass
    iop = IOP(d, 4, BLOCKS, NAMES)
    for slot, lba, n in ((4, 0, 512), (0, BLOCKS, 512), (0, -1, 512), (0, 0, 500)):
        try:
            iop.read(slot, lba, memoryview(bytearray(n)))
            raise AssertionError("read %r accepted" % ((slot, lba, n),))
        except ValueError:
            pass


def test_buffer_is_a_fixed_pool():
    b = Buffer(10 * 4096 + 100, 4096)
    assert b.slots == 10 and b.free == 10
    got = [b.take() for i in range(10)]
    assert sorted(got) == list(range(10))
    assert b.take() == -1 and b.free == 0
    v = b.view(got[3])
    assert len(v) == 4096
    v[0] = 7
    b.give(got[3])
    i = b.take()
    assert i == got[3] and b.view(i)[0] == 7
    for bad in (99, -1):
        try:
            b.give(bad)
            raise AssertionError("give(%d) accepted" % bad)
        except ValueError:
            pass
    b.give(i)
    try:
        b.give(i)
        raise AssertionError("double give accepted")
    except ValueError:
        pass
    for args in ((100, 4096), (8192, 1000), (8192, 0)):
        try:
            Buffer(*args)
            raise AssertionError("Buffer%r accepted" % (args,))
        except ValueError:
            pass


def test_buffer_wait_take_waits_for_a_give():
    b = Buffer(2 * 512, 512)
    order = []

    async def holder():
        i = b.take()
        j = b.take()
        order.append("full")
        await asyncio.sleep_ms(20)
        order.append("give")
        b.give(i)
        await asyncio.sleep_ms(5)
        b.give(j)

    async def waiter():
        await asyncio.sleep_ms(1)
        k = await b.wait_take()
        order.append("took %d" % k)
        b.give(k)

    async def main():
        await asyncio.gather(holder(), waiter())

    asyncio.run(main())
    assert order[0] == "full" and order[1] == "give" and order[2].startswith("took"), order
    assert b.free == 2
