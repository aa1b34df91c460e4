"""Fuzz the board's iSCSI PDU parser with random and mutated PDUs, in the login phase and in the
full feature phase. After every batch the board must still be running and a clean session must
still work. The number of PDUs tried is printed (pytest -s shows it; it is also in the report)."""
import os
import random
import struct

import pytest

import test_iscsi_initiator as I

ROUNDS = int(os.environ.get("RB_FUZZ_ROUNDS", "300"))


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    b = I.BootedBoard.boot(tmp_path_factory.mktemp("fuzz"))
    yield b
    b.stop()


def seeds(c):
    """Valid full-feature PDUs (header, data) for this session's current sequence numbers."""
    sn, es = c.cmdsn, c.expstatsn
    out = []
    b = I.bhs(0x40, 0x80, 0, 11, [(20, 0xFFFFFFFF), (24, sn), (28, es)])
    out.append((b, b"ping"))
    b = I.bhs(0x01, 0xC1, 0, 12, [(20, 4096), (24, sn), (28, es)])
    b[32:48] = struct.pack(">BBQIBB", 0x88, 0, 10, 8, 0, 0)
    out.append((b, b""))
    b = I.bhs(0x01, 0xA1, 0, 13, [(20, 8192), (24, sn), (28, es)])
    b[32:48] = struct.pack(">BBQIBB", 0x8A, 0, 5000, 16, 0, 0)
    out.append((b, os.urandom(4096)))
    b = I.bhs(0x05, 0x80, 0, 13, [(20, 0xFFFFFFFF), (28, es), (36, 0), (40, 4096)])
    out.append((b, os.urandom(4096)))
    b = I.bhs(0x42, 0x81, 0, 14, [(20, 13), (24, sn), (28, es), (32, sn)])
    out.append((b, b""))
    b = I.bhs(0x04, 0x80, 0, 15, [(20, 0xFFFFFFFF), (24, sn), (28, es)])
    out.append((b, I.text([("SendTargets", "All")])))
    b = I.bhs(0x46, 0x80, 0, 16, [(24, sn), (28, es)])
    out.append((b, b""))
    b = I.bhs(0x01, 0x81, 0, 17, [(24, sn), (28, es)])
    b[32:38] = bytes([0x20, 0, 0x60, 0, 0, 0])   # the vendor opcode, mangled below
    out.append((b, b""))
    return out


def login_seed(c):
    b = I.bhs(0x43, 0x87, 0, 1, [(24, 0), (28, 0)])
    b[8:14] = c.isid
    return b, I.text([("InitiatorName", I.INITIATOR), ("TargetName", I.IQN),
                      ("SessionType", "Normal"), ("MaxRecvDataSegmentLength", "65536")])


def mutate(rnd, hdr, data):
    hdr = bytearray(hdr)
    data = bytearray(data)
    kind = rnd.randrange(8)
    if kind == 0:        # flip bits in the header
        for _ in range(rnd.randrange(1, 6)):
            hdr[rnd.randrange(48)] ^= 1 << rnd.randrange(8)
    elif kind == 1:      # interesting values in a random 32-bit field
        o = rnd.randrange(0, 45)
        struct.pack_into(">I", hdr, o, rnd.choice([0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF,
                                                   0xFFFFFFFE, rnd.getrandbits(32)]))
    elif kind == 2:      # opcode sweep
        hdr[0] = (hdr[0] & 0x40) | rnd.randrange(64)
    elif kind == 3:      # garbage data
        data = bytearray(os.urandom(rnd.randrange(0, 600)))
    elif kind == 4:      # lengths that lie
        hdr[4] = rnd.randrange(256)
    elif kind == 5:
        hdr[5:8] = rnd.getrandbits(24).to_bytes(3, "big")
    elif kind == 6:      # text with broken key=value syntax
        data = bytearray(rnd.choice([b"=\0", b"A=B", b"\0\0\0", b"k" * 70 + b"=v\0",
                                     b"HeaderDigest=CRC32C,CRC32C,\xff\0", b"X=" + b"y" * 9000 + b"\0"]))
    else:                # fully random header
        hdr = bytearray(os.urandom(48))
    return hdr, data


def frame(hdr, data, honest_length):
    hdr = bytearray(hdr)
    if honest_length:
        hdr[5:8] = len(data).to_bytes(3, "big")
    return bytes(hdr) + bytes(data) + b"\0" * (-len(data) % 4)


def drain(s):
    s.settimeout(0.02)
    try:
        while s.recv(65536):
            pass
    except OSError:
        pass


def test_fuzz_pdus(board):
    rnd = random.Random(int(os.environ.get("RB_FUZZ_SEED", "7")))
    tried = 0
    for rnd_no in range(ROUNDS):
        full = rnd.random() < 0.7
        try:
            c = I.Initiator(*board.portals[rnd_no % 2], timeout=5)
            if full:
                c.login(ops={"ImmediateData": "Yes", "InitialR2T": "No"})
                pool = seeds(c)
            else:
                pool = [login_seed(c)]
            for _ in range(rnd.randrange(1, 5)):
                hdr, data = rnd.choice(pool)
                if rnd.random() < 0.85:
                    hdr, data = mutate(rnd, hdr, data)
                wire = frame(hdr, data, rnd.random() < 0.7)
                if rnd.random() < 0.15:
                    wire = wire[:rnd.randrange(len(wire))]   # torn PDU, then the client vanishes
                    c.send_raw(wire)
                    tried += 1
                    break
                c.send_raw(wire)
                tried += 1
            drain(c.sock)
        except OSError:
            pass   # the target may close on us: that is an allowed answer
        finally:
            c.close()
        if rnd_no % 50 == 49:
            assert board.alive(), board.log()[-3000:]
            ok = I.Initiator(*board.portals[0])
            ok.login()
            assert ok.nop(b"after %d" % tried) == b"after %d" % tried
            ok.logout()
    print("iSCSI fuzz: %d PDUs tried in %d connections" % (tried, ROUNDS))
    assert board.alive()
    ok = I.Initiator(*board.portals[1])
    ok.login()
    assert ok.command(0, bytes(6))["status"] == 0
    ok.logout()
    log = board.log()
    assert "Traceback" not in log and "internal error" not in log
