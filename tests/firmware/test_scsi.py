# SCSI core conformance (scsi/README.md): the block and primary commands beyond READ/WRITE 10, their
# sense data, unit attentions after resets, RESERVE/RELEASE and persistent reservations.
# LUN 0 = the RAID 5 primary (on both host ports), LUN 1 = the backup LUN.
import fw
import struct

A = "iqn.test:a"
B = "iqn.test:b"
INITIATE = fw.cdb(0x20, 0, 0x60, 0, 0, 0, 0, 0, 0, 0)


def run(ctl, c, data=None, ini=A, port=0, lun=0):
    return fw.run(ctl, lun, c, data, port, ini)


def ok(ctl, c, data=None, ini=A, port=0, lun=0):
    st, sn, d = run(ctl, c, data, ini, port, lun)
    assert st == 0, (bytes(c[:2]).hex(), st, sn)
    return d


def check(ctl, c, key, asc, ascq, data=None, ini=A, port=0, lun=0):
    st, sn, d = run(ctl, c, data, ini, port, lun)
    assert st == 2, (bytes(c[:2]).hex(), st)
    assert fw.sense3(sn) == (key, asc, ascq), (bytes(c[:2]).hex(), fw.sense3(sn))
    return sn


def c10(op, lba, n, b1=0):
    return bytes([op, b1]) + lba.to_bytes(4, "big") + bytes([0]) + n.to_bytes(2, "big") + bytes([0])


def c12(op, lba, n, b1=0):
    return bytes([op, b1]) + lba.to_bytes(4, "big") + n.to_bytes(4, "big") + bytes(2)


def c16(op, lba, n, b1=0):
    return bytes([op, b1]) + lba.to_bytes(8, "big") + n.to_bytes(4, "big") + bytes(2)


def read(ctl, lba, n, lun=0):
    return ok(ctl, c10(0x28, lba, n), lun=lun)


def blocks(ctl):
    d = ok(ctl, fw.cdb(0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0))
    return struct.unpack(">I", d[:4])[0] + 1


# ---- INQUIRY, MODE SENSE -----------------------------------------------------------------------
def test_inquiry_claims_sbc3_and_block_limits_page():
    ctl = fw.boot()
    d = ok(ctl, fw.cdb(0x12, 0, 0, 0, 96, 0))
    descs = [d[i:i + 2] for i in range(58, 74, 2)]
    assert b"\x04\xC0" in descs and b"\x04\x60" in descs   # SBC-3, SPC-4
    d = ok(ctl, fw.cdb(0x12, 1, 0xB0, 0, 64, 0))
    assert len(d) == 64 and d[3] == 0x3C
    assert d[4] & 1 == 1 and d[5] == 255                   # WSNZ, MAXIMUM COMPARE AND WRITE LENGTH
    assert struct.unpack(">I", d[8:12])[0] == 2048                # MAXIMUM TRANSFER LENGTH: 1 MiB
    # the factory SD0 is RAID 5 of 4 disks, 64 KiB stripes: a full stripe is 192 KiB, and the
    # most whole stripes in a request of 1 MiB are 5 (960 KiB)
    assert struct.unpack(">H", d[6:8])[0] == 384                  # OPTIMAL TRANSFER LENGTH GRANULARITY
    assert struct.unpack(">I", d[12:16])[0] == 1920               # OPTIMAL TRANSFER LENGTH
    assert struct.unpack(">II", d[20:28]) == (0, 0)        # no UNMAP
    assert struct.unpack(">Q", d[36:44])[0] == 65536


def test_mode_sense_reports_dpofua_and_write_protect():
    ctl = fw.boot()
    d = ok(ctl, fw.cdb(0x1A, 0, 0x3F, 0, 255, 0))
    assert d[2] == 0x10                                    # DPOFUA, not write protected
    d = ok(ctl, fw.cdb(0x5A, 0, 0x3F, 0, 0, 0, 0, 1, 0, 0))
    assert d[3] == 0x10
    ctl.execute((A, 0, 0), INITIATE)
    d = ok(ctl, fw.cdb(0x1A, 0, 0x3F, 0, 255, 0), lun=1)
    assert d[2] == 0x90                                    # the backup LUN: WP too


# ---- READ/WRITE/VERIFY field checks ------------------------------------------------------------
def test_protect_fields_are_refused_dpo_fua_accepted():
    ctl = fw.boot()
    data = fw.pattern(1, 512)
    for mk in (c10, c12, c16):
        rd, wr, vf = {c10: (0x28, 0x2A, 0x2F), c12: (0xA8, 0xAA, 0xAF), c16: (0x88, 0x8A, 0x8F)}[mk]
        for prot in (0x20, 0x40, 0xE0):
            sn = check(ctl, mk(rd, 0, 1, prot), 5, 0x24, 0)
            assert sn[15] == 0xC0 and sn[16:18] == b"\x00\x01"          # field pointer: byte 1
            check(ctl, mk(wr, 0, 1, prot), 5, 0x24, 0, data)
            check(ctl, mk(vf, 0, 1, prot), 5, 0x24, 0)
        for flags in (0x10, 0x08, 0x18):
            ok(ctl, mk(wr, 5, 1, flags), data)
            assert ok(ctl, mk(rd, 5, 1, flags)) == data
            ok(ctl, mk(vf, 5, 1, flags & 0x10))


def test_twelve_byte_commands_read_and_write():
    ctl = fw.boot()
    data = fw.pattern(2, 4096)
    ok(ctl, c12(0xAA, 40, 8), data)
    assert ok(ctl, c12(0xA8, 40, 8)) == data
    ok(ctl, c12(0xAF, 40, 8, 0x02), data)                  # VERIFY(12) BYTCHK=1
    n = blocks(ctl)
    check(ctl, c12(0xA8, n - 1, 2), 5, 0x21, 0)
    assert ok(ctl, c12(0xA8, n, 0)) == b""                 # zero blocks at the end: GOOD


def test_short_data_out_writes_the_whole_blocks_present():
    # a transport may deliver less data-out than the CDB's length (iSCSI EDTL < transfer length)
    ctl = fw.boot()
    a, b = b"a" * 1024, b"b" * 1024
    ok(ctl, c10(0x2A, 0, 2), a)
    ok(ctl, c10(0x2A, 0, 2), b[:512])                      # two blocks asked, one given
    assert read(ctl, 0, 2) == b[:512] + a[:512]
    ok(ctl, c10(0x2A, 0, 1), b"")                          # none given: nothing written
    ok(ctl, c10(0x2A, 0, 1), None)
    # a partial block is refused (INVALID FIELD IN INFORMATION UNIT) and nothing is written
    check(ctl, c10(0x2A, 0, 2), 5, 0x0E, 0x03, b"c" * 700)
    assert read(ctl, 0, 2) == b[:512] + a[:512]


def test_verify_bytchk_miscompare_reports_the_offset():
    ctl = fw.boot()
    data = bytes(fw.pattern(3, 2048))
    ok(ctl, c10(0x2A, 10, 4), data)
    ok(ctl, c10(0x2F, 10, 4, 0x02), data)
    bad = bytearray(data)
    bad[1500] ^= 1
    sn = check(ctl, c16(0x8F, 10, 4, 0x02), 0x0E, 0x1D, 0, bad)
    assert sn[0] & 0x80 and struct.unpack(">I", sn[3:7])[0] == 1500
    # BYTCHK=3: one block compared with each block of the range
    ok(ctl, c10(0x2A, 20, 3), data[:512] * 3)
    ok(ctl, c10(0x2F, 20, 3, 0x06), data[:512])
    sn = check(ctl, c10(0x2F, 19, 3, 0x06), 0x0E, 0x1D, 0, data[:512])
    check(ctl, c10(0x2F, 20, 1, 0x04), 5, 0x24, 0)         # BYTCHK=2 reserved


def test_write_and_verify_orwrite():
    ctl = fw.boot()
    data = fw.pattern(4, 1024)
    for op, mk in ((0x2E, c10), (0xAE, c12), (0x8E, c16)):
        ok(ctl, mk(op, 30, 2, 0x02), data)
        assert read(ctl, 30, 2) == data
        ok(ctl, c10(0x2A, 30, 2), bytes(1024))
    ok(ctl, c10(0x2A, 50, 1), b"\x0f" * 512)
    ok(ctl, c16(0x8B, 50, 1), b"\xf0" * 256 + b"\x01" * 256)
    assert read(ctl, 50, 1) == b"\xff" * 256 + b"\x0f" * 256


def test_compare_and_write():
    ctl = fw.boot()
    a, b = b"A" * 1024, b"B" * 1024
    caw = bytes([0x89, 0]) + (60).to_bytes(8, "big") + bytes([0, 0, 0, 2, 0, 0])
    ok(ctl, c10(0x2A, 60, 2), a)
    ok(ctl, caw, a + b)
    assert read(ctl, 60, 2) == b
    sn = check(ctl, caw, 0x0E, 0x1D, 0, a + b)              # the medium holds B now
    assert struct.unpack(">I", sn[3:7])[0] == 0
    assert read(ctl, 60, 2) == b
    check(ctl, caw[:13] + b"\x00" + caw[14:], 5, 0x24, 0, b"")     # zero blocks
    check(ctl, caw, 5, 0x0E, 0x03, b + b[:512])             # data-out not 2 x blocks
    assert ctl.expected_out(caw) == 2048


def test_write_same():
    ctl = fw.boot()
    blk = fw.pattern(5, 512)
    blk = bytes(blk)
    ok(ctl, c10(0x41, 100, 300), blk)
    assert read(ctl, 100, 300) == blk * 300
    ok(ctl, c16(0x93, 100, 3000), b"\x5a" * 512)          # more than one transfer buffer
    assert read(ctl, 3098, 3) == b"\x5a" * 1024 + bytes(512)
    assert read(ctl, 99, 2) == bytes(512) + b"\x5a" * 512
    ok(ctl, c16(0x93, 100, 2, 0x01))                      # NDOB: zeros, no data-out
    assert read(ctl, 100, 2) == bytes(1024)
    assert ctl.expected_out(c16(0x93, 100, 2, 0x01)) == 0 and ctl.expected_out(c10(0x41, 0, 9)) == 512
    check(ctl, c10(0x41, 100, 0), 5, 0x24, 0, blk)         # WSNZ
    check(ctl, c10(0x41, 100, 1, 0x08), 5, 0x24, 0, blk)   # UNMAP: not provisioned thinly
    check(ctl, c10(0x41, 100, 1, 0x10), 5, 0x24, 0, blk)   # ANCHOR
    check(ctl, c16(0x93, blocks(ctl), 1), 5, 0x21, 0, blk)


def test_prefetch_get_lba_status_read_defect_data():
    ctl = fw.boot()
    n = blocks(ctl)
    ok(ctl, c10(0x34, 0, 10))
    ok(ctl, c16(0x90, n - 10, 10, 0x02))
    check(ctl, c10(0x34, n - 1, 2), 5, 0x21, 0)
    check(ctl, c10(0x34, 0, 1, 0x04), 5, 0x24, 0)
    gls = bytes([0x9E, 0x12]) + (n - 5).to_bytes(8, "big") + (24).to_bytes(4, "big") + bytes(2)
    d = ok(ctl, gls)
    assert struct.unpack(">IIQIB", d[:21]) == (20, 0, n - 5, 5, 0)
    check(ctl, bytes([0x9E, 0x12]) + n.to_bytes(8, "big") + (24).to_bytes(4, "big") + bytes(2),
          5, 0x21, 0)
    d = ok(ctl, fw.cdb(0x37, 0, 0x0D, 0, 0, 0, 0, 0, 4, 0))
    assert d == b"\x00\x0d\x00\x00"             # GLISTV, format 5, no entries
    d = ok(ctl, fw.cdb(0xB7, 0x0D, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0))
    assert len(d) == 8 and d[4:8] == bytes(4)


def test_backup_lun_refuses_every_write_command():
    ctl = fw.boot()
    ctl.execute((A, 0, 0), INITIATE)
    blk = bytes(512)
    for c, data in ((c12(0xAA, 0, 1), blk), (c10(0x2E, 0, 1), blk), (c16(0x8B, 0, 1), blk),
                    (c10(0x41, 0, 1), blk), (c16(0x93, 0, 1), blk),
                    (bytes([0x89, 0]) + bytes(11) + b"\x01\x00\x00", blk * 2)):
        check(ctl, c, 7, 0x27, 0, data, lun=1)
    ok(ctl, c12(0xA8, 0, 1), lun=1)


def test_write_same_goes_through_copy_on_write():
    # a snapshot's backup LUN keeps the initiate image under WRITE SAME, COMPARE AND WRITE, ORWRITE
    ctl = fw.boot()
    old = fw.pattern(6, 512 * 256)
    ok(ctl, c10(0x2A, 0, 256), old)
    ctl.execute((A, 0, 0), INITIATE)
    ok(ctl, c10(0x41, 10, 100), b"\x11" * 512)
    ok(ctl, c16(0x8B, 200, 1), b"\x80" * 512)
    assert read(ctl, 0, 256, lun=1) == old
    assert read(ctl, 10, 1) == b"\x11" * 512


# ---- REPORT SUPPORTED OPERATION CODES ----------------------------------------------------------
def rsoc(opt, op=0, sa=0, rctd=0, alloc=8192):
    return bytes([0xA3, 0x0C, rctd | opt, op]) + sa.to_bytes(2, "big") + alloc.to_bytes(4, "big") + bytes(2)


def test_report_supported_opcodes():
    ctl = fw.boot()
    d = ok(ctl, rsoc(0))
    n = struct.unpack(">I", d[:4])[0]
    assert n == len(d) - 4 and n % 8 == 0
    ops = set()
    for i in range(4, len(d), 8):
        ops.add((d[i], struct.unpack(">H", d[i + 2:i + 4])[0] if d[i + 5] & 1 else -1))
    for o in (0x28, 0x2A, 0xA8, 0x88, 0x41, 0x89, 0x12, 0xA0):
        assert (o, -1) in ops, hex(o)
    assert (0x9E, 0x10) in ops and (0x9E, 0x12) in ops and (0x5F, 6) in ops
    d = ok(ctl, rsoc(0, rctd=0x80))
    assert len(d) == 4 + len(ops) * 20 and d[9] & 0x02
    d = ok(ctl, rsoc(1, 0x28))                               # READ(10): DPO and FUA are used
    assert d[1] & 7 == 3 and struct.unpack(">H", d[2:4])[0] == 10
    assert d[4] == 0x28 and d[5] & 0x18 == 0x18 and d[5] & 0xE0 == 0
    d = ok(ctl, rsoc(1, 0x7E))
    assert d[1] & 7 == 1                                     # not supported
    check(ctl, rsoc(1, 0x9E), 5, 0x24, 0)                    # has service actions
    check(ctl, rsoc(2, 0x28), 5, 0x24, 0)                    # has none
    d = ok(ctl, rsoc(2, 0x9E, 0x10, 0x80))
    assert d[1] == 0x83 and len(d) == 4 + 16 + 12
    d = ok(ctl, rsoc(3, 0x12))
    assert d[1] & 7 == 3 and d[4] == 0x12
    assert len(ok(ctl, rsoc(0, alloc=10))) == 10


# ---- unit attentions ---------------------------------------------------------------------------
def test_lun_reset_raises_unit_attention_on_every_nexus_of_the_lu():
    ctl = fw.boot()
    tur = fw.cdb(0, 0, 0, 0, 0, 0)
    for port in (0, 1):
        ok(ctl, tur, port=port)                              # nexuses the core has seen
    ok(ctl, tur, ini=B)
    ctl.task_mgmt((A, 0, 0), "lun_reset")
    # INQUIRY and REPORT LUNS do not report it
    ok(ctl, fw.cdb(0x12, 0, 0, 0, 36, 0))
    for ini, port in ((A, 0), (A, 1), (B, 0)):
        check(ctl, tur, 6, 0x29, 0x03, ini=ini, port=port)
        ok(ctl, tur, ini=ini, port=port)                     # reported once
    # REQUEST SENSE returns it as its data and clears it
    ctl.task_mgmt((A, 1, 0), "lun_reset")
    d = ok(ctl, fw.cdb(0x03, 0, 0, 0, 18, 0))
    assert fw.sense3(d) == (6, 0x29, 0x03)
    ok(ctl, tur)
    # a target reset reaches every LU; a lost nexus forgets its attentions
    ctl.task_mgmt((A, 0, 0), "target_warm_reset")
    check(ctl, tur, 6, 0x29, 0x02, ini=B)
    ctl.nexus_lost(A, 0)
    ok(ctl, tur)
    check(ctl, tur, 6, 0x29, 0x02, port=1)


def test_unit_attention_state_is_bounded():
    ctl = fw.boot()
    tur = fw.cdb(0, 0, 0, 0, 0, 0)
    for i in range(400):
        ok(ctl, tur, ini="iqn.flood:%d" % i)
    assert len(ctl.core._seen) <= 256
    for i in range(10):
        ctl.task_mgmt((A, 0, 0), "lun_reset")
        ctl.core.unit_attention(None, None, 0x2A03 + (i & 1))
    assert max(len(q) for q in ctl.core._ua.values()) <= 4


# ---- RESERVE / RELEASE -------------------------------------------------------------------------
RES6, REL6 = fw.cdb(0x16, 0, 0, 0, 0, 0), fw.cdb(0x17, 0, 0, 0, 0, 0)


def test_reserve6_conflicts_other_initiators_and_ends_on_reset_or_nexus_loss():
    ctl = fw.boot()
    ms = fw.cdb(0x1A, 0, 0x3F, 0, 255, 0)
    ok(ctl, RES6)
    ok(ctl, RES6)                                            # the holder may reserve again
    assert run(ctl, RES6, ini=B)[0] == 0x18
    assert run(ctl, ms, ini=B)[0] == 0x18
    assert run(ctl, ms, port=1)[0] == 0x18                   # another I_T nexus of initiator A
    ok(ctl, fw.cdb(0x12, 0, 0, 0, 36, 0), ini=B)             # INQUIRY is always allowed
    ok(ctl, REL6, ini=B)                                     # a no-op from a non-holder
    assert run(ctl, ms, ini=B)[0] == 0x18
    ok(ctl, ms)
    ok(ctl, REL6)
    ok(ctl, RES6, ini=B)
    ok(ctl, REL6, ini=B)
    for how in ("lun_reset", "target_cold_reset", "lost"):
        ok(ctl, RES6)
        if how == "lost":
            ctl.nexus_lost(A, 0)
        else:
            ctl.task_mgmt((A, 0, 0), how)
        for ini in (A, B):                                   # clears the reset's unit attention
            ok(ctl, fw.cdb(0x03, 0, 0, 0, 18, 0), ini=ini)
        ok(ctl, RES6, ini=B)
        ok(ctl, REL6, ini=B)
    check(ctl, fw.cdb(0x16, 1, 0, 0, 0, 0), 5, 0x24, 0)      # extents are not supported


# ---- PERSISTENT RESERVE ------------------------------------------------------------------------
def prout(sa, rkey=0, sakey=0, type_=0, scope=0, plen=24, flags=0):
    p = bytearray(24)
    struct.pack_into(">QQ", p, 0, rkey, sakey)
    p[20] = flags
    return bytes([0x5F, sa, (scope << 4) | type_, 0, 0]) + plen.to_bytes(4, "big") + b"\0", bytes(p)


def po(ctl, sa, ini=A, status=0, **kw):
    c, p = prout(sa, **kw)
    st, sn, _ = run(ctl, c, p, ini=ini)
    assert st == status, (sa, ini, st, sn)
    return sn


def prin(ctl, sa, ini=A, alloc=1024):
    return ok(ctl, bytes([0x5E, sa, 0, 0, 0, 0, 0]) + alloc.to_bytes(2, "big") + b"\0", ini=ini)


def test_persistent_register_reserve_access():
    ctl = fw.boot()
    rd, wr = c10(0x28, 1, 1), c10(0x2A, 1, 1)
    blk = bytes(512)
    po(ctl, 6, sakey=0x1111)                                 # REGISTER AND IGNORE
    po(ctl, 0, ini=B, sakey=0x2222)                          # REGISTER
    po(ctl, 0, ini=B, rkey=0x9999, sakey=0x3333, status=0x18)    # wrong key
    d = prin(ctl, 0)
    gen, n = struct.unpack(">II", d[:8])
    assert n == 16 and sorted(struct.unpack(">QQ", d[8:24])) == [0x1111, 0x2222]
    # WRITE EXCLUSIVE: B (registered, not holder) reads, cannot write
    po(ctl, 1, rkey=0x1111, type_=1)
    d = prin(ctl, 1)
    assert struct.unpack(">IIQ", d[:16])[1:] == (16, 0x1111) and d[21] == 1
    ok(ctl, rd, ini=B)
    assert run(ctl, wr, blk, ini=B)[0] == 0x18
    ok(ctl, wr, blk)
    ok(ctl, fw.cdb(0, 0, 0, 0, 0, 0), ini=B)                 # TUR allowed
    po(ctl, 1, ini=B, rkey=0x2222, type_=1, status=0x18)     # held by A
    po(ctl, 2, rkey=0x1111, type_=3, status=2)               # RELEASE with the wrong type
    po(ctl, 2, rkey=0x1111, type_=1)
    ok(ctl, wr, blk, ini=B)
    # EXCLUSIVE ACCESS - REGISTRANTS ONLY: registrants read and write, others neither
    po(ctl, 1, rkey=0x1111, type_=6)
    ok(ctl, wr, blk, ini=B)
    assert run(ctl, rd, ini="iqn.test:c")[0] == 0x18
    # unregistering the holder of a registrants-only reservation releases it
    po(ctl, 0, rkey=0x1111, sakey=0)
    assert struct.unpack(">II", prin(ctl, 1)[:8])[1] == 0
    check(ctl, fw.cdb(0, 0, 0, 0, 0, 0), 6, 0x2A, 0x04, ini=B)   # RESERVATIONS RELEASED
    ok(ctl, rd, ini="iqn.test:c")


def test_persistent_all_registrants_preempt_clear_and_errors():
    ctl = fw.boot()
    po(ctl, 6, sakey=1)
    po(ctl, 6, ini=B, sakey=2)
    po(ctl, 1, rkey=1, type_=8)                              # EXCLUSIVE ACCESS - ALL REGISTRANTS
    d = prin(ctl, 1, ini=B)
    assert struct.unpack(">Q", d[8:16])[0] == 0 and d[21] == 8
    po(ctl, 0, rkey=1, sakey=0)                              # A leaves: still reserved for B
    assert prin(ctl, 1)[21] == 8
    po(ctl, 2, ini=B, rkey=2, type_=8)
    # PREEMPT: A registers again, reserves WE, B preempts A's key and takes the reservation
    po(ctl, 6, sakey=1)
    po(ctl, 1, rkey=1, type_=1)
    po(ctl, 4, ini=B, rkey=2, sakey=1, type_=3)
    d = prin(ctl, 1, ini=B)
    assert struct.unpack(">Q", d[8:16])[0] == 2 and d[21] == 3
    check(ctl, fw.cdb(0, 0, 0, 0, 0, 0), 6, 0x2A, 0x05)      # REGISTRATIONS PREEMPTED
    assert struct.unpack(">II", prin(ctl, 0, ini=B)[:8])[1] == 8
    po(ctl, 4, ini=B, rkey=2, sakey=0x77, type_=3, status=0x18)   # nobody holds that key
    # READ FULL STATUS names the iSCSI initiator and port
    d = prin(ctl, 3, ini=B)
    assert struct.unpack(">I", d[4:8])[0] == len(d) - 8
    assert d[8 + 12] & 1 and d[8 + 24] == 0x05 and B.encode() in d
    # REPORT CAPABILITIES
    d = prin(ctl, 2)
    assert d[1] == 8 and d[4] == 0xEA and d[5] == 0x01
    # CLEAR removes everything
    po(ctl, 3, ini=B, rkey=2)
    assert struct.unpack(">II", prin(ctl, 0)[:8])[1] == 0 and len(prin(ctl, 1)) == 8
    # bad input
    c, p = prout(0, sakey=5, plen=20)
    check(ctl, c, 5, 0x1A, 0, p[:20])
    check(ctl, prout(0, sakey=5, flags=0x01)[0], 5, 0x26, 0, prout(0, sakey=5, flags=0x01)[1])
    check(ctl, prout(7)[0], 5, 0x24, 0, prout(7)[1])
    po(ctl, 6, sakey=9)
    po(ctl, 1, rkey=9, type_=2, status=2)                    # type 2 is obsolete
    po(ctl, 1, rkey=9, type_=1, scope=1, status=2)
    check(ctl, bytes([0x5E, 4, 0, 0, 0, 0, 0, 4, 0, 0]), 5, 0x24, 0)
    assert len(prin(ctl, 0, alloc=4)) == 4                   # truncated to the allocation
    assert ctl.expected_out(prout(0)[0]) == 24
    # a RESERVE(6) is refused while registrations exist
    assert run(ctl, RES6)[0] == 0x18


def test_persistent_registrations_survive_reset():
    ctl = fw.boot()
    po(ctl, 6, sakey=7)
    po(ctl, 1, rkey=7, type_=3)
    ctl.task_mgmt((A, 0, 0), "lun_reset")
    ok(ctl, fw.cdb(0x03, 0, 0, 0, 18, 0))
    d = prin(ctl, 1)
    assert d[21] == 3
    assert run(ctl, c10(0x28, 0, 1), ini=B)[0] == 0x18


# ---- bad input ---------------------------------------------------------------------------------
def test_random_cdbs_never_fault():
    # every opcode the core knows (and some it does not) with random fields and data-out: each
    # answer is a SCSI status, never a firmware fault; the core keeps answering afterwards
    from scsi import core as scsi
    ctl = fw.boot()
    faults = []
    ctl.events.subscribe(lambda e: faults.append(e) if "FAULT" in e["text"] else None)
    ops = sorted(scsi.HANDLERS) + [0x7E, 0xFF, 0x15, 0x55, 0x42]
    x = 12345
    counts = {}
    for i in range(3000):
        if i % 50 == 0:
            ctl.core.pr.__init__(ctl.core)     # as a restart would: reservations do not pile up
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        op = ops[x % len(ops)]
        if op == 0x20:
            continue                     # direct commands: scsi/vendor.md, tested on their own
        n = (6, 10, 10, 0, 16, 12, 0, 0)[op >> 5] or 16
        c = bytearray(n)
        c[0] = op
        for j in range(1, n):
            x = (x * 1103515245 + 12345) & 0x7FFFFFFF
            c[j] = (x >> 8) & 0xFF if x & 3 == 0 else 0     # mostly zero: reach deeper checks
        if x & 16:                         # a small range inside the LU now and then
            if op in (0x28, 0x2A, 0x2F, 0x2E, 0x41, 0x34, 0x35):
                c[2:6] = bytes(4)
                c[7:9] = bytes([0, x & 7])
            elif n == 16:
                c[2:10] = bytes(8)
                c[10:14] = bytes([0, 0, 0, x & 7])
        dlen = ((x >> 5) & 7) * 256
        st, sn, d = ctl.execute(("iqn.fuzz:%d" % (x & 3), x & 1, 0), bytes(c), bytes(dlen))
        assert st in (0, 2, 8, 0x18), (bytes(c).hex(), st)
        assert st != 2 or (sn[0] & 0x7F == 0x70 and len(sn) == 18)
        counts[st] = counts.get(st, 0) + 1
    assert not faults, faults[:3]
    print("random CDBs:", counts)
    assert counts.get(0, 0) > 500 and counts.get(2, 0) > 500
    ctl.core.pr.__init__(ctl.core)
    assert ctl.execute((A, 0, 0), fw.cdb(0, 0, 0, 0, 0, 0))[0] == 0
