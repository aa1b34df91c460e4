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
