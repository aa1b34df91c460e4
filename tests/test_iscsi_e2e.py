"""End to end over iSCSI only: the snapshot backup of the seed seen by initiators.

Small board (64 MiB disks): primary LUN 0 = RAID 5 of 3 x 64 MiB, backup LUN 1 over the RAID 1 log
drive (about 63 MiB of chunks). Everything here goes through the host ports: data, the vendor
direct commands (opcode 0x20) that initiate and terminate the snapshot, and the sense data."""
import os
import random
import struct
import subprocess

import pytest

import test_iscsi_initiator as I
from test_iscsi import need_tool

INITIATE = bytes([0x20, 0, 0x60, 0, 0, 0, 0, 0, 0, 0])
TERMINATE = bytes([0x20, 0, 0x61, 0, 0, 0, 0, 0, 0, 0])
MIB = 1 << 20


@pytest.fixture
def iboard(board):
    # conftest's default board (64 MiB disks, factory layout) with iSCSI helpers
    return I.BootedBoard(board)


def blocks(c, lun):
    r = c.command(lun, bytes([0x25]) + bytes(9), read_len=8)
    assert r["status"] == 0, r
    return struct.unpack(">I", r["data"][:4])[0] + 1


def read_all(c, lun, nbytes, step=MIB):
    out = bytearray()
    for off in range(0, nbytes, step):
        r = c.read(lun, off // 512, min(step, nbytes - off) // 512)
        assert r["status"] == 0, (off, I.sense_key(r["sense"]))
        out += r["data"]
    return bytes(out)


def write_all(c, lun, off, data, step=MIB):
    for o in range(0, len(data), step):
        r = c.write(lun, (off + o) // 512, data[o:o + step])
        assert r["status"] == 0, (o, I.sense_key(r["sense"]))


def test_snapshot_over_iscsi_only(iboard):
    board = iboard
    rnd = random.Random(5)
    c = I.Initiator(*board.portals[0])
    c.login()
    size = blocks(c, 0) * 512
    assert size == 192 * MIB
    # a known image over the whole primary
    image = bytearray(rnd.randbytes(size))
    write_all(c, 0, 0, image)
    # initiate through the vendor direct command on the primary LUN
    r = c.command(0, INITIATE)
    assert r["status"] == 0, I.sense_key(r["sense"])
    # overwrite random regions of the primary (well inside the log's capacity)
    new = bytearray(image)
    for _ in range(40):
        n = rnd.randrange(1, 129) * 4096
        off = rnd.randrange(0, size - n) // 4096 * 4096
        d = rnd.randbytes(n)
        write_all(c, 0, off, d, step=256 * 1024)
        new[off:off + n] = d
    # the backup LUN (through the other host port, another session) shows the original
    b = I.Initiator(*board.portals[1], name="iqn.2026-01.test:backup-host")
    b.login()
    assert blocks(b, 1) * 512 == size   # the primary's geometry
    assert read_all(b, 1, size) == image
    assert read_all(c, 0, size) == new
    r = b.write(1, 0, bytes(512))
    assert r["status"] == 2 and I.sense_key(r["sense"])[0] == 7   # DATA PROTECT
    # overflow the log: first writes to more chunks than it holds
    for off in range(0, size, MIB):
        r = c.write(0, off // 512, rnd.randbytes(MIB))
        assert r["status"] == 0, I.sense_key(r["sense"])   # the primary keeps working
    r = b.read(1, 0, 8)
    assert r["status"] == 2 and I.sense_key(r["sense"]) == (0x09, 0x82, 0x00)   # vendor Log Overflow
    r = b.read(1, 0, 8)
    assert r["status"] == 2 and I.sense_key(r["sense"])[0] == 2   # then NOT READY
    r = c.command(0, TERMINATE)   # the overflow already ended it: Table 4 "not in progress"
    assert r["status"] == 2 and I.sense_key(r["sense"]) == (0x09, 0x81, 0x0C)
    b.logout()
    c.logout()


def test_qemu_img_copies_onto_primary_and_reads_backup(iboard, tmp_path):
    board = iboard
    need_tool("qemu-img")
    out = subprocess.run(["qemu-img", "--help"], capture_output=True, text=True).stdout
    if "iscsi" not in out:
        msg = "qemu-img without the iscsi driver (Debian qemu-block-extra)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    img = tmp_path / "image.raw"
    data = os.urandom(48 * MIB)
    img.write_bytes(data)
    subprocess.run(["qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", str(img), board.url(0)],
                   check=True, timeout=120, capture_output=True)
    c = I.Initiator(*board.portals[0])
    c.login()
    assert c.command(0, INITIATE)["status"] == 0
    write_all(c, 0, 16 * MIB, os.urandom(4 * MIB))   # the primary moves on
    back = tmp_path / "backup.raw"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "raw", board.url(1, port=1), str(back)],
                   check=True, timeout=120, capture_output=True)
    got = back.read_bytes()
    assert len(got) == 192 * MIB
    assert got[:len(data)] == data and got[len(data):].count(0) == len(got) - len(data)
    primary = read_all(c, 0, 20 * MIB)
    assert primary[:16 * MIB] == data[:16 * MIB] and primary[16 * MIB:] != data[16 * MIB:20 * MIB]
    assert c.command(0, TERMINATE)["status"] == 0
    c.logout()
