"""Host ports as iSCSI targets (issue 5): a booted board, real initiators (libiscsi tools) and a
wire-level initiator (test_iscsi_initiator.py) for what tools cannot send."""
import os
import shutil
import socket
import struct
import subprocess
import threading
import time

import pytest

import test_iscsi_initiator as I
from harness import need_tool as conftest_need_tool


PACKAGES = {"iscsi-ls": "libiscsi-bin", "iscsi-inq": "libiscsi-bin", "iscsi-readcapacity16": "libiscsi-bin",
            "iscsi-test-cu": "libiscsi-bin", "iscsi-perf": "libiscsi-bin", "qemu-img": "qemu-utils"}


def need_tool(name):
    """Skip locally when a Debian tool is missing; in CI (CI=true) a missing tool is a failure."""
    conftest_need_tool(name, PACKAGES.get(name, "?"))


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    # one board for the whole module (the tests leave it as they found it): conftest's Board
    b = I.BootedBoard.boot(tmp_path_factory.mktemp("iscsi"))
    yield b
    b.stop()


def session(board, port=0, **kw):
    c = I.Initiator(*board.portals[port], name=kw.pop("name", I.INITIATOR))
    c.login(**kw)
    return c


def tur(lun=0):
    return bytes(6)


def run(cmd, timeout=60):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout + p.stderr


# ------------------------------------------------------------------ real initiators
def test_libiscsi_discovery_lists_both_portals(board):
    need_tool("iscsi-ls")
    h, p = board.portals[0]
    rc, out = run(["iscsi-ls", "iscsi://%s:%d" % (h, p)])
    assert rc == 0, out
    for host, port in board.portals:
        assert "Target:%s Portal:%s:%d" % (I.IQN, host, port) in out


def test_libiscsi_inquiry_and_capacity(board):
    need_tool("iscsi-inq")
    rc, out = run(["iscsi-inq", board.url(0)])
    assert rc == 0 and "Peripheral Device Type:DIRECT_ACCESS" in out, out
    rc, out = run(["iscsi-readcapacity16", board.url(0, port=1)])
    assert rc == 0, out
    blocks = int(out.split("RETURNED LOGICAL BLOCK ADDRESS:")[1].split()[0]) + 1
    c = session(board)
    r = c.command(0, bytes([0x9E, 0x10]) + bytes(8) + struct.pack(">I", 32) + bytes(2), read_len=32)
    assert struct.unpack(">Q", r["data"][:8])[0] + 1 == blocks
    c.logout()


def test_libiscsi_sees_backup_lun_not_ready(board):
    # the backup LUN without a snapshot: the core's NOT READY reaches a real initiator
    need_tool("iscsi-readcapacity16")
    rc, out = run(["iscsi-readcapacity16", board.url(1)])
    assert rc != 0 and "NOT READY" in out, out


# ------------------------------------------------------------------ login and negotiation
def test_login_negotiates_digests_and_declares_limits(board):
    c = session(board, digests=True)
    assert c.params["HeaderDigest"] == "CRC32C" and c.params["DataDigest"] == "CRC32C"
    assert c.params["TargetPortalGroupTag"] == "1"
    assert int(c.params["MaxRecvDataSegmentLength"]) >= 65536
    assert c.params["MaxBurstLength"] == "1048576" and c.params["ErrorRecoveryLevel"] == "0"
    assert c.nop(b"ping with digests") == b"ping with digests"
    data = os.urandom(8192)
    assert c.write(0, 77, data)["status"] == 0
    r = c.read(0, 77, 16)
    assert r["status"] == 0 and r["data"] == data
    c.logout()


def test_login_answers_unknown_and_bad_keys(board):
    c = I.Initiator(*board.portals[1])
    got = c.login(extra=[("X-com.example.Foo", "1"), ("TaskReporting", "RFC3720")],
                  ops={"MaxOutstandingR2T": "8", "MaxConnections": "4", "IFMarker": "Yes"})
    assert got["X-com.example.Foo"] == "NotUnderstood"
    assert got["MaxOutstandingR2T"] == "1" and got["MaxConnections"] == "1" and got["IFMarker"] == "No"
    assert got["TargetPortalGroupTag"] == "2"
    c.logout()


@pytest.mark.parametrize("case", ["wrong target", "no initiator name", "bad version", "garbage text"])
def test_login_refusals(board, case):
    c = I.Initiator(*board.portals[0])
    itt = c.next_itt()
    pairs = [("InitiatorName", I.INITIATOR), ("TargetName", I.IQN), ("SessionType", "Normal")]
    b = I.bhs(0x43, 0x87, 0, itt)
    b[8:14] = c.isid
    data = None
    if case == "wrong target":
        pairs[1] = ("TargetName", "iqn.2000-01.nowhere:none")
    elif case == "no initiator name":
        pairs = pairs[1:]
    elif case == "bad version":
        b[3] = 3
    else:
        data = b"\xff\xfe=\x00no-equals-sign\x00"
    c.send(b, data if data is not None else I.text(pairs))
    r = c.recv()
    status = (r.bhs[36] << 8) | r.bhs[37]
    assert r.op == 0x23 and status == {"wrong target": 0x0203, "no initiator name": 0x0207,
                                       "bad version": 0x0205, "garbage text": 0x0200}[case]
    with pytest.raises((ConnectionError, OSError)):
        c.recv()   # the target closes after a failed login
    assert session(board).logout() == 0


def test_chap_required_when_configured(board):
    board.command("chap_set", {"user": "backup", "secret": "s3cret-s3cret"})
    try:
        with pytest.raises(I.ISCSIError, match="0x0201"):
            session(board)   # AuthMethod None is not acceptable any more
        with pytest.raises(I.ISCSIError, match="0x0201"):
            # from another address: a failure delays the next check for its own address only
            I.Initiator(*board.portals[0], source="127.0.0.2").login(chap=("backup", "wrong-secret!"))
        c = session(board, chap=("backup", "s3cret-s3cret"))
        assert c.command(0, tur())["status"] == 0
        c.logout()
        if shutil.which("iscsi-inq"):
            rc, out = run(["iscsi-inq", board.url(0, auth="backup%s3cret-s3cret@")])
            assert rc == 0, out
            rc, out = run(["iscsi-inq", board.url(0, auth="backup%nope-nope-nope@")])
            assert rc != 0
    finally:
        board.command("chap_set", {"user": "", "secret": ""})
    session(board).logout()


def test_discovery_session_only_does_text(board):
    c = session(board, discovery=True)
    st = c.send_targets()
    assert ("TargetName", I.IQN) in st
    assert ("TargetAddress", "%s:%d,1" % board.portals[0]) in st
    assert ("TargetAddress", "%s:%d,2" % board.portals[1]) in st
    # a SCSI command in a discovery session is a protocol error: Reject, then closed
    b = I.bhs(0x01, 0x80, 0, c.next_itt(), [(24, c.cmdsn), (28, c.expstatsn)])
    c.send(b)
    assert c.recv().op == 0x3F
    with pytest.raises((ConnectionError, OSError)):
        c.recv()


# ------------------------------------------------------------------ full feature phase
def test_write_with_r2t_bursts_and_read_back(board):
    # no immediate or unsolicited data and 16 KiB bursts: every byte comes through R2T
    c = session(board, ops={"ImmediateData": "No", "InitialR2T": "Yes", "MaxBurstLength": "16384",
                            "FirstBurstLength": "16384"})
    data = os.urandom(256 * 1024)
    r = c.write(0, 4096, data)
    assert r["status"] == 0 and r["pdus"] == 1 + 256 // 16
    r = c.read(0, 4096, 512)
    assert r["status"] == 0 and r["data"] == data
    c.logout()


def test_unsolicited_data_then_r2t(board):
    c = session(board, ops={"FirstBurstLength": "65536"})
    data = os.urandom(1024 * 1024)   # 64 KiB immediate+unsolicited, the rest solicited
    assert c.write(0, 8192, data)["status"] == 0
    assert c.read(0, 8192, 2048)["data"] == data
    c.logout()


def test_residuals(board):
    c = session(board)
    # READ(10) of 2 blocks with EDTL of 1 block: one block arrives, overflow residual 512
    cdb = bytes([0x28, 0, 0, 0, 0, 0, 0, 0, 2, 0])
    r = c.command(0, cdb, read_len=512)
    assert r["status"] == 0 and len(r["data"]) == 512 and r["rflags"] == 4 and r["resid"] == 512
    r = c.command(0, cdb, read_len=4096)
    assert r["status"] == 0 and len(r["data"]) == 1024 and r["rflags"] == 2 and r["resid"] == 3072
    c.logout()


def test_reads_longer_than_their_edtl_send_the_first_bytes_of_what_was_read(board):
    # a read of up to 64 KiB EDTL is read straight into its connection's 64 KiB send buffer;
    # one whose CDB asks for more than that buffer holds is read into the core's own and copied
    c = session(board)
    data = os.urandom(1024 * 1024)
    assert c.write(0, 0, data)["status"] == 0
    for blocks, edtl, lba in ((129, 65536, 0), (2048, 65536, 0), (2048, 4096, 8), (128, 65536, 16)):
        cdb = struct.pack(">BBQIBB", 0x88, 0, lba, blocks, 0, 0)
        r = c.command(0, cdb, read_len=edtl)
        assert r["status"] == 0 and r["data"] == data[lba * 512:lba * 512 + edtl]
        assert (r["rflags"], r["resid"]) == ((4, blocks * 512 - edtl) if blocks * 512 > edtl else (0, 0))
        # and a short read after it finds none of the long one's bytes
        r = c.read(0, 2040, 8)
        assert r["status"] == 0 and r["data"] == data[2040 * 512:2048 * 512]
    c.logout()


def test_sense_reaches_initiator_unchanged(board):
    # the same CDB through the console's pass-through and through iSCSI gives the same sense
    cdb = bytes([0x28, 0, 0xFF, 0xFF, 0xFF, 0, 0, 0, 1, 0])   # READ(10) beyond the end
    ref = board.command("cdb", {"port": 0, "lun": 0, "cdb": cdb.hex()})   # (no masks: the console sees LUN 0)
    c = session(board)
    r = c.command(0, cdb, read_len=512)
    assert r["status"] == ref["status"] == 2
    assert r["sense"].hex() == ref["sense"]
    r = c.read(1, 0, 1)   # backup LUN, no snapshot
    ref = board.command("cdb", {"port": 0, "lun": 1, "cdb": struct.pack(">BBQIBB", 0x88, 0, 0, 1, 0, 0).hex()})
    assert r["sense"].hex() == ref["sense"] and I.sense_key(r["sense"])[0] == 2
    c.logout()


def test_cmdsn_outside_window_is_ignored(board):
    c = session(board)
    c.sock.settimeout(0.5)
    for bad in (c.max_cmdsn + 1, c.cmdsn - 1):
        with pytest.raises(socket.timeout):
            c.command(0, tur(), cmdsn=bad)
    c.sock.settimeout(10)
    assert c.command(0, tur())["status"] == 0
    c.logout()


def test_abort_task_of_write_waiting_for_data(board):
    c = session(board, ops={"ImmediateData": "No", "InitialR2T": "Yes"})
    before = c.read(0, 100, 8)["data"]
    itt = c.next_itt()
    b = I.bhs(0x01, 0xA1, 0, itt, [(20, 4096), (24, c.cmdsn), (28, c.expstatsn)])
    b[32:48] = struct.pack(">BBQIBB", 0x8A, 0, 100, 8, 0, 0)
    c.send(b)
    refsn = c.cmdsn
    c.cmdsn += 1
    r2t = c.recv()
    assert r2t.op == 0x31 and r2t.u32(44) == 4096
    assert c.tmf(1, 0, itt, refsn) == 0            # function complete: the write is gone
    assert c.tmf(1, 0, 0x7777, c.cmdsn - 1) == 1   # never existed
    assert c.tmf(5, 0) == 0                         # LOGICAL UNIT RESET
    assert c.tmf(5, 7) == 2                         # no such LUN
    r = c.command(0, tur())                         # the LUN reset's unit attention comes first
    assert r["status"] == 2 and (r["sense"][2] & 0x0F, r["sense"][12], r["sense"][13]) == (6, 0x29, 0x03)
    assert c.read(0, 100, 8)["data"] == before      # nothing of the aborted write landed
    c.logout()


def test_reject_unknown_opcode_and_session_continues(board):
    c = session(board)
    c.send(I.bhs(0x1C, 0x80, 0, c.next_itt(), [(24, c.cmdsn)]), b"junk")
    r = c.recv()
    assert r.op == 0x3F and r.bhs[2] == 0x05 and r.data[0] & 0x3F == 0x1C
    c.send(I.bhs(0x10, 0x80, 0, c.next_itt()))    # SNACK at ERL 0
    r = c.recv()
    assert r.op == 0x3F and r.bhs[2] == 0x04
    assert c.nop(b"still here") == b"still here"
    c.logout()


def test_session_reinstatement_drops_old_connection(board):
    a = session(board)
    b = I.Initiator(*board.portals[0], isid=a.isid)
    b.login()
    a.sock.settimeout(5)
    with pytest.raises((ConnectionError, OSError)):
        a.nop(b"x")
    assert b.command(0, tur())["status"] == 0
    b.logout()


def test_several_sessions_on_both_ports(board):
    errors = []

    def worker(n):
        try:
            c = session(board, port=n % 2, name="iqn.2026-01.test:w%d" % n)
            for k in range(6):
                data = os.urandom(65536 + 512 * k)
                lba = 20000 + n * 1000 + k * 150
                assert c.write(0, lba, data)["status"] == 0
                assert c.read(0, lba, len(data) // 512)["data"] == data
                assert c.nop(b"%d" % k) == b"%d" % k
            c.logout()
        except Exception as e:   # collected and asserted in the main thread
            errors.append((n, repr(e)))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors


# ------------------------------------------------------------------ bad input
def test_garbage_and_vanishing_clients_never_hurt_others(board):
    keep = session(board, port=1)
    before = keep.read(0, 3000, 16)["data"]
    # 1. not iSCSI at all
    s = socket.create_connection(board.portals[0])
    s.sendall(b"GET / HTTP/1.0\r\n\r\n" + os.urandom(100))
    s.settimeout(5)
    try:   # closed at once (reset: our bytes were left unread): the first byte is no login opcode
        assert s.recv(4096) == b""
    except ConnectionResetError:
        pass
    s.close()
    # 2. half a BHS, then gone
    s = socket.create_connection(board.portals[0])
    s.sendall(bytes([0x43, 0x87]) + bytes(20))
    s.close()
    # 3. a write whose data never fully arrives: nothing of it may land
    c = session(board)
    itt = c.next_itt()
    b = I.bhs(0x01, 0x21, 0, itt, [(20, 8192), (24, c.cmdsn), (28, c.expstatsn)])
    b[32:48] = struct.pack(">BBQIBB", 0x8A, 0, 3000, 16, 0, 0)
    c.send(b, os.urandom(4096))                   # immediate half, unsolicited rest never sent
    c.send_raw(I.bhs(0x05, 0x80, 0, itt, [(20, 0xFFFFFFFF), (40, 4096)])[:30])   # torn Data-Out
    c.close()
    # 4. a data segment longer than the target's MaxRecvDataSegmentLength: Reject and close
    c = session(board)
    b = I.bhs(0x40, 0x80, 0, c.next_itt(), [(20, 0xFFFFFFFF), (24, c.cmdsn)])
    b[5:8] = (1 << 24 - 1).to_bytes(3, "big")
    c.send_raw(bytes(b))
    r = c.recv()
    assert r.op == 0x3F and r.bhs[2] == 0x04
    with pytest.raises((ConnectionError, OSError)):
        c.recv()
    # 5. a bad header digest ends that connection only
    c = session(board, digests=True)
    c.hd = False
    b = I.bhs(0x40, 0x80, 0, c.next_itt(), [(20, 0xFFFFFFFF), (24, c.cmdsn)])
    c.send_raw(bytes(b) + b"\0\0\0\0")
    c.sock.settimeout(5)
    with pytest.raises((ConnectionError, OSError)):
        c.recv()
    time.sleep(0.2)
    assert keep.read(0, 3000, 16)["data"] == before
    assert keep.nop(b"alive") == b"alive"
    keep.logout()
    assert board.alive()


def test_logout_response(board):
    c = session(board)
    assert c.logout() == 0
    assert "logout of %s" % I.INITIATOR in board.log()


def test_read_split_in_odd_pdus_with_digests(board):
    # Data-In cut into PDUs of a length that is not a multiple of 4, with header and data digests
    c = I.Initiator(*board.portals[0])
    c.login(digests=True, ops={"MaxRecvDataSegmentLength": "1002"})
    data = os.urandom(256 * 512)
    assert c.write(0, 300, data)["status"] == 0
    r = c.read(0, 300, 256)
    assert r["status"] == 0 and r["data"] == data and r["pdus"] == -(-len(data) // 1002)
    r = c.command(0, bytes([0x12, 0, 0, 0, 37, 0]), read_len=37)   # one PDU, 3 bytes of pad
    assert r["status"] == 0 and len(r["data"]) == 37
    c.logout()


def test_two_sessions_of_one_initiator_are_two_nexuses(board):
    # RFC 7143: the ISID tells sessions of one initiator name apart; a LUN reset's unit attention
    # is reported once to each of them
    a = I.Initiator(*board.portals[0], name="iqn.2026-11.org.example:twin")
    b = I.Initiator(*board.portals[0], name="iqn.2026-11.org.example:twin")
    a.login()
    b.login()
    for c in (a, b):
        c.command(0, tur())                        # each nexus known to the LU
    assert a.tmf(5, 0) == 0
    for c in (a, b):
        r = c.command(0, tur())
        assert r["status"] == 2 and (r["sense"][12], r["sense"][13]) == (0x29, 0x03)
        assert c.command(0, tur())["status"] == 0
    a.logout()
    b.logout()
