# The per-command path allocates (almost) nothing, so a host's steady stream of reads and writes
# never makes the board stop for a garbage collection (issue "no pauses"; endpoints/ioready.py).
# The SCSI core and the RAID drive are proven with the heap locked: any allocation would raise.
# The iSCSI target is measured end to end: a host in a second thread (its loop allocates nothing
# either) reads and writes through a real socket while gc.mem_alloc() counts what the board took.
import gc
import socket
import struct
import _thread
import asyncio
import micropython
import fw
from endpoints.iscsi import target as iscsi
from endpoints.iscsi.flow import PARK_SLOTS

NEX = ("iqn.test:noalloc", 0, 0)
VIEW = 32               # bytes of a memoryview, or of the poller's record of a registration
# what the target's upkeep every 250 ms (REAP_MS, whatever the load) may allocate each time it
# looks: a list of each connection's tasks, and what it sends (128 bytes here with one connection)
UPKEEP = 512
# and what a loaded machine's timing may add now and then (a PDU that came in two pieces is read
# by a coroutine): 64 blocks over the run, where one record in nine commands would be 220
SLACK = 2048
_TGT = []               # the target a host thread talks to (it counts the upkeep's looks)


def _cdb(op, lba, blocks):
    return bytes((op, 0)) + lba.to_bytes(4, "big") + b"\0" + blocks.to_bytes(2, "big") + b"\0"


def _locked(ex, plan):
    # the plan's writes and reads run again with the heap locked: those that failed or read wrong
    bad = []
    micropython.heap_lock()
    try:
        for w, data, r, buf in plan:
            st_w = ex(NEX, w, data, buf)[0]
            out = ex(NEX, r, None, buf)
            if st_w or out[0] or out[2] != data:
                bad.append(w)
    finally:
        micropython.heap_unlock()
    return bad


def test_reads_and_writes_through_the_core_and_a_raid_5_drive_allocate_nothing():
    # reads into two 64 KiB send buffers by turns, as an iSCSI connection's
    ctl = fw.boot()
    lu = ctl.logical_unit(NEX)
    assert ctl.drives[lu.sd].level == 5          # read-modify-write, parity, intent records
    bufs = [memoryview(bytearray(128 * 512)) for _ in range(2)]
    ex = ctl.execute
    plan = []
    for blocks in (8, 128):
        data = memoryview(bytearray(bytes((blocks + i) & 0xFF for i in range(256)) * (blocks * 2)))
        for i in range(20):
            lba = (i * 37 * blocks) % (lu.capacity() - blocks)
            plan.append((_cdb(0x2A, lba, blocks), data, _cdb(0x28, lba, blocks), bufs[i % 2]))
    for w, data, r, buf in plan:      # the first time: views of each size and range are made, once
        ex(NEX, w, data, buf)
        ex(NEX, r, None, buf)

    bad = _locked(ex, plan)
    assert not bad, "commands failed or read back wrong data with the heap locked: %r" % bad


def test_a_host_reading_many_sizes_into_its_buffer_costs_the_others_nothing():
    # (the core keeps a few lengths per buffer, and drops only that buffer's past them)
    ctl = fw.boot()
    ex = ctl.execute
    mine, theirs = memoryview(bytearray(128 * 512)), memoryview(bytearray(128 * 512))
    data = memoryview(bytearray(b"\x5a" * 4096))
    plan = [(_cdb(0x2A, 64, 8), data, _cdb(0x28, 64, 8), mine)]
    ex(NEX, plan[0][0], data, mine)
    ex(NEX, plan[0][2], None, mine)
    for blocks in range(1, 41):                  # another host: forty sizes into its own buffer
        assert ex(NEX, _cdb(0x28, 0, blocks), None, theirs)[0] == 0
    assert not _locked(ex, plan)


# ---- a host on a socket: login, then READ(10) / WRITE(10) of 8 blocks with immediate data ------
def _login(itt, name, target_name):
    pairs = [("InitiatorName", name), ("TargetName", target_name), ("SessionType", "Normal"),
             ("HeaderDigest", "None"), ("DataDigest", "None"), ("ImmediateData", "Yes"),
             ("MaxRecvDataSegmentLength", "65536")]
    data = b"".join(("%s=%s" % kv).encode() + b"\x00" for kv in pairs)
    b = bytearray(48)
    b[0], b[1] = 0x43, 0x87
    b[5:8] = bytes([len(data) >> 16, (len(data) >> 8) & 0xFF, len(data) & 0xFF])
    b[8:14] = b"\x80\x00\x00\x00\x00\x01"
    struct.pack_into(">I", b, 16, itt)
    return bytes(b) + data + b"\x00" * (-len(data) & 3)


class _Host:
    """Blocking socket, buffers and views made before the count starts."""

    def __init__(self, port, target_name):
        self.s = socket.socket()
        self.s.connect(socket.getaddrinfo("127.0.0.1", port)[0][-1])
        self.s.write(_login(1, "iqn.2026-01.mp:noalloc", target_name))
        self.hdr = bytearray(48)
        self.hv = memoryview(self.hdr)
        self.data = bytearray(65536)
        self.dv = memoryview(self.data)
        self.whole(self.hv, 48)
        n = (self.hdr[5] << 16) | (self.hdr[6] << 8) | self.hdr[7]
        self.whole(self.dv, n + (-n & 3))
        assert self.hdr[0] == 0x23 and self.hdr[36] == 0, "login refused"
        self.cmd = bytearray(48 + 4096)
        self.cv = memoryview(self.cmd)
        self.c48 = self.cv[:48]
        self.d4k = self.dv[:4096]
        self.sn = 0
        self.big = bytearray(48 + 65536)       # a 64 KiB WRITE(10), its data immediate
        self.bigv = memoryview(self.big)
        self.big[0:2] = b"\x01\xa1"            # F, W, simple
        self.big[5:8] = b"\x01\x00\x00"         # data segment: 65536 bytes
        self.big[32] = 0x2A
        self.big[40] = 128                     # blocks (low byte of the transfer length)
        for i in range(48, len(self.big)):
            self.big[i] = (i * 7) & 0xFF

    def whole(self, mv, n):
        got = 0
        while got < n:
            got += self.s.readinto(mv[got:] if got else mv, n - got)

    def command(self, write, lba):
        # -> opcode << 8 | status of the answer (one name a statement, no tuple: this loop too
        # allocates nothing, so what is counted is the board's)
        c = self.cmd
        c[0] = 0x01
        c[1] = 0xA1 if write else 0xC1                         # F, W or R, simple
        c[6] = 16 if write else 0                              # immediate data: 4096 bytes
        struct.pack_into(">IIII", c, 16, self.sn + 2, 4096, self.sn, 0)   # ITT, EDTL, CmdSN
        c[32] = 0x2A if write else 0x28
        struct.pack_into(">IBHB", c, 34, lba, 0, 8, 0)
        self.sn += 1
        self.s.write(self.cv if write else self.c48)
        self.whole(self.hv, 48)
        h = self.hdr
        n = (h[5] << 16) | (h[6] << 8) | h[7]
        if n:
            self.whole(self.d4k, n)
        return (h[0] & 0x3F) << 8 | h[3]

    def write_pdu(self, lba, data=True):
        # a 64 KiB WRITE(10) with its data (data False: only its header, the data never to come)
        itt = self.sn + 2
        struct.pack_into(">III", self.big, 16, itt, 65536, self.sn)
        struct.pack_into(">I", self.big, 34, lba)
        self.sn += 1
        return bytes(self.bigv if data else self.bigv[:48])

    def answer(self):
        # the next PDU's header: (opcode, status, ITT)
        self.whole(self.hv, 48)
        return self.hdr[0] & 0x3F, self.hdr[3], struct.unpack_from(">I", self.hdr, 16)[0]

    def write_stream(self, n, depth):
        # n sequential 64 KiB WRITE(10)s, all their data immediate, `depth` of them in flight, as
        # a host streaming a file sends them: how many were answered GOOD
        c = self.big
        good = sent = 0
        while good < n:
            while sent < n and sent - good < depth:
                struct.pack_into(">II", c, 16, self.sn + 2, 65536)            # ITT, EDTL
                struct.pack_into(">I", c, 24, self.sn)                        # CmdSN
                struct.pack_into(">I", c, 34, (sent * 128) % 16384)           # LBA
                struct.pack_into(">I", c, 48, sent)                           # data: its number
                self.sn += 1
                sent += 1
                self.s.write(self.bigv)
            self.whole(self.hv, 48)
            if self.hdr[0] & 0x3F != 0x21 or self.hdr[3]:
                break
            good += 1
        return good


def _host_thread(port, target_name, n, out):
    # (no collection may start here: in this build, without a GIL, one started by a second thread
    # would scan the board's objects while they change; the main thread disables it throughout)
    try:
        h = _Host(port, target_name)
        for i in range(64):                       # the session's first commands make its state
            h.command(True, i * 8)
            h.command(False, i * 8)
        for write in (False, True):
            a = gc.mem_alloc()
            r = _TGT[0].reaps
            for i in range(n):
                got = h.command(write, (i * 56) % 8192)
                if got != (0x2100 if write else 0x2500):
                    out.append("answer 0x%04x" % got)
                    break
            out.append(gc.mem_alloc() - a - (_TGT[0].reaps - r) * UPKEEP)
        h.s.close()
    except Exception as e:
        out.append(repr(e))
    out.append(None)


def _serve(ctl, host, n):
    # the board's target serving host(port, iqn, n, out) in a thread of its own until it ends,
    # with no collection meanwhile: -> (out, the target)
    out = []
    tgt = []

    async def main():
        port = await iscsi.start(ctl, 0, "127.0.0.1", 0)
        tgt.append(iscsi._targets[id(ctl)])
        _TGT[:] = tgt
        _thread.start_new_thread(host, (port, ctl.iqn, n, out))
        while not out or out[-1] is not None:
            await asyncio.sleep_ms(5)
        await iscsi.stop(ctl)

    gc.collect()
    gc.disable()
    try:
        asyncio.run(main())
    finally:
        gc.enable()
    return out, tgt[0]


def test_an_iscsi_host_s_reads_and_writes_at_queue_depth_1_cost_the_board_nothing():
    n = 2000
    out, _ = _serve(fw.boot(), _host_thread, n)
    assert len(out) == 3 and isinstance(out[0], int) and isinstance(out[1], int), out
    # each waits for its command on a socket that stays registered (endpoints/ioready.py), and
    # copies its header and a write's data out of the receive buffer through views made once
    # (connio.Link.rx_now): what is counted is beyond the target's upkeep meanwhile
    assert out[0] <= SLACK, "%d 4 KiB reads cost the heap %d bytes" % (n, out[0])
    assert out[1] <= SLACK, "%d 4 KiB writes cost the heap %d bytes" % (n, out[1])


def _stream_thread(port, target_name, n, out):
    # (as _host_thread)
    try:
        h = _Host(port, target_name)
        h.write_stream(64, 8)                 # the first ones make what is made once
        a = gc.mem_alloc()
        good = h.write_stream(n, 8)
        out.append(gc.mem_alloc() - a)
        out.append(good)
        h.s.close()
    except Exception as e:
        out.append(repr(e))
    out.append(None)


def test_64_kib_writes_at_queue_depth_8_cost_the_board_only_views_and_waits():
    # the writes the I/O processor's thread runs while the next ones come in: the first takes the
    # connection's own buffer, the others parking places, none a coroutine or a task of its own
    ctl = fw.boot()
    n = 1000
    out, pool = _serve(ctl, _stream_thread, n)
    assert len(out) == 3 and out[1] == n, out
    assert ctl.iop.chains.submitted >= n, "the writes did not go to the I/O processor's thread"
    assert len(pool.parks) == PARK_SLOTS and not pool.parked and not pool.deferred, "buffers not all back"
    # each write's data begins with its number: every range holds the last write sent there
    rest = bytes((i * 7) & 0xFF for i in range(52, 48 + 65536))
    for k in range(128):
        last = k + (n - 1 - k) // 128 * 128
        st, sn, got = fw.run(ctl, 0, fw.read10(k * 128, 128))
        assert st == 0 and got == last.to_bytes(4, "big") + rest, "blocks %d+128 read back wrong" % (k * 128)
    # its header copied out of the receive buffer through a view, and its data read in as it
    # comes, a view and a socket wait for each piece (a few, as TCP hands them over): where a
    # coroutine and a task of its own cost 1,790 bytes a write
    each = out[0] / n
    assert each <= 10 * VIEW, "a 64 KiB write at QD 8 cost the heap %.1f bytes" % each
