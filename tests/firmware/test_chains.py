# The I/O processor's thread (hw/chains.py), on micropython: host writes handed to it as chains
# land exactly as the same writes made by the main loop, in order with everything else that
# touches the disks; a disk failing under a chain is failed and the write done again degraded;
# and the thread's code allocates nothing (it runs with the heap locked, so an allocation would
# fail its chain).
import os
import random
from hw.iop import IOP, DiskError
from storage import raid
from storage.raid import SystemDrive
import fw
from test_raid import fresh, rnd, files_check, read_all, members_for, S


def drive(name, level, n):
    d, iop = fresh(name)
    iop.start_thread()
    sd = SystemDrive(1, level, members_for(n), S, iop)
    return d, iop, sd


def refuse(iop, slot, mode):
    # the disk's file opened so it refuses writes ("rb") or reads ("ab"), as a disk that stopped:
    # through the main loop's handle and the thread's alike
    for files in (iop.files, iop.tfiles):
        if files[slot] is not None:
            files[slot].close()
        files[slot] = open(iop.paths[slot], mode)


def refusing(name, victim_i):
    # a RAID 5 drive whose member victim_i refuses writes -> (iop, drive, its slot, a reference)
    d, iop, sd = drive(name, raid.RAID5, 4)
    victim = members_for(4)[victim_i][0]
    refuse(iop, victim, "rb")
    return iop, sd, victim, bytearray(sd.blocks * 512)


def settle_all(iop):
    out = []
    while iop.chains.settled != iop.chains.submitted:
        iop.drain()
        ch = iop.chains
        t = ch.settle()
        if t:
            out.append((ch.last, ch.last_failed, t))
    return out


def chained_run(name, level, n, writes=300):
    # seeded writes of every shape (inside a unit, across units, whole rows, several rows) handed
    # to the thread, reads in between; the files end as the layout says
    d, iop, sd = drive(name, level, n)
    ref = bytearray(sd.blocks * 512)
    random.seed(7)
    chained = 0
    for i in range(writes):
        cnt = random.choice((1, S - 3, S, S + 5, sd.row_blocks, 2 * sd.row_blocks + 3))
        cnt = min(cnt, sd.blocks)
        lba = random.randint(0, sd.blocks - cnt)
        data = rnd(cnt * 512)            # each write's own buffer: it stays put until settled
        t = sd.write_chained(lba, memoryview(data), (lba, cnt))
        if t:
            chained += 1
        else:
            sd.write(lba, memoryview(data))
        ref[lba * 512:(lba + cnt) * 512] = data
        if i % 7 == 0:                   # a read waits for the writes before it
            got = bytearray(cnt * 512)
            sd.read(lba, memoryview(got))
            assert got == data, "write %d: read back differs" % i
        if i % 50 == 49:
            for note, failed, _ in settle_all(iop):
                assert not failed, "chain of %r failed" % (note,)
    for note, failed, _ in settle_all(iop):
        assert not failed, "chain of %r failed" % (note,)
    assert chained > writes // 2, "only %d of %d writes were chained" % (chained, writes)
    assert iop.chains.faults == 0
    read_all(sd, ref)
    files_check(d, iop, sd, ref)
    iop.close()


def test_chained_raid5_writes_land_as_the_layout_says():
    chained_run("ch5", raid.RAID5, 4)


def test_chained_raid0_raid1_raid3_jbod_writes():
    chained_run("ch0", raid.RAID0, 3, 120)
    chained_run("ch1", raid.RAID1, 2, 120)
    chained_run("ch3", raid.RAID3, 3, 120)
    chained_run("chj", raid.NORAID, 1, 120)


def test_only_an_online_drive_hands_writes_over():
    d, iop, sd = drive("chcrit", raid.RAID5, 4)
    iop.fail(members_for(4)[2][0])
    assert sd.status() == "CRITICAL"
    assert sd.write_chained(0, memoryview(rnd(4096)), None) == 0
    iop.close()


def test_anything_else_on_the_disks_waits_for_the_chains():
    d, iop, sd = drive("chorder", raid.RAID5, 4)
    data = [rnd(S * 512) for _ in range(20)]
    for i in range(20):
        assert sd.write_chained(i * S, memoryview(data[i]), i)
    iop.fail(5)                          # a slot state change: after every chain has run
    assert iop.chains.done == iop.chains.submitted
    for i in range(20):
        assert sd.write_chained(i * S, memoryview(data[i]), i)
    before = iop.intent_writes
    iop.intent_clear()                   # the intent record too
    assert iop.chains.done == iop.chains.submitted and iop.intent_writes == before
    assert [n for n, failed, _ in settle_all(iop)] == list(range(20)) * 2
    iop.close()


def beside_a_mirror(name):
    # refusing(name, 0) and a mirror on slots 4-5 whose block 0 holds `old`:
    # -> (iop, the RAID 5 drive, its refusing slot, the mirror, old)
    iop, sd, victim, _ = refusing(name, 0)
    other = SystemDrive(2, raid.RAID1, [(4, 0, 256), (5, 0, 256)], S, iop)
    old = rnd(S * 512)
    other.write(0, memoryview(old))
    return iop, sd, victim, other, old


def test_a_read_waits_only_for_the_chains_on_its_own_disks():
    # a RAID 5 drive on slots 0-3 whose disk 0 refuses writes: its chain fails, and the thread
    # holds every later chain until the main loop has failed that disk. A mirror on slots 4-5
    # meanwhile reads at once (nothing waits, nothing is applied); a read of the RAID 5 drive
    # waits for its chains, so the failure is applied before it reads
    iop, sd, victim, other, old = beside_a_mirror("chslots")
    assert sd.write_chained(0, memoryview(rnd(sd.row_blocks * 512)), "fails")
    assert sd.write_chained(0, memoryview(rnd(sd.row_blocks * 512)), "held")
    got = bytearray(S * 512)
    other.read(0, memoryview(got))
    assert got == old
    ch = iop.chains
    assert ch.applied == 0 and ch.done < ch.submitted == 2, (ch.applied, ch.done, ch.submitted)
    assert iop.state(victim) == "online"
    sd.read(0, memoryview(bytearray(512)))
    assert ch.done == ch.submitted and ch.applied == 2 and iop.state(victim) == "failed"
    assert [f for _, f, _ in settle_all(iop)] == [1, 2]
    iop.close()


def test_a_read_does_not_wait_for_a_chain_that_only_reads_its_disk():
    # the thread is held (disk 0 of the RAID 5 drive refuses writes) in front of a chain that
    # reads slot 4 into a buffer and writes slot 5, as a copy's slice does: the main loop reads
    # slot 4 at once through its own file handle (nothing waits, nothing is applied), while a
    # read of slot 5, which the chain writes, waits for it
    iop, sd, victim, other, old = beside_a_mirror("chreadonly")
    assert sd.write_chained(0, memoryview(rnd(sd.row_blocks * 512)), "fails")
    ch = iop.chains
    moved = bytearray(S * 512)
    assert ch.begin()
    ch.read(4, 0, memoryview(moved))
    ch.write(5, 2 * S, memoryview(moved))
    ch.submit("copies")
    got = bytearray(S * 512)
    iop.read(4, 0, memoryview(got))
    assert got == old
    assert ch.applied == 0 and ch.done < ch.submitted == 2, (ch.applied, ch.done, ch.submitted)
    iop.read(5, 2 * S, memoryview(got))
    assert ch.done == ch.submitted and ch.applied == 2
    assert [f for _, f, _ in settle_all(iop)] == [1, 2]
    iop.close()


def test_the_threads_disk_handles_follow_the_slot():
    # the thread has its own handle on each disk; a pulled disk closes it, a new disk in the
    # slot gets a new one, and the chains write the new disk
    d, iop, sd = drive("chhandles", raid.RAID0, 3)
    assert sd.write_chained(0, memoryview(rnd(3 * S * 512)), None)
    settle_all(iop)
    slot = members_for(3)[1][0]
    first = iop.tfiles[slot]
    assert first is not None and first is not iop.files[slot]
    iop.remove(slot)
    assert iop.tfiles[slot] is None and iop.files[slot] is None
    iop.replace(slot)
    data = rnd(S * 512)
    ch = iop.chains
    assert ch.begin()
    ch.write(slot, 0, memoryview(data))
    ch.submit(None)
    settle_all(iop)
    assert iop.tfiles[slot] is not None and iop.tfiles[slot] is not first
    with open(iop.paths[slot], "rb") as f:
        assert f.read(S * 512) == data
    iop.close()
    assert iop.tfiles == [None] * 6


def test_a_chain_planned_and_cancelled_does_not_hide_the_one_running_on_the_same_disk():
    # disk 0 refuses writes: the thread holds after that chain until the main loop applies the
    # failure. A second chain planned there and cancelled must not let a read of disk 0 through
    # first: the read waits, the failure is applied, and it is refused as a failed disk's read
    iop, sd, victim, _ = refusing("chcancel", 0)
    assert sd.write_chained(0, memoryview(rnd(sd.row_blocks * 512)), "fails")
    ch = iop.chains
    assert ch.begin()
    ch.write(victim, 0, memoryview(bytearray(512)))
    ch.cancel()
    try:
        iop.read(victim, 0, memoryview(bytearray(512)))
        assert False, "read a disk whose failure was still being applied"
    except DiskError:
        pass
    assert ch.applied == ch.done == ch.submitted == 1 and iop.state(victim) == "failed"
    settle_all(iop)
    iop.close()


def test_a_read_failing_beside_chains_fails_its_disk_only_after_them():
    # a slot state change happens between writes: a mirror's read that fails on slot 4 while the
    # RAID 5 drive's chains (held by a failure of their own) are not all run waits for them
    iop, sd, victim, other, old = beside_a_mirror("chreadfail")
    for i in range(3):
        assert sd.write_chained(0, memoryview(rnd(sd.row_blocks * 512)), i)
    ch = iop.chains
    changes = []
    iop.on_change = lambda: changes.append((iop.state(4), ch.done, ch.submitted))
    refuse(iop, 4, "ab")                 # slot 4 cannot be read
    got = bytearray(S * 512)
    other.read(0, memoryview(got))       # from slot 5, the mirror
    assert got == old
    assert [c for c in changes if c[0] == "failed"] == [("failed", 3, 3)], changes
    assert [f for _, f, _ in settle_all(iop)] == [1, 2, 2]
    iop.close()


def test_the_thread_counts_its_transfers_with_the_main_loops():
    d, iop, sd = drive("chcount", raid.RAID0, 3)
    iop.reset_counters()
    sd.write(0, memoryview(rnd(S * 512)))                 # here: one transfer
    assert sd.write_chained(0, memoryview(rnd(3 * S * 512)), None)   # there: one per member
    settle_all(iop)
    sd.read(0, memoryview(bytearray(S * 512)))
    assert (iop.reads, iop.writes, iop.read_bytes, iop.write_bytes) == (1, 4, S * 512, 4 * S * 512)
    iop.reset_counters()
    assert (iop.reads, iop.writes, iop.read_bytes, iop.write_bytes) == (0, 0, 0, 0)
    iop.close()


def test_the_chain_writes_its_intent_record_first():
    d, iop, sd = drive("chintent", raid.RAID5, 4)
    seq0 = iop._iseq
    sd.write_chained(3 * S + 1, memoryview(rnd(5 * 512)), None)
    settle_all(iop)
    # what a boot after a kill here would find: the record of this write, one sequence on
    iop.close()
    iop = IOP(d, 6, 1024, ["0:%d" % i for i in range(6)])
    kind, drive_no, geo, a, b = iop.intent_pending[:5]
    assert (kind, drive_no, geo, a, b) == (raid.INTENT_RANGE, 1, sd.geo, 3 * S + 1, 5)
    assert iop._iseq == seq0 + 1
    iop.close()


def test_a_disk_failing_under_a_chain_is_failed_and_the_write_done_again():
    iop, sd, victim, ref = refusing("chfail", 1)
    data = rnd(sd.row_blocks * 2 * 512)
    mv = memoryview(data)
    assert sd.write_chained(0, mv, "w")
    (note, failed, _), = settle_all(iop)
    assert note == "w" and failed == 1
    assert iop.state(victim) == "failed" and sd.status() == "CRITICAL"
    sd.write(0, mv)                      # what Controller.settle does: again, degraded
    ref[0:len(data)] = data
    read_all(sd, ref)
    iop.close()


def test_chains_given_before_a_failure_is_applied_are_not_run_but_written_again():
    # the thread holds after a failed chain until the main loop has failed the disk; the chains
    # planned before that (with the disk online) are not run (failed 2) but written again here,
    # in order, so the last write of each block wins and the parity stays right
    iop, sd, victim, ref = refusing("chfence", 0)
    writes = []
    for i in range(6):
        data = rnd(sd.row_blocks * 512)
        lba = (i % 3) * sd.row_blocks
        assert sd.write_chained(lba, memoryview(data), (lba, data))
        writes.append((lba, data))
    outcome = settle_all(iop)
    assert [f for _, f, _ in outcome] == [1, 2, 2, 2, 2, 2]
    assert iop.state(victim) == "failed" and iop.chains.faults == 0
    for (lba, data), failed, _ in outcome:
        sd.write(lba, memoryview(data))  # what Controller.settle does for each, in order
        ref[lba * 512:lba * 512 + len(data)] = data
    read_all(sd, ref)
    iop.close()


def test_a_read_failing_under_a_chain_stops_it_before_its_row_is_written():
    d, iop, sd = drive("chrfail", raid.RAID5, 4)
    old = rnd(S * 512)
    sd.write(0, memoryview(old))
    pm = sd._pm(0)
    slot = members_for(4)[pm][0]
    refuse(iop, slot, "ab")           # the parity disk cannot be read: the row stays as it was
    assert sd.write_chained(0, memoryview(rnd(512)), None)
    (note, failed, _), = settle_all(iop)
    assert failed == 1 and iop.state(slot) == "failed"
    got = bytearray(S * 512)
    sd.read(0, memoryview(got))
    assert got == old
    iop.close()


def test_controller_answers_a_chained_write_as_its_second_try_turned_out():
    # Controller.execute_here(defer=True), then settle(): GOOD once the chain ran; a write whose
    # chain a disk failed under is written again here, and its answer is that try's
    ctl = fw.boot()
    ctl.io_thread()
    nexus = ("iqn.test:i", 0, 0)
    sd = ctl.drives[0]
    data = fw.pattern(5, 64 * 1024)
    st, sn, _ = ctl.execute_here(nexus, fw.write10(0, 128), memoryview(data), None, True)
    assert st == 0 and ctl.chained()
    ctl.iop.drain()
    assert ctl.settle() == 1 and (ctl.w_status, ctl.w_sense) == (0, None) and ctl.settle() == 0
    assert fw.run(ctl, 0, fw.read10(0, 128)) == (0, None, bytes(data))
    # one disk stops taking writes under the next chain: done again degraded, GOOD
    slots = sd.slots
    for s in slots[:1]:
        refuse(ctl.iop, s, "rb")
    data2 = fw.pattern(6, 64 * 1024)
    st, sn, _ = ctl.execute_here(nexus, fw.write10(0, 128), memoryview(data2), None, True)
    assert st == 0 and ctl.chained()
    ctl.iop.drain()
    assert ctl.settle() == 2 and (ctl.w_status, ctl.w_sense) == (0, None)
    assert sd.status() == "CRITICAL"
    assert fw.run(ctl, 0, fw.read10(0, 128)) == (0, None, bytes(data2))
    ctl.iop.close()


def test_controller_answers_not_ready_when_disks_fail_under_a_chain_past_redundancy():
    ctl = fw.boot()
    ctl.io_thread()
    nexus = ("iqn.test:i", 0, 0)
    sd = ctl.drives[0]
    for s in (sd.slots[sd._dm(0, 0)], sd.slots[sd._pm(0)]):   # the data and parity of row 0
        refuse(ctl.iop, s, "rb")
    data = fw.pattern(7, 64 * 1024)
    st, sn, _ = ctl.execute_here(nexus, fw.write10(0, 128), memoryview(data), None, True)
    assert st == 0 and ctl.chained()
    ctl.iop.drain()
    assert ctl.settle() == 1
    st, sn = ctl.w_status, ctl.w_sense
    assert st == 2 and fw.sense3(sn)[0] == 0x02, (st, sn)   # NOT READY: the drive is OFFLINE
    assert sd.status() == "OFFLINE"
    ctl.iop.close()
