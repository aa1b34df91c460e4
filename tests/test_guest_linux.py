"""A real host on the board: a Linux guest (QEMU, tests/guest.py) whose own kernel — sd, ext4 —
sends its CDBs to the board through QEMU's libiscsi `scsi-block` passthrough.

Simplex board: the guest makes an ext4 file system on the primary LUN, writes files, freezes it;
the host initiates the snapshot with the CLI; the guest goes on writing; the host plugs the backup
LUN in (QEMU opens a LUN only once it is ready), which fscks clean, shows the files as of initiate
and refuses writes (Linux takes the board's Write Protect bit from MODE SENSE). What Linux sends and
sees is recorded in firmware/endpoints/iscsi/README.md ("A Linux host"). Needs qemu-system-x86 and the Debian package mirror once (tests/guest.py caches the kit)."""
import time

import pytest

import guest as G
from test_cli import rbj

INITIATOR = "iqn.2026-01.test:linux-guest"

SCENARIO = r"""
queue() {
    n=${2#/dev/}
    info queue_$1 $n max_sectors_kb=$(cat /sys/block/$n/queue/max_sectors_kb) \
        max_hw_sectors_kb=$(cat /sys/block/$n/queue/max_hw_sectors_kb) ro=$(cat /sys/block/$n/ro)
}
status() { rc=0; "$@" > /tmp/out 2>&1 || rc=$?; echo "$rc $(tr '\n' ' ' < /tmp/out)"; }

P=$(disk 0)
queue primary $P
mke2fs -q -t ext4 -F $P
mkdir /mnt/p /mnt/b
mount -t ext4 $P /mnt/p
echo "A as of initiate" > /mnt/p/A
dd if=/dev/urandom of=/mnt/p/big bs=64k count=32 2>/dev/null
info big_at_initiate $(md5sum < /mnt/p/big)
sync
fsfreeze --freeze /mnt/p
host initiate
fsfreeze --unfreeze /mnt/p
echo "A after initiate" > /mnt/p/A
echo "B after initiate" > /mnt/p/B
dd if=/dev/urandom of=/mnt/p/big bs=64k count=16 conv=notrunc 2>/dev/null
info big_now $(md5sum < /mnt/p/big)
sync
host attach-backup
wait_disk 1
S=$(disk 1)
queue backup $S
info backup_fsck $(status e2fsck -fn $S)
mount -t ext4 -o ro,noload $S /mnt/b
info backup_files $(ls /mnt/b)
info backup_A $(cat /mnt/b/A)
info backup_big $(md5sum < /mnt/b/big)
umount /mnt/b
info backup_write $(status dd if=/dev/zero of=$S bs=4k count=1 oflag=direct)
info backup_mode_sense $(dmesg | grep "${S#/dev/}.*Write Protect")
info primary_A $(cat /mnt/p/A)
umount /mnt/p
info primary_fsck $(status e2fsck -fn $P)
"""


@pytest.fixture(scope="module")
def kit():
    return G.need_guest()


def test_linux_guest_snapshot_on_simplex_board(kit, board, tmp_path):
    started = time.monotonic()
    lun = "iscsi://%s:%d/%s/%%d" % (board.portals[0] + (board.iqn,))
    g = G.Guest(kit, tmp_path, [lun % 0], SCENARIO, INITIATOR)
    try:
        g.wait("initiate")
        assert "generation" in rbj(board, "snapshot", "start", "sd0")
        g.go()
        g.wait("attach-backup")
        assert g.attach(lun % 1, readonly=True) == 1
        g.go()
        assert g.finish() == 0, g.tail()
    finally:
        g.close()
    info = g.info
    for key in sorted(k for k in info if k.startswith("queue_")):
        print("LINUX-GUEST %s %s" % (key, info[key]))
    print("LINUX-GUEST seconds %.0f" % (time.monotonic() - started))
    # Linux sizes its requests by the board's Block Limits page: up to the optimal transfer length,
    # the most whole stripes of SD0 (RAID 5 of 4 disks, 64 KiB stripes) in 1 MiB, 960 KiB
    # (and the backup LUN, a LUN of the RAID 1 log drive, by its 1 MiB: one stripe unit a row)
    assert "max_sectors_kb=960 " in info["queue_primary"], info["queue_primary"]
    assert "max_sectors_kb=1024 " in info["queue_backup"], info["queue_backup"]
    # the backup LUN: the file system as it was at initiate, clean
    assert info["backup_fsck"].startswith("0 "), info["backup_fsck"]
    assert info["backup_files"].split() == ["A", "big", "lost+found"]
    assert info["backup_A"] == "A as of initiate"
    assert info["backup_big"] == info["big_at_initiate"] != info["big_now"]
    # the primary went on
    assert info["primary_A"] == "A after initiate"
    assert info["primary_fsck"].startswith("0 "), info["primary_fsck"]
    # Linux took the board's Write Protect bit (MODE SENSE) and refuses writes to the backup LUN
    assert "Write Protect is on" in info["backup_mode_sense"]
    assert info["queue_backup"].endswith("ro=1")
    assert not info["backup_write"].startswith("0 ") and "Read-only file system" in info["backup_write"]
    # the guest's writes after the initiate went through the snapshot: chunks copied to the log
    status = rbj(board, "snapshot", "status")
    assert status["state"] == "ACTIVE" and status["exceptions"] > 0
