# The FIG. 8 copy with the I/O processor's thread running (firmware/lop/ops.py Copy.step): its
# slices are moved by the thread, or read on the main loop and written by the thread, while host
# writes and restarts come in, and the copies still end equal to the initiate image; a
# destination or source lost under them fails the copy as without the thread.
import test_lop as L
from test_lop import setup  # noqa: F401 (the module's tests boot through it)
from lop import ops

L.THREAD[0] = True


def handed(ctl):
    assert ctl.iop.chains is not None and ctl.iop.chains.submitted > 0, "no slice went to the thread"


def test_copy_under_concurrent_primary_writes_with_the_thread():
    L.test_copy_under_concurrent_primary_writes_ends_equal_to_the_initiate_image()


def test_incremental_copy_with_the_thread():
    L.test_incremental_copy_moves_exactly_the_changed_chunks_and_ends_equal()


def test_restart_mid_copy_with_the_thread():
    L.test_restart_mid_copy_resumes_and_ends_with_the_image()


def test_destination_failing_with_the_thread():
    L.test_table10_not_ready_when_the_destination_fails()


def test_source_lost_with_the_thread():
    L.test_table10_irrecoverable_data_errors_when_the_source_is_lost()


def test_log_overflow_with_the_thread():
    L.test_table10_not_ready_when_the_log_overflows_during_the_copy()


def copying(ctl, seed):
    # the primary filled, its snapshot initiated and the copy to SD2 started: (blocks, image)
    L.fill(ctl, seed)
    blocks = ctl.drives[0].blocks
    image = L.digest(ctl, L.PRIMARY, blocks)
    L.fw.run(ctl, L.PRIMARY, L.INITIATE)
    assert L.word(ctl, L.start()) == 0
    return blocks, image


def with_value(module, name, value, test):
    # the test with module.name set to value, then as it was
    saved = getattr(module, name)
    setattr(module, name, value)
    try:
        test()
    finally:
        setattr(module, name, saved)


def either_side(test):
    # the test twice: every slice read on the main loop, the thread writing it (ops.BUSY 0: the
    # thread always counts as busy), then every slice read and written by the thread (it never
    # does): which side takes a slice depends on the thread's pace, so both must hold
    for busy in (0, 1 << 30):
        with_value(ops, "BUSY", busy, test)


def test_either_side_reads_the_slices_and_the_copy_ends_the_same():
    def run():
        ctl = L.setup()
        blocks, image = copying(ctl, 3)
        op = ctl.lop_mgr.ops[0]
        ctl.iop.reset_counters()
        L.scheduler.finish_all(ctl.lop_mgr)
        handed(ctl)
        ch = ctl.iop.chains
        if ops.BUSY == 0:
            assert op.read_beside > 0 and ch.reads == 0, (op.read_beside, ch.reads)
        else:
            assert op.read_beside == 0 and ch.reads > 0
        assert ch.writes > 0 and ch.faults == 0
        assert L.word(ctl, L.status()) == 0x0100
        assert L.digest(ctl, L.DEST, blocks) == image
        ctl.iop.close()
    either_side(run)


def test_writes_and_a_restart_under_a_copy_read_on_either_side():
    either_side(L.test_copy_under_concurrent_primary_writes_ends_equal_to_the_initiate_image)
    either_side(L.test_restart_mid_copy_resumes_and_ends_with_the_image)


def test_a_source_or_destination_lost_under_a_copy_read_on_either_side():
    either_side(L.test_table10_not_ready_when_the_destination_fails)
    either_side(L.test_table10_irrecoverable_data_errors_when_the_source_is_lost)


def test_the_copy_leaves_copy_on_write_its_buffer_slots():
    # a slice goes to the thread only while two buffer slots stay free beside it (copy-on-write
    # of host writes to the primary takes them; with no more free, the slice is moved on the
    # main loop and its slot given back at once), and never more than FLYING slices (how many
    # are in flight at a time depends on how fast the thread is: only bounds are told)
    for kb, most in ((2 * 272, 0), (3 * 272, 1), (4 * 272, 1), (4096, ops.FLYING)):
        ctl = L.fw.boot(b=L.fw.small_board(disk_mb=4, slots=10, buffer_kb=kb))
        ctl.io_thread()
        ctl.command("sd_create", {"raid": 0, "slots": [6, 7, 8]})
        ctl.command("lun_map", {"port": 0, "lun": L.DEST, "sd": 2})
        L.fill(ctl, 3)
        L.fw.run(ctl, L.PRIMARY, L.INITIATE)
        assert L.word(ctl, L.start()) == 0
        op = ctl.lop_mgr.ops[0]
        seen = 0
        while ctl.lop_mgr.step():
            assert ctl.buffer.free >= ops.COW_SLOTS, (kb, [s.n for s in op.flying], ctl.buffer.free)
            seen = max(seen, len(op.flying))
        assert seen <= most and (seen > 0) == (most > 0), (kb, seen)
        assert L.word(ctl, L.status()) == 0x0100
        ctl.iop.close()


def test_a_slice_never_outgrows_the_slots_it_holds():
    # with few buffer slots, a slice past the first gets fewer slots than the run wants (two
    # must stay free for copy-on-write): it is cut to what it holds, so no slice's memory runs
    # into a slot that another slice, or a copy-on-write, is using; and the copy ends right.
    # (The first slices are left unsettled for a few steps, as behind a slow thread, so the
    # next ones must fit beside them whatever the thread's pace.)
    def run():
        for kb in (5 * 272, 7 * 272):               # (a slot is 272 KiB)
            ctl = L.fw.boot(b=L.fw.small_board(disk_mb=4, slots=10, buffer_kb=kb))
            ctl.io_thread()
            ctl.command("sd_create", {"raid": 0, "slots": [6, 7, 8]})
            ctl.command("lun_map", {"port": 0, "lun": L.DEST, "sd": 2})
            blocks, image = copying(ctl, 5)
            op = ctl.lop_mgr.ops[0]
            slot = ctl.buffer.slot_bytes
            settle, held = ctl.settle_own, [4]

            def late():
                if held[0]:
                    held[0] -= 1
                else:
                    settle()
            ctl.settle_own = late
            cut = 0
            while ctl.lop_mgr.step():
                taken = []
                for s in op.flying:
                    assert len(s.mv) <= s.n * slot, (kb, s.n, len(s.mv))
                    taken += range(s.b, s.b + s.n)
                    cut += s.n < ops.SPAN
                assert len(set(taken)) == len(taken), (kb, taken)      # no slot in two slices
                assert all(ctl.buffer._used[i] for i in taken)
            assert cut, "no slice was cut to fewer slots (kb %d)" % kb
            assert L.word(ctl, L.status()) == 0x0100
            assert L.digest(ctl, L.DEST, blocks) == image
            ctl.iop.close()
    either_side(run)


def big_chunks(test):
    # the test with the tracker's chunks 1 MiB long (a primary over 16 GiB has them): longer
    # than a slice, so each is moved in pieces, and a restart resumes at its start
    from lop import track
    with_value(track, "chunk_for", lambda blocks: 2048, test)


def test_chunks_longer_than_a_slice_are_moved_whole_in_pieces():
    def run():
        ctl = L.setup()
        blocks, image = copying(ctl, 7)
        op = ctl.lop_mgr.ops[0]
        assert op.cb == 2048
        pieces = 0
        while ctl.lop_mgr.step():
            pieces += sum(1 for s in op.flying if s.k == 0)
        assert pieces, "no chunk was moved in pieces"
        assert op.blocks_copied == blocks
        assert L.word(ctl, L.status()) == 0x0100
        assert L.digest(ctl, L.DEST, blocks) == image
        ctl.iop.close()
    big_chunks(lambda: either_side(run))
    big_chunks(lambda: either_side(L.test_restart_mid_copy_resumes_and_ends_with_the_image))
    L.THREAD[0] = False                  # on the main loop alone, a slot at a time
    try:
        big_chunks(L.test_restart_mid_copy_resumes_and_ends_with_the_image)
        big_chunks(L.test_copy_under_concurrent_primary_writes_ends_equal_to_the_initiate_image)
    finally:
        L.THREAD[0] = True


def test_a_degraded_destination_is_written_on_the_main_loop():
    # a RAID 5 destination with a member failed: the thread's chains take only ONLINE drives, so
    # the copy moves every slice here (none is read here and then refused by the thread)
    ctl = L.setup(dst_raid=5, dst_slots=(6, 7, 8, 9))
    ctl.iop.fail(9)
    ctl.refresh_status()
    blocks, image = copying(ctl, 4)
    op = ctl.lop_mgr.ops[0]
    given = ctl.iop.chains.submitted
    L.scheduler.finish_all(ctl.lop_mgr)
    assert ctl.iop.chains.submitted == given and op.read_beside == 0
    assert L.word(ctl, L.status()) == 0x0100
    assert L.digest(ctl, L.DEST, blocks) == image
    ctl.iop.close()


def test_a_degraded_primary_is_read_here_and_written_by_the_thread():
    # the thread reads only ONLINE drives: with a member of the primary failed, every slice is
    # read here (reconstructed) and only D's writes go to the thread
    ctl = L.setup()
    blocks, image = copying(ctl, 6)
    ctl.iop.fail(3)
    ctl.refresh_status()
    op = ctl.lop_mgr.ops[0]
    ctl.iop.reset_counters()
    L.scheduler.finish_all(ctl.lop_mgr)
    ch = ctl.iop.chains
    assert op.read_beside > 0 and ch.reads == 0 and ch.writes > 0, (op.read_beside, ch.reads, ch.writes)
    assert L.word(ctl, L.status()) == 0x0100
    assert L.digest(ctl, L.DEST, blocks) == image
    ctl.iop.close()
