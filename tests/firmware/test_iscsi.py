# iSCSI target pieces on MicroPython: CRC32C, text parsing, negotiation, and a login plus a SCSI
# command against a real controller inside one asyncio loop.
import asyncio
import struct
import fw
import iscsi
import iscsi_pdu as P


def test_crc32c_rfc_vectors():
    # RFC 3720 B.4 (values as the CRC register, before iSCSI's little-endian placement)
    assert P.crc32c(bytes(32)) == 0x8A9136AA
    assert P.crc32c(b"\xff" * 32) == 0x62A8AB43
    assert P.crc32c(bytes(range(32))) == 0x46DD794E
    assert P.crc32c(bytes(range(31, -1, -1))) == 0x113FDB5C
    assert P.crc32c(b"123456789") == 0xE3069283


def test_crc32c_pieces_and_views():
    data = bytes((i * 7 + 3) & 0xFF for i in range(1000))
    whole = P.crc32c(data)
    for cut in (0, 1, 7, 8, 9, 500, 999, 1000):
        assert P.crc32c(data[cut:], P.crc32c(data[:cut])) == whole
    mv = memoryview(bytearray(data))
    assert P.crc32c(mv[3:77]) == P.crc32c(data[3:77])


def test_crc32c_known_answers():
    # the check value of CRC-32C (RFC 3720 B.4) and the all-zero block of 32 bytes; the
    # eight-byte steps and the byte tail of the table-driven routine both take part
    assert P.crc32c(b"123456789") == 0xE3069283
    assert P.crc32c(bytes(32)) == 0x8A9136AA
    assert P.crc32c(b"") == 0


def test_parse_text():
    assert P.parse_text(b"A=1\x00B=x,y\x00") == [("A", "1"), ("B", "x,y")]
    assert P.parse_text(b"") == []
    for bad in (b"A=1", b"=1\x00", b"novalue\x00", b"A=1\x00A=2\x00", b"\xff=1\x00",
                b"K" * 64 + b"=1\x00", b"A=" + b"v" * 8193 + b"\x00", b"A B=1\x00"):
        try:
            P.parse_text(bad)
        except P.TextError:
            continue
        raise AssertionError("accepted %r" % bad)


def test_negotiate_rules():
    p = P.Params()
    assert P.negotiate(p, "HeaderDigest", "CRC32C,None") == "CRC32C" and p.header_digest
    assert P.negotiate(p, "DataDigest", "None,CRC32C") == "None" and not p.data_digest
    assert P.negotiate(p, "DataDigest", "MD5") == "Reject"
    assert P.negotiate(p, "InitialR2T", "No") == "No" and not p.initial_r2t
    assert P.negotiate(p, "InitialR2T", "Yes") == "Yes"
    assert P.negotiate(p, "ImmediateData", "No") == "No" and not p.immediate_data
    assert P.negotiate(p, "MaxBurstLength", "99999999") == "Reject"
    assert P.negotiate(p, "MaxBurstLength", "16777215") == str(P.TARGET_MAX_BURST)
    assert P.negotiate(p, "FirstBurstLength", "4096") == "4096" and p.first_burst == 4096
    assert P.negotiate(p, "MaxRecvDataSegmentLength", "16384") is None and p.mrdsl_out == 16384
    assert P.negotiate(p, "MaxRecvDataSegmentLength", "-5") == "Reject"
    assert P.negotiate(p, "ErrorRecoveryLevel", "2") == "0"
    assert P.negotiate(p, "MaxOutstandingR2T", "16") == "1"
    assert P.negotiate(p, "DefaultTime2Wait", "5") == "5"
    assert P.negotiate(p, "IFMarker", "Yes") == "No"
    assert P.negotiate(p, "IFMarkInt", "1~65535") == "Irrelevant"
    assert P.negotiate(p, "X-vendor.thing", "1") == "NotUnderstood"
    assert P.negotiate(p, "InitiatorName", "iqn.x:y") is None and p.initiator_name == "iqn.x:y"
    assert P.negotiate(p, "TargetAddress", "1.2.3.4") == "Reject"
    try:
        P.negotiate(p, "SessionType", "Weird")
        raise AssertionError("bad SessionType accepted")
    except P.TextError:
        pass


def test_lun_field_and_serial_numbers():
    b = bytearray(16)
    P.put_lun(b, 1)
    assert P.lun_number(b) == 1
    P.put_lun(b, 300)
    assert P.lun_number(b) == 300
    b[8] = 0x80   # logical unit addressing: not one of ours
    assert P.lun_number(b) == -1
    assert P.sn_lt(0xFFFFFFFF, 0) and not P.sn_lt(0, 0xFFFFFFFF) and not P.sn_lt(5, 5)


def _login_pdu(itt, pairs):
    data = b"".join(("%s=%s" % kv).encode() + b"\x00" for kv in pairs)
    b = bytearray(48)
    b[0] = 0x43
    b[1] = 0x87
    b[5:8] = bytes([len(data) >> 16, (len(data) >> 8) & 0xFF, len(data) & 0xFF])
    b[8:14] = b"\x80\x00\x00\x00\x00\x01"
    struct.pack_into(">I", b, 16, itt)
    return bytes(b) + data + b"\x00" * (-len(data) & 3)


async def _read_pdu(r):
    h = await r.readexactly(48)
    n = (h[5] << 16) | (h[6] << 8) | h[7]
    d = await r.readexactly(n + (-n & 3)) if n else b""
    return h, d[:n]


def test_login_and_command_in_process():
    ctl = fw.boot()

    async def main():
        port = await iscsi.start(ctl, 0, "127.0.0.1", 0)
        assert port > 0
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(_login_pdu(1, [("InitiatorName", "iqn.2026-01.mp:test"), ("TargetName", ctl.iqn),
                               ("SessionType", "Normal"), ("HeaderDigest", "None"),
                               ("MaxRecvDataSegmentLength", "65536")]))
        await w.drain()
        h, d = await _read_pdu(r)
        assert h[0] == 0x23 and h[36] == 0 and h[37] == 0, (h[36], h[37])
        assert h[1] & 0x80 and h[1] & 3 == 3   # transit to full feature phase
        keys = dict(kv.split("=", 1) for kv in d.decode().split("\x00") if kv)
        assert keys["HeaderDigest"] == "None" and keys["TargetPortalGroupTag"] == "1"
        tsih = (h[14] << 8) | h[15]
        assert tsih != 0
        # READ CAPACITY(10) on LUN 0: Data-In with phase-collapsed GOOD status
        c = bytearray(48)
        c[0] = 0x01
        c[1] = 0xC0 | 1
        struct.pack_into(">III", c, 16, 2, 8, 0)   # ITT, EDTL, CmdSN
        c[32] = 0x25
        w.write(bytes(c))
        await w.drain()
        h, d = await _read_pdu(r)
        assert h[0] & 0x3F == 0x25 and h[1] & 0x81 == 0x81 and h[3] == 0
        assert struct.unpack(">I", d[4:8])[0] == 512
        w.close()
        await iscsi.stop(ctl)

    asyncio.run(main())
