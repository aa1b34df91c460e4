# Tables 1-4: the initiate and terminate direct commands, every row, byte for byte, through the
# SCSI core as a transport calls it.
import fw
from scsi import vendor

PRIMARY, BACKUP = 0, 1
INITIATE = fw.cdb(0x20, 0, 0x60, 0, 0, 0, 0, 0, 0, 0)
TERMINATE = fw.cdb(0x20, 0, 0x61, 0, 0, 0, 0, 0, 0, 0)


def sense(sk, asc, ascq):
    # the fixed-format sense data the tables describe: response code 0x70, 18 bytes
    s = bytearray(18)
    s[0], s[2], s[7], s[12], s[13] = 0x70, sk, 10, asc, ascq
    return bytes(s)


def expect(ctl, lun, c, status, sk=None, asc=None, ascq=None):
    st, sn, _ = fw.run(ctl, lun, c)
    assert st == status, (st, sn)
    if status == 0:
        assert sn is None
    else:
        assert sn == sense(sk, asc, ascq), (sn.hex(), (sk, asc, ascq))


def test_dcmd_codes_are_the_documented_values():
    assert vendor.OPCODE == 0x20
    assert vendor.DCMD_SNAPSHOT_INITIATE == 0x60
    assert vendor.DCMD_SNAPSHOT_TERMINATE == 0x61
    assert vendor.DCMD_LOP_START == 0x44 and vendor.DCMD_LOP_STATUS == 0x43
    assert vendor.ASC_LOG_OVERFLOW == 0x82


def test_table2_good_completion_snapshot_ready():
    ctl = fw.boot()
    expect(ctl, PRIMARY, INITIATE, 0x00)
    assert ctl.command("snapshot_status")["state"] == "ACTIVE"


def test_table2_illegal_cdb_for_each_reserved_byte_and_control():
    ctl = fw.boot()
    for i in (1, 3, 4, 5, 6, 7, 8, 9):
        c = bytearray(INITIATE)
        c[i] = 0x01
        expect(ctl, PRIMARY, bytes(c), 0x02, 0x05, 0x24, 0x00)
    assert ctl.command("snapshot_status")["state"] == "IDLE"
    # the LUN field (byte 1, bits 7-5) is ignored
    c = bytearray(INITIATE)
    c[1] = 0xE0
    expect(ctl, PRIMARY, bytes(c), 0x00)


# rows 0x06, 0x0C, 0x0D (rebuild, initialization, consistency check in progress) are produced by
# the real long operations in test_lop.py


def test_table2_snapshot_already_in_progress():
    ctl = fw.boot()
    expect(ctl, PRIMARY, INITIATE, 0x00)
    expect(ctl, PRIMARY, INITIATE, 0x02, 0x09, 0x81, 0x10)
    # port 1 maps the same primary: one snapshot board-wide
    st, sn, _ = fw.run(ctl, PRIMARY, INITIATE, port=1)
    assert sn == sense(0x09, 0x81, 0x10)


def test_table2_log_lun_not_defined():
    ctl = fw.boot()
    for port in (0, 1):
        ctl.command("lun_unmap", {"port": port, "lun": 1})
    ctl.command("log_clear", {"sd": 1})
    expect(ctl, PRIMARY, INITIATE, 0x02, 0x09, 0x81, 0x19)


def test_table2_command_issued_to_backup_lun():
    ctl = fw.boot()
    expect(ctl, BACKUP, INITIATE, 0x02, 0x09, 0x81, 0x20)
    expect(ctl, PRIMARY, INITIATE, 0x00)
    expect(ctl, BACKUP, INITIATE, 0x02, 0x09, 0x81, 0x20)


def test_table4_good_completion_from_primary_lun():
    ctl = fw.boot()
    expect(ctl, PRIMARY, INITIATE, 0x00)
    expect(ctl, PRIMARY, TERMINATE, 0x00)
    assert ctl.command("snapshot_status")["state"] == "IDLE"


def test_table4_good_completion_from_backup_lun():
    ctl = fw.boot()
    expect(ctl, PRIMARY, INITIATE, 0x00)
    expect(ctl, BACKUP, TERMINATE, 0x00)
    # the backup LUN is not ready again once the snapshot has ended
    expect(ctl, BACKUP, fw.read10(0, 1), 0x02, 0x02, 0x04, 0x03)


def test_table4_illegal_cdb():
    ctl = fw.boot()
    expect(ctl, PRIMARY, INITIATE, 0x00)
    for i in (1, 3, 4, 5, 6, 7, 8, 9):
        c = bytearray(TERMINATE)
        c[i] = 0x80 if i != 1 else 0x10
        expect(ctl, PRIMARY, bytes(c), 0x02, 0x05, 0x24, 0x00)
    assert ctl.command("snapshot_status")["state"] == "ACTIVE"


def test_table4_snapshot_not_in_progress_reuses_ascq_0c():
    ctl = fw.boot()
    expect(ctl, PRIMARY, TERMINATE, 0x02, 0x09, 0x81, 0x0C)
    expect(ctl, BACKUP, TERMINATE, 0x02, 0x09, 0x81, 0x0C)


def test_unknown_dcmd_is_invalid_field_in_cdb():
    ctl = fw.boot()
    st, sn, _ = fw.run(ctl, PRIMARY, fw.cdb(0x20, 0, 0x7F, 0, 0, 0, 0, 0, 0, 0))
    assert st == 2 and fw.sense3(sn) == (0x05, 0x24, 0x00) and sn[15] == 0xC0 and sn[17] == 2


def test_fig4_command_table_names_the_four_direct_commands():
    names = sorted(v[0] for v in vendor.COMMANDS.values())
    assert names == ["GET LONG OPERATION STATUS", "SNAPSHOT INITIATE", "SNAPSHOT TERMINATE",
                     "START LONG OPERATION"]


def test_a_primary_with_more_chunks_than_the_index_can_name_is_not_snapshotted():
    # 3 TiB of 4 KiB chunks (sparse 1 TiB disks, the factory's RAID 5): past the index's reach
    ctl = fw.boot(b=fw.small_board(disk_mb=1 << 20))
    ctl.command("log_set", {"sd": 1, "chunk_kb": 4})
    assert ctl.drives[0].blocks // 8 > ctl.engine.index.max_chunks
    expect(ctl, PRIMARY, INITIATE, 2, 0x02, 0x04, 0x03)
    assert any("MORE CHUNKS THAN THE INDEX CAN NAME" in e["text"] for e in ctl.events.recent(5))
    assert ctl.command("snapshot_status")["state"] == "IDLE"
    ctl.command("log_set", {"sd": 1, "chunk_kb": 64})           # 50 M chunks of 64 KiB: named
    expect(ctl, PRIMARY, INITIATE, 0)
