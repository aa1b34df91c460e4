# The origin (FIG. 6): while a snapshot is active the engine stacks this on the primary system
# drive, as dm-snapshot's origin target stacks on its device, and host writes to the primary go
# through it; without a snapshot they go to the drive itself. The first write to each chunk
# copies the chunk's old data to the log before the primary is overwritten.
#
# Ordering (the emulator's battery-backed-buffer promise, see snapshot/README.md): the old data of a
# run of chunks goes to the log, then their index records, then the primary is overwritten. A kill
# before the records land leaves the chunks unrecorded while the primary still holds them.
from hw.xor import zero
from snapshot.index import find_run, RUN_SHIFT, RUN_SLOT


class SnapshotError(Exception):
    # the snapshot layer refuses: BUFFER_FULL (no buffer span for a copy), SNAPSHOT_ACTIVE
    pass


class Origin:
    """Copy-on-write of the engine's primary: the engine's log, index and slots, its buffer."""

    def __init__(self, engine):
        self.engine = engine
        self.kept = 0              # buffer slots of the span _copy_run kept for the write

    def write(self, lba, mv):
        # every chunk the write touches that has no exception yet goes to the log first (old data,
        # then index records), a run of neighbouring chunks in one read and one log write; only
        # then is the primary overwritten, in one write
        e = self.engine
        drive = e.primary
        cb = e.chunk_blocks
        first = lba // cb
        last = (lba + (len(mv) >> 9) - 1) // cb
        index = e.index
        keep = -1
        c = first
        while c <= last and e.primary is drive:      # an overflow ends the snapshot mid-write
            r = find_run(index.cells, index.p, c, last)
            end = r >> RUN_SHIFT
            if r & RUN_SLOT:
                c = end                      # already copied: the log keeps what it has
                continue
            end = min(end, c + e.run_max)
            slot = e.next_slot
            # a run that is the whole write keeps its old data for the write below
            keep = self._copy_run(drive, c, end - c, c == first and end == last + 1)
            # a run cut short by a full log: the next chunk finds the log full and overflows
            c += max(1, e.next_slot - slot)
        if keep < 0:
            drive.write(lba, mv)
            return
        # a write whose chunks were just copied in one run: its old data is in the buffer, and
        # RAID 3/5 reuse it for the read-modify-write instead of reading it again
        buffer = e.buffer
        try:
            off = (lba - first * cb) << 9
            drive.write(lba, mv, buffer.span(keep, self.kept)[off:off + len(mv)])
        finally:
            buffer.give_span(keep, self.kept)

    def _copy_run(self, drive, c, k, keep):
        # copy chunks c..c+k-1 to the next k log slots (contiguous on the log): one read of their
        # old data, one log write, then their index records, through a span of adjacent buffer
        # slots (a shorter run when the buffer has no span long enough). -> the first buffer slot
        # holding the data if `keep` and all k chunks were copied (self.kept slots), else -1
        e = self.engine
        want = k
        slot = e.next_slot
        if slot + k > e.max_slots:
            k = e.max_slots - slot
            if k <= 0:
                e.overflow("LOG OVERFLOW")
                return -1
        cb = e.chunk_blocks
        buffer = e.buffer
        sb = buffer.slot_bytes
        b, n = buffer.take_span((k * cb * 512 + sb - 1) // sb)
        if b < 0:
            raise SnapshotError("BUFFER_FULL")
        k = min(k, n * sb // (cb << 9))
        try:
            if e.announce is not None:
                e.announce(c, slot, k)       # in the partner's mirror memory before the copy
            buf = buffer.span(b, n, k * cb << 9)
            start = c * cb
            nb = drive.blocks - start
            if nb >= k * cb:
                drive.read(start, buf)
            else:
                drive.read(start, buf[:nb << 9])      # the drive's last chunk is short
                zero(buf[nb << 9:], (k * cb - nb) << 9)
            try:
                e.log.write(e.data + slot * cb, buf)
                e.write_records(c, slot, k)
            except Exception as x:
                # the snapshot can no longer be kept; the primary carries on, the backup LUN
                # reports the vendor-unique error once, as for an overflow
                e.overflow("LOG DRIVE FAILED: %s" % x, "log failed")
                buffer.give_span(b, n)
                return -1
            e.add_exceptions(c, slot, k)
        except:
            buffer.give_span(b, n)
            raise
        if keep and k == want:
            self.kept = n
            return b
        buffer.give_span(b, n)
        return -1
