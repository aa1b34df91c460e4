# Configuration operations of the command table: each validates its input and answers a clear error;
# what they change is in NV memory and survives a reboot.
import fw
import access


def refused(ctl, name, args, code, words=()):
    try:
        ctl.command(name, args)
    except Exception as e:
        assert e.code == code, (e.code, e.message)
        for w in words:
            assert w in e.message, (w, e.message)
        return e.message
    assert False, "%s %r was accepted" % (name, args)


def board8():
    return fw.boot(b=fw.small_board(slots=8))


def test_create_at_every_level_and_survive_reboot():
    ctl = board8()
    ctl.command("sd_create", {"raid": 0, "slots": [6, 7], "mb": 4, "sd": 2})
    ctl.command("sd_create", {"raid": "JBOD", "extents": [[6, 16384, 2048]], "sd": 3})
    ctl.command("sd_create", {"raid": 1, "slots": [6, 7], "mb": 2, "stripe_kb": 16, "wb": True, "sd": 4})
    ctl = fw.reboot(ctl)
    d = {x["sd"]: x for x in ctl.command("sd_list")["drives"]}
    assert (d[2]["level"], d[2]["mb"], d[2]["status"]) == ("RAID0", 4, "ONLINE")
    assert (d[3]["level"], d[3]["members"][0]["start"]) == ("JBOD", 16384)
    assert d[4]["wb"] and d[4]["stripe_kb"] == 16
    # extents of a new drive follow the drives already there
    assert d[4]["members"][0]["start"] >= d[2]["members"][0]["start"] + d[2]["members"][0]["blocks"]


def test_a_new_drive_reads_zeros_over_old_data_and_leaves_holes_alone():
    import os
    ctl = fw.boot(b=fw.small_board(slots=10))
    ctl.command("sd_create", {"raid": 5, "slots": [6, 7, 8], "mb": 8, "sd": 2})
    ctl.command("lun_map", {"port": 0, "lun": 2, "sd": 2})
    # old data where the next drive will be: a whole region, a lone block, a page's tail
    ctl.command("lun_unmap", {"port": 0, "lun": 2})
    ctl.command("sd_delete", {"sd": 2})
    for slot, lba, n in ((6, 0, 64), (6, 3000, 1), (7, 4095, 1), (8, 777, 9)):
        f = open(ctl.iop.paths[slot], "r+b")
        f.seek(lba * 512)
        f.write(b"\xa5" * (n * 512))
        f.close()
    ctl.command("sd_create", {"raid": 5, "slots": [6, 7, 8], "mb": 8, "sd": 2})
    ctl.command("lun_map", {"port": 0, "lun": 2, "sd": 2})
    blocks = ctl.drives[2].blocks
    for lba in range(0, blocks, 2048):
        st, sn, d = fw.run(ctl, 2, fw.read10(lba, min(2048, blocks - lba)))
        assert st == 0 and d == bytes(len(d)), lba
    # parity agrees: with a member gone the drive still reads zeros
    ctl.command("disk_fail", {"slot": 6})
    st, sn, d = fw.run(ctl, 2, fw.read10(0, 2048))
    assert st == 0 and d == bytes(len(d))
    # the disks stayed sparse: only the blocks that held data were written
    assert os.stat(ctl.iop.paths[7])[6] == ctl.iop.disk_blocks * 512
    assert os.system("test $(du -k '%s' | cut -f1) -lt 64" % ctl.iop.paths[7]) == 0


def test_create_refusals():
    ctl = board8()
    refused(ctl, "sd_create", {"raid": 5, "slots": [6, 7]}, "BAD_LEVEL", ["RAID5 needs at least 3 disks"])
    refused(ctl, "sd_create", {"raid": 1, "slots": [6, 7, 0]}, "BAD_LEVEL", ["exactly 2"])
    refused(ctl, "sd_create", {"raid": 4, "slots": [6, 7]}, "BAD_LEVEL")
    refused(ctl, "sd_create", {"raid": 0, "slots": [6, 9]}, "NO_SUCH_SLOT", ["slot 9"])
    refused(ctl, "sd_create", {"raid": 0, "slots": [6, 6]}, "BAD_ARGUMENT", ["twice"])
    refused(ctl, "sd_create", {"raid": 0, "slots": [6, 7], "sd": 0}, "DRIVE_EXISTS")
    refused(ctl, "sd_create", {"raid": 0, "slots": [6, 7], "stripe_kb": 48}, "BAD_ARGUMENT", ["stripe_kb"])
    refused(ctl, "sd_create", {"raid": 0, "slots": [6, 7], "mb": 999}, "NO_SPACE")
    refused(ctl, "sd_create", {"raid": 0, "slots": [0, 1], "mb": 1}, "NO_SPACE")     # factory drives fill 0-5
    refused(ctl, "sd_create", {"raid": 7, "extents": [[0, 100, 10]]}, "OVERLAP", ["overlaps"])
    refused(ctl, "sd_create", {"raid": 0, "extents": [[6, 0, 100], [6, 50, 100]]}, "OVERLAP")
    refused(ctl, "sd_create", {"raid": 7, "extents": [[6, 0, 10 ** 9]]}, "BAD_ARGUMENT", ["does not fit"])
    refused(ctl, "sd_create", {"raid": 0, "slots": "6,7"}, "BAD_ARGUMENT")
    ctl.command("disk_fail", {"slot": 7})
    refused(ctl, "sd_create", {"raid": 0, "slots": [6, 7]}, "DISK_NOT_ONLINE", ["failed"])
    assert len(ctl.command("sd_list")["drives"]) == 2


def test_unknown_drive_and_bad_numbers():
    ctl = fw.boot()
    refused(ctl, "sd_delete", {"sd": 5}, "NO_SUCH_DRIVE")
    refused(ctl, "sd_delete", {"sd": 9}, "BAD_ARGUMENT", ["0..7"])
    refused(ctl, "lun_map", {"port": 2, "lun": 0, "sd": 0}, "BAD_ARGUMENT", ["port"])
    refused(ctl, "lun_map", {"port": 0, "lun": 3, "sd": 6}, "NO_SUCH_DRIVE")
    refused(ctl, "lun_unmap", {"port": 0, "lun": 5}, "NOT_MAPPED")
    refused(ctl, "no_such_command", {}, "UNKNOWN_COMMAND")


def test_lun_map_rules():
    ctl = fw.boot()
    refused(ctl, "lun_map", {"port": 0, "lun": 0, "sd": 1}, "LUN_IN_USE", ["already maps SD0"])
    ctl.command("lun_map", {"port": 1, "lun": 5, "sd": 0})           # a drive may have several LUNs
    assert [0, 5] == [m["lun"] for m in ctl.command("lun_list")["map"] if m["port"] == 1 and m["sd"] == 0]
    ctl = fw.reboot(ctl)
    assert fw.run(ctl, 5, fw.cdb(0, 0, 0, 0, 0, 0), port=1)[0] == 0
    refused(ctl, "sd_delete", {"sd": 0}, "LUN_IN_USE", ["unmap"])


def test_log_rules():
    ctl = board8()
    refused(ctl, "log_set", {"sd": 0}, "LOG_EXISTS", ["SD1"])
    ctl.command("sd_create", {"raid": 1, "slots": [6, 7], "sd": 2})
    ctl.command("lun_map", {"port": 0, "lun": 2, "sd": 2})
    for port in (0, 1):
        ctl.command("lun_unmap", {"port": port, "lun": 1})
    ctl.command("log_clear", {"sd": 1})
    refused(ctl, "log_clear", {"sd": 1}, "NOT_LOG")
    # LOG on a drive whose LUN is in use by hosts
    refused(ctl, "log_set", {"sd": 2}, "LUN_IN_USE", ["backup LUNs"])
    refused(ctl, "log_set", {"sd": 1, "chunk_kb": 48}, "BAD_ARGUMENT", ["chunk_kb"])
    ctl.command("log_set", {"sd": 1, "chunk_kb": 16})
    ctl = fw.reboot(ctl)
    assert ctl.engine.log_sd == 1 and ctl.engine.chunk_blocks == 32


def test_password_and_masking():
    ctl = fw.boot()
    a = access.Access(ctl)
    assert a.check("x")                     # no password set
    a.store(access.digest("mylex"))
    ctl = fw.reboot(ctl)
    a = access.Access(ctl)
    assert not a.check("x")
    assert a.check("mylex")
    ctl.command("mask_set", {"initiator": "iqn.a", "luns": [[0, 0]]})
    assert ctl.luns(0, "iqn.a") == [0] and ctl.luns(0, "iqn.b") == []
    refused(ctl, "mask_set", {"initiator": "iqn.a", "luns": [[2, 0]]}, "BAD_ARGUMENT")
    ctl.command("mask_clear", {"initiator": "iqn.a"})
    assert ctl.luns(0, "iqn.b") == [0, 1]
