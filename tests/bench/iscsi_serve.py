# A board's iSCSI portal alone, for transport A/B runs (iscsi_ab.py): boots a controller from the
# firmware tree in RB_FW (default: this repository's) with 3 x 128 MiB disks and serves until
# killed. Prints "PORT <tcp port> <iqn>". Run on micropython with RB_TMP and RB_ROOT set.
import sys
import os
import asyncio

HERE = __file__.rsplit("/", 1)[0]
sys.path.insert(0, HERE + "/../firmware")
sys.path.insert(0, os.getenv("RB_FW") or HERE + "/../../firmware")
import fw
from endpoints.iscsi import target as iscsi


async def main():
    ctl = fw.boot(fw.tmpdir("serve"), fw.small_board(disk_mb=128, buffer_kb=16384))
    port = await iscsi.start(ctl, 0, "127.0.0.1", 0)
    print("PORT", port, ctl.iqn)
    while True:
        await asyncio.sleep(3600)


asyncio.run(main())
