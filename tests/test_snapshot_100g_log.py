"""A 100 GiB log beside a 1 TiB primary on the default board (boards/dac960sx.json: its heap, a
quarter of it for the exception index): the firmware indexes the whole log, and a snapshot of the
1 TiB primary keeps chunks first-written all over it, read back through the backup LUN as they were.
The disks are sparse files: only what is written takes space."""
import json
import struct

from harness import ROOT, Board, write_board

LOG_SLOTS_100G = 1637999        # 64 KiB chunks on a 100 GiB log, beside the header and records
CHUNK = 128                     # blocks of a 64 KiB chunk


def cdb(board, lun, c, data=b""):
    r = board.command("cdb", {"port": 0, "lun": lun, "cdb": c.hex(), "data": data.hex()})
    assert r["status"] == 0, r
    return bytes.fromhex(r["data"])


def test_a_100_gib_log_is_indexed_whole_and_serves_random_first_writes(tmp_path):
    default = json.loads((ROOT / "boards" / "dac960sx.json").read_text())
    board_file, d = write_board(tmp_path, populated_slots=2, disk_mb=1 << 20,
                                heap_kb=default["heap_kb"], buffer_kb=default["buffer_kb"])
    state = tmp_path / "state"
    state.mkdir()
    b = Board(board_file, state, d["heap_kb"])
    try:
        b.command("sd_create", {"sd": 0, "raid": "JBOD", "slots": [0], "mb": 1 << 20})
        b.command("sd_create", {"sd": 1, "raid": "JBOD", "slots": [1], "mb": 100 << 10})
        b.command("log_set", {"sd": 1})
        b.command("lun_map", {"port": 0, "lun": 0, "sd": 0})
        b.command("lun_map", {"port": 0, "lun": 1, "sd": 1})
        b.restart()              # the index is sized at boot, from the heap the board was given
        assert "MEMORY LIMITS" not in b.log()
        st = b.command("snapshot_status")
        assert st["capacity"] == LOG_SLOTS_100G
        old = bytes(range(256)) * 2
        chunks = [(k * 2654435761) % (1 << 24) for k in range(40)]     # all over the 1 TiB
        for c in chunks:
            cdb(b, 0, struct.pack(">BBIBHB", 0x2A, 0, c * CHUNK, 0, 1, 0), old)
        b.command("snapshot_start", {"sd": 0})
        for k, c in enumerate(chunks):
            cdb(b, 0, struct.pack(">BBIBHB", 0x2A, 0, c * CHUNK, 0, 1, 0), bytes([k]) * 512)
        assert b.command("snapshot_status")["exceptions"] == len(chunks)
        for c in chunks:
            assert cdb(b, 1, struct.pack(">BBIBHB", 0x28, 0, c * CHUNK, 0, 1, 0)) == old
        b.command("snapshot_stop")
    finally:
        b.kill()
