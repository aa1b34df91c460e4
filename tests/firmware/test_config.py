# Configuration operations of the command table: each validates its input and answers a clear error;
# what they change is in NV memory and survives a reboot.
import fw
from endpoints.console import access


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
    i, j = "iqn.2026-11.org.example:a", "iqn.2026-11.org.example:b"
    ctl.command("mask_set", {"initiator": i, "luns": [[0, 0]]})
    assert ctl.luns(0, i) == [0] and ctl.luns(0, j) == []
    refused(ctl, "mask_set", {"initiator": i, "luns": [[2, 0]]}, "BAD_ARGUMENT")
    ctl.command("mask_clear", {"initiator": i})
    assert ctl.luns(0, j) == [0, 1]


def test_a_mask_secret_is_kept_in_nv_memory_and_never_read_back():
    ctl = fw.boot()
    i, j = "iqn.2026-11.org.example:a", "iqn.2026-11.org.example:b"
    ctl.command("mask_set", {"initiator": i, "luns": [[0, 0]], "secret": "a-own-secret-1"})
    ctl.command("mask_set", {"initiator": j, "luns": [[0, 1]]})
    ctl.command("mask_set", {"initiator": i, "luns": [[0, 1]]})          # no "secret": the secret stays
    ctl = fw.reboot(ctl)
    assert ctl.command("mask_list") == {"masks": [
        {"initiator": j, "luns": [[0, 1]], "secret_set": False},
        {"initiator": i, "luns": [[0, 1]], "secret_set": True}]}
    assert "a-own-secret-1" not in repr(ctl.command("mask_list")) + repr(ctl.command("nvram_dump"))
    assert ctl.cfg.mask_secrets == {i: "a-own-secret-1"}
    refused(ctl, "mask_set", {"initiator": j, "luns": [], "secret": "ä" * 17}, "NV_LIMIT",
            ["the mask's CHAP secret is 34 bytes in UTF-8", "12 to 32 bytes"])
    refused(ctl, "mask_set", {"initiator": j, "luns": [], "secret": "short"}, "NV_LIMIT", ["5 bytes"])
    refused(ctl, "mask_set", {"initiator": j, "luns": [], "secret": 123456789012}, "BAD_ARGUMENT", ["a string"])
    refused(ctl, "mask_set", {"initiator": j, "luns": [], "secret": "s3cret\x1b[2Js3cret"}, "BAD_ARGUMENT",
            ["U+001B"])
    assert ctl.command("mask_list")["masks"][0] == {"initiator": j, "luns": [[0, 1]], "secret_set": False}
    ctl.command("mask_set", {"initiator": i, "luns": [[0, 1]], "secret": ""})    # removed
    assert ctl.cfg.mask_secrets == {}
    ctl.command("mask_set", {"initiator": j, "luns": [[0, 1]], "secret": "b-own-secret-1"})
    ctl.command("mask_clear", {"initiator": j})                               # goes with its mask
    ctl = fw.reboot(ctl)
    assert ctl.cfg.mask_secrets == {}


def test_string_fields_are_measured_in_the_bytes_nv_memory_holds():
    ctl = fw.boot()
    umlauts = ("äöü" * 7)[:20]                    # 20 characters, 40 bytes
    refused(ctl, "chap_set", {"user": "admin", "secret": umlauts}, "NV_LIMIT",
            ["the CHAP secret is 40 bytes in UTF-8", "12 to 32 bytes"])
    refused(ctl, "chap_set", {"user": "ü" * 32, "secret": "s3cret-s3cret"}, "NV_LIMIT",
            ["the CHAP user is 64 bytes", "at most 63 bytes"])
    refused(ctl, "chap_set", {"user": "admin", "secret": "ä" * 5}, "NV_LIMIT", ["10 bytes", "12 to 32"])
    refused(ctl, "chap_set", {"user": "ad\0min", "secret": "s3cret-s3cret"}, "BAD_ARGUMENT",
            ["the CHAP user has control character U+0000 at 3"])
    refused(ctl, "chap_set", {"user": "admin", "secret": "s3cret\x1b[2Js3cret"}, "BAD_ARGUMENT", ["U+001B"])
    # what MicroPython's JSON makes of a surrogate pair: not UTF-8, and the host could not read it
    refused(ctl, "chap_set", {"user": "admin", "secret": bytes(b"s3cret-\xed\xa0\xbd\xed\xb8\x80").decode()},
            "BAD_ARGUMENT", ["the CHAP secret is not UTF-8 text"])
    ctl.command("chap_set", {"user": "ädmin", "secret": "äöü" * 5 + "xy"})       # 32 bytes exactly
    ctl = fw.reboot(ctl)
    assert ctl.command("chap_get") == {"user": "ädmin", "secret_set": True}    # never read back
    assert ctl.cfg.chap_secret == "äöü" * 5 + "xy"


def test_initiator_names_follow_the_iscsi_name_rules():
    ctl = fw.boot()
    good = ("iqn.1994-05.com.redhat:host1", "iqn.2026-11.org.example", "iqn.2001-04.com.example:storage:disk.a-1",
            "eui.02004567a425678d", "naa.52004567ba64678d", "naa.62004567ba64678d0123456789abcdef",
            "iqn.2026-11.org.example:" + "x" * 199)                     # 223 bytes
    for name in good:
        ctl.command("mask_set", {"initiator": name, "luns": [[0, 0]]})
    ctl = fw.reboot(ctl)
    assert [m["initiator"] for m in ctl.command("mask_list")["masks"]] == list(good)
    for name in good:
        ctl.command("mask_clear", {"initiator": name})
    for name, words in (("iqn.2026-11.org.example:" + "x" * 200, "224 bytes; an iSCSI name has at most 223"),
                        ("iqn.2026-11.org.example:hööst", "U+00F6 at 26 is not allowed"),
                        ("iqn.2026-11.org.Example:host", "U+0045 at 17"),
                        ("IQN.2026-11.org.example", "U+0049 at 1"),
                        ("iqn.2026-13.org.example", "date yyyy-mm"), ("iqn.26-11.org.example", "date yyyy-mm"),
                        ("iqn.2026-11", "date yyyy-mm"), ("iqn.2026-11.org..example", "reversed domain"),
                        ("iqn.2026-11.:host", "reversed domain"), ("iqn.2026-11.org.example:", "nothing follows"),
                        ("eui.02004567a425678", "16 hex digits"), ("eui.02004567a425678g", "16 hex digits"),
                        ("naa.52004567ba64678d01", "16 or 32 hex"), ("host1", "begins with iqn., eui. or naa."),
                        ("", "begins with")):
        refused(ctl, "mask_set", {"initiator": name, "luns": [[0, 0]]},
                "NV_LIMIT" if "bytes" in words else "BAD_ARGUMENT", [words])
    assert ctl.command("mask_list")["masks"] == []


def test_a_system_drive_has_at_most_8_members():
    # S_D_E holds vdrive[8]: a 10-member RAID 0 used to be written over the next drive's fields,
    # and the bank was refused at the next boot (n_drvs 10 exceeds 8), losing the drive
    ctl = fw.boot(b=fw.small_board(slots=12), factory_cfg=False)
    ctl.command("sd_create", {"raid": 1, "slots": [10, 11], "mb": 2})
    refused(ctl, "sd_create", {"raid": 0, "slots": list(range(10)), "mb": 4}, "NV_LIMIT",
            ["10 members", "at most 8"])
    refused(ctl, "sd_create", {"raid": 0, "extents": [[s, 64, 64] for s in range(9)]}, "NV_LIMIT", ["9 members"])
    ctl.command("sd_create", {"raid": 0, "slots": list(range(8)), "mb": 4})
    ctl = fw.reboot(ctl)
    d = ctl.command("sd_list")["drives"]
    assert [(x["sd"], len(x["members"]), x["status"]) for x in d] == [(0, 2, "ONLINE"), (1, 8, "ONLINE")]


def test_a_change_nv_memory_cannot_hold_is_refused_and_undone():
    # the last guard: whatever reached the configuration without a check of its own is found by
    # reading the image back before the bank is written, and the change is undone
    ctl = fw.boot()
    gen = ctl.cfg.generation
    ctl.cfg.masks = [("iqn.2026-11.org.example:a\0b", 1)]
    ctl.cfg.chap_user = "x"
    try:
        ctl.save()
        assert False, "saved"
    except Exception as e:
        assert e.code == "NV_REFUSED" and "the LUN masks would not read back" in e.message, e.message
    assert ctl.cfg.masks == [] and ctl.cfg.chap_user == "" and ctl.cfg.generation == gen
    ctl.command("lun_map", {"port": 1, "lun": 5, "sd": 0})
    ctl = fw.reboot(ctl)
    assert ctl.cfg.lun(1, 5) == 0 and ctl.cfg.masks == [] and ctl.cfg.generation == gen + 1
