"""A real host on the dual-active pair: a Linux guest (QEMU, tests/guest.py) attaches LUN 0 through
host port 0 of each controller (two SCSI disks, one per path), its scsi_dh_alua reads the pair's
REPORT TARGET PORT GROUPS, and a dm-multipath device with the `alua` hardware handler and one
priority group per path (built with dmsetup from what the guest finds in /sys: the guest has no
multipath-tools) carries an ext4 file system. The guest keeps writing while the host kills
controller 0 (kill -9); controller 1 takes the drive and controller 0's portal addresses; the
writes go on, the file system unmounts, fscks clean and reads back every file. What Linux sees is
recorded in firmware/endpoints/iscsi/README.md ("A Linux host", "On a pair")."""
import time

import pytest

import guest as G
import test_iscsi_initiator as I
from harness import Pair

INITIATOR = "iqn.2026-01.test:linux-guest-multipath"
# scsi_dh_alua first: loaded before the disks are scanned, it attaches to each TPGS disk at probe
MODULES = ("scsi_dh_alua", "dm_multipath", "dm_round_robin") + G.DISK_MODULES
TOOLS = G.DISK_TOOLS + ("dmsetup",)

SCENARIO = r"""
status() { rc=0; "$@" > /tmp/out 2>&1 || rc=$?; echo "$rc $(tr '\n' ' ' < /tmp/out)"; }
alua() { for n in $A $B; do echo "$(cat /sys/block/$n/device/dh_state)/$(cat /sys/block/$n/device/access_state)"; done; }
A=$(disk 0); A=${A#/dev/}
B=$(disk 1); B=${B#/dev/}
info alua_before $(alua)
# the optimized path's group first, as multipathd's group_by_prio with prio alua orders them
first=$A; second=$B
grep -q "active/optimized" /sys/block/$B/device/access_state && { first=$B; second=$A; }
size=$(cat /sys/block/$A/size)
dmsetup create --noudevsync mp --table "0 $size multipath 0 1 alua 2 1 \
    round-robin 0 1 1 $(cat /sys/block/$first/dev) 1 round-robin 0 1 1 $(cat /sys/block/$second/dev) 1"
M=/dev/$(for d in /sys/block/dm-*; do [ "$(cat $d/dm/name)" = mp ] && echo ${d##*/}; done)
info table $(dmsetup table mp)
mke2fs -q -t ext4 -F $M
mount -t ext4 $M /mnt
# the writer: a file at a time, each synced, its checksum kept aside
writer() {
    i=0
    while [ ! -e /tmp/stop ]; do
        i=$((i + 1))
        dd if=/dev/urandom of=/mnt/w$i bs=4k count=16 2>/dev/null
        sync
        md5sum /mnt/w$i >> /tmp/sums
        echo $i > /tmp/written
    done
}
writer &
until [ -s /tmp/written ] && [ $(cat /tmp/written) -ge 5 ]; do sleep 0.1; done
info paths_before $(dmsetup status mp)
echo "raidboard-test: controller 0 killed" > /dev/kmsg
host kill-controller-0
at=$(cat /tmp/written)
until [ $(cat /tmp/written) -ge $((at + 10)) ]; do sleep 0.1; done
touch /tmp/stop
wait
info written $(cat /tmp/written) at_kill $at
info paths_after $(dmsetup status mp)
info dmesg_after_kill $(dmesg | sed -n '/raidboard-test/,$p' | sed 's/^\[[^]]*\] //' | tr '\n' '|')
# a read through each path: the one that sent nothing since the failover hears 2A/06 and
# scsi_dh_alua asks REPORT TARGET PORT GROUPS again
for n in $A $B; do dd if=/dev/$n of=/dev/null bs=4k count=1 iflag=direct 2>/dev/null; done
t=0
until grep -q "active/optimized" /sys/block/$B/device/access_state || [ $t -ge 100 ]; do
    t=$((t + 1)); sleep 0.1
done
info alua_after $(alua)
umount /mnt
info fsck $(status e2fsck -fn $M)
mount -t ext4 -o ro $M /mnt
info files_bad $(md5sum -c /tmp/sums 2>/dev/null | grep -vc ': OK$')
info files $(wc -l < /tmp/sums)
umount /mnt
info dmesg_alua $(dmesg | grep -i "alua" | sed 's/^\[[^]]*\] //' | tr '\n' '|')
info dmesg_mpath $(dmesg | grep -i "multipath\|device-mapper" | sed 's/^\[[^]]*\] //' | tr '\n' '|')
"""


@pytest.fixture(scope="module")
def kit():
    return G.need_guest(TOOLS)


def test_linux_multipath_over_the_pair_survives_a_killed_controller(kit, tmp_path):
    started = time.monotonic()
    pair = Pair(tmp_path)
    try:
        urls = ["iscsi://%s:%d/%s/0" % (pair.portal(n, 0) + (I.IQN,)) for n in (0, 1)]
        g = G.Guest(kit, tmp_path, urls, SCENARIO, INITIATOR, modules=MODULES, tools=TOOLS)
        try:
            g.wait("kill-controller-0")
            pair.kill(0)
            pair.wait(1, lambda s: s["serving"] == [0, 1], "serving both")
            g.go()
            assert g.finish() == 0, g.tail()
        finally:
            g.close()
    finally:
        pair.kill()
    info = g.info
    for key in sorted(info):
        print("LINUX-GUEST-PAIR %s %s" % (key, info[key]))
    print("LINUX-GUEST-PAIR seconds %.0f" % (time.monotonic() - started))
    # scsi_dh_alua took both disks and read the groups: controller 0's port optimized, the
    # dm table's first priority group; after the failover controller 1 serves both groups
    assert info["alua_before"].split() == ["alua/active/optimized", "alua/active/non-optimized"]
    assert " alua " in info["table"]
    assert info["alua_after"].split() == ["alua/active/optimized", "alua/active/optimized"]
    # the file system was written through the failover and is intact
    written, _, at = info["written"].split()
    assert int(written) >= int(at) + 10
    assert info["fsck"].startswith("0 "), info["fsck"]
    assert info["files"] == written and info["files_bad"] == "0"
