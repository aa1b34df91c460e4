"""A snapshot on a real board through what may happen to it: a write-back log drive across a clean
stop (as `raidboard stop` does it) and a kill -9, and the log drive failing under it. Set-up through
the console (the `raidboard` CLI), data and the snapshot through iSCSI."""
import random

from raidboard.boot import stop_pid

import test_iscsi_initiator as I
from test_cli import rb, rbj
from test_iscsi_e2e import INITIATE, MIB, read_all, write_all

TUR = bytes(6)
SIZE = 4 * MIB


def session(board):
    c = I.Initiator(*board.portals[0])
    c.login()
    return c


def sense(r):
    return I.sense_key(r["sense"]) if r["status"] else None


def overwrite(c, rnd, image, n=12):
    for _ in range(n):
        k = rnd.randrange(1, 33) * 4096
        off = rnd.randrange(0, SIZE - k) // 4096 * 4096
        d = rnd.randbytes(k)
        write_all(c, 0, off, d)
        image[off:off + k] = d


def snapshot_of_an_image(board, rnd):
    c = session(board)
    image = bytearray(rnd.randbytes(SIZE))
    write_all(c, 0, 0, image)
    assert sense(c.command(0, INITIATE)) is None
    new = bytearray(image)
    overwrite(c, rnd, new)
    c.logout()
    return bytes(image), new


def assert_snapshot(board, image, primary):
    assert rbj(board, "snapshot", "status")["state"] == "ACTIVE"
    c = session(board)
    assert read_all(c, 1, SIZE) == image
    assert read_all(c, 0, SIZE) == primary
    c.logout()


def test_write_back_log_keeps_the_snapshot_across_a_clean_stop_and_a_kill(board):
    rnd = random.Random(9)
    rb(board, "sd", "policy", "sd1", "wb")
    assert {d["sd"]: d for d in rbj(board, "sd", "list")["drives"]}[1]["wb"]
    image, new = snapshot_of_an_image(board, rnd)
    stop_pid(board.proc.pid, proc=board.proc)         # what `raidboard stop` does: SIGINT
    board.proc.stdout.close()
    board.boot()
    assert_snapshot(board, image, new)
    c = session(board)
    overwrite(c, rnd, new)
    c.logout()
    board.kill()
    board.boot()
    assert_snapshot(board, image, new)
    assert "UNREADABLE" not in board.log() and "FIRMWARE FAULT" not in board.log()


def test_a_failed_log_drive_ends_the_snapshot_as_a_log_overflow(board):
    rnd = random.Random(10)
    snapshot_of_an_image(board, rnd)
    log = {d["sd"]: d for d in rbj(board, "sd", "list")["drives"]}[1]
    for m in log["members"]:
        rb(board, "disk", "fail", m["slot"], "--force")
    assert rbj(board, "snapshot", "status")["state"] == "OVERFLOWED"
    c = session(board)
    assert sense(c.write(0, 0, rnd.randbytes(64 * 1024))) is None    # the primary carries on
    assert sense(c.command(1, TUR)) == (0x09, 0x82, 0x00)            # scsi/vendor.md: once,
    assert sense(c.command(1, TUR)) == (0x02, 0x04, 0x03)            # then NOT READY
    assert sense(c.read(1, 0, 8)) == (0x02, 0x04, 0x03)
    c.logout()
    assert "FIRMWARE FAULT" not in board.log()


def test_the_cli_tells_how_a_snapshot_ended_after_its_log_failed(board):
    snapshot_of_an_image(board, random.Random(11))
    log = {d["sd"]: d for d in rbj(board, "sd", "list")["drives"]}[1]
    for m in log["members"]:
        rb(board, "disk", "fail", m["slot"], "--force")
    st = rbj(board, "snapshot", "status")
    assert st["state"] == "OVERFLOWED"
    assert st["last"]["how"] == "log failed" and st["last"]["reason"] == "LOG SD1 OFFLINE"
    assert st["last"]["primary"] == 0 and st["last"]["exceptions"] > 0
    text, _ = rb(board, "snapshot", "status")
    assert "0% used" not in text and "ended: log failed (LOG SD1 OFFLINE)" in text, text
    # host/README.md exit codes: 9, the watched snapshot ended by overflow or a failed log
    _, err = rb(board, "snapshot", "watch", "--count", "1", rc=10)
    assert "log failed" in err
    # the backup LUN's one report of it, decoded by name; a TUR from any initiator keeps the outcome
    text, _ = rb(board, "cdb", "0/1", "00 00 00 00 00 00", rc=6)
    assert "0x82/0x00 Log Overflow" in text, text
    st = rbj(board, "snapshot", "status")
    assert st["state"] == "IDLE" and st["last"]["how"] == "log failed"
    text, _ = rb(board, "snapshot", "status")
    assert "last snapshot: primary sd0, log sd1, ended: log failed" in text, text
    rb(board, "snapshot", "watch", "--count", "1", rc=10)
    _, err = rb(board, "snapshot", "stop", "--force", rc=1)
    assert "NO_SNAPSHOT" in err and "already ended by a failure of its log drive (LOG SD1 OFFLINE) at " in err, err
