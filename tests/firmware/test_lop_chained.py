# The FIG. 8 copy with the I/O processor's thread running (firmware/lop/ops.py Copy._hand_over):
# its slices are moved by the thread while host writes and restarts come in, and the copies still
# end equal to the initiate image; a destination or source lost under them fails the copy as
# without the thread.
import test_lop as L
from test_lop import setup  # noqa: F401 (the module's tests boot through it)

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


def test_the_slices_do_go_to_the_thread():
    ctl = L.setup()
    L.fill(ctl, 3)
    blocks = ctl.drives[0].blocks
    image = L.digest(ctl, L.PRIMARY, blocks)
    L.fw.run(ctl, L.PRIMARY, L.INITIATE)
    assert L.word(ctl, L.start()) == 0
    L.scheduler.finish_all(ctl.lop_mgr)
    handed(ctl)
    assert ctl.iop.chains.faults == 0
    assert L.word(ctl, L.status()) == 0x0100
    assert L.digest(ctl, L.DEST, blocks) == image


def test_the_copy_leaves_copy_on_write_its_buffer_slots():
    # a slice past the first goes to the thread only while two buffer slots stay free beside it
    # (copy-on-write of host writes to the primary takes them), and never more than FLYING
    # (how many are in flight at a time depends on how fast the thread is: only bounds are told)
    from lop import ops
    for kb, most in ((4 * 272, 2), (4096, ops.FLYING)):
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
            assert len(op.flying) <= 1 or ctl.buffer.free >= ops.COW_SLOTS, (kb, len(op.flying), ctl.buffer.free)
            seen = max(seen, len(op.flying))
        assert 1 <= seen <= most, (kb, seen)
        assert L.word(ctl, L.status()) == 0x0100
        ctl.iop.close()
