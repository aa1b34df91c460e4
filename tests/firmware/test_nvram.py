# NV memory: every field survives a round trip, a torn update never loses the previous image, and
# each kind of damage is detected with its own message; at boot a bad image is kept aside untouched.
import os
import random
import fw
from hw import nvram
from hw import levels


def full_config():
    cfg = nvram.Config()
    cfg.sd[0] = nvram.SystemDriveEntry(levels.RAID5 | nvram.WB_MSK, [(0, i, 8, 1000 + i) for i in range(4)],
                                       2976, 32, status=levels.CRITICAL, affinity=1)
    cfg.sd[3] = nvram.SystemDriveEntry(levels.RAID1 | nvram.LOG, [(1, 0, 0, 512), (2, 3, 16, 512)],
                                       512, 64, chunk_kb=16, status=levels.OFFLINE)
    cfg.sd[7] = nvram.SystemDriveEntry(levels.RAID6, [(c, t, 8192, 64) for c in range(2) for t in range(4)],
                                       256, 8)
    cfg.lunmap[0] = 0
    cfg.lunmap[9] = 3
    cfg.lunmap[15] = 7
    cfg.password = bytes(range(20))
    cfg.chap_user = "backup-host"
    cfg.chap_secret = "s3cret-s3cret"
    cfg.masks = [("iqn.2026-11.org.example:a", 0x0003), ("iqn.2026-11.org.example:b", 0x8001)]
    cfg.mask_secrets = {"iqn.2026-11.org.example:b": "b-own-secret-\u20ac"}   # only b has its own
    cfg.set_auto_rebuild(False)
    cfg.params[1:4] = b"\x02\x03\x04"          # reserved parameter bytes round-trip as they are
    return cfg


def test_round_trip_of_every_field():
    cfg = full_config()
    back = nvram.decode(nvram.encode(cfg, 41))
    assert back.generation == 41
    assert back.to_dict()["system_drives"] == cfg.to_dict()["system_drives"]
    for i in (0, 3, 7):
        a, b = cfg.sd[i], back.sd[i]
        assert (a.status, a.raid, a.n_drvs, a.affinity, a.vdrive, a.blocks, a.stripe_kb, a.chunk_kb) == \
               (b.status, b.raid, b.n_drvs, b.affinity, b.vdrive, b.blocks, b.stripe_kb, b.chunk_kb)
    assert back.sd[1] is None and back.sd[3].is_log() and back.sd[0].write_back()
    assert back.sd[0].level() == levels.RAID5 and back.sd[3].raid & levels.RAID_MASK == levels.RAID1
    assert back.lunmap == cfg.lunmap
    assert back.password == cfg.password
    assert (back.chap_user, back.chap_secret) == (cfg.chap_user, cfg.chap_secret)
    assert back.masks == cfg.masks and back.mask_secrets == cfg.mask_secrets
    assert back.params == cfg.params and not back.auto_rebuild()
    assert nvram.Config().auto_rebuild()          # the default, as on the DAC960: on


def test_seed_defines_are_exact():
    assert (levels.NORAID, levels.RAID0, levels.RAID1, levels.RAID3, levels.RAID5, levels.RAID6) == (7, 0, 1, 3, 5, 6)
    assert (nvram.WB_MSK, nvram.LOG, levels.RAID_MASK) == (0x80, 0x40, 0x0F)


def nv_with_generations(n):
    path = fw.tmpdir("nv") + "/nvram.bin"
    nv = nvram.Nvram(path, 16384)
    cfg = full_config()
    nv.create(nvram.encode(cfg, 1))
    cfg.generation = 1
    for i in range(n):
        cfg.lunmap[1] = i
        nv.store(cfg)
    return nv, cfg


def test_torn_update_at_any_byte_keeps_the_previous_image():
    random.seed(7)
    nv, cfg = nv_with_generations(3)
    with open(nv.path, "rb") as f:
        good = f.read()
    cfg.lunmap[1] = 99                      # the update being written
    nxt = nvram.encode(cfg, cfg.generation + 1)
    target = 1 - nv.bank
    points = [0, 1, 15, 16, len(nxt) - 1] + [random.randint(0, len(nxt) - 1) for _ in range(200)]
    for k in points:
        img = bytearray(good)
        off = target * nv.bank_size
        img[off:off + k] = nxt[:k]          # the write stopped after k bytes
        with open(nv.path, "wb") as f:
            f.write(img)
        got = nvram.Nvram(nv.path, 16384).load()
        # the previous image, or the new one when the bytes that did not land equal the old ones
        assert (got.generation, got.lunmap[1]) in ((cfg.generation, 2), (cfg.generation + 1, 99)), k
        if got.generation > cfg.generation:
            assert nvram.encode(got, got.generation) == nxt


def test_an_update_becomes_the_new_image_once_complete():
    nv, cfg = nv_with_generations(5)
    again = nvram.Nvram(nv.path, 16384)
    got = again.load()
    assert got.generation == cfg.generation == 6 and got.lunmap[1] == 4


def expect_error(image, size, words):
    path = fw.tmpdir("bad") + "/nvram.bin"
    with open(path, "wb") as f:
        f.write(image)
    try:
        nvram.Nvram(path, size).load()
    except nvram.NvramError as e:
        for w in words:
            assert w in str(e), (w, str(e))
        return
    assert False, "damage not detected"


def good_image():
    nv, _ = nv_with_generations(1)
    with open(nv.path, "rb") as f:
        return bytearray(f.read())


def test_truncated_image():
    expect_error(good_image()[:5000], 16384, ["truncated", "5000", "16384"])


def test_flipped_bits_in_both_banks():
    img = good_image()
    img[100] ^= 0x10
    img[8192 + 333] ^= 0x01
    expect_error(img, 16384, ["bank A: CRC mismatch", "bank B: CRC mismatch"])


def test_wrong_magic():
    img = good_image()
    for b in (0, 8192):
        img[b:b + 4] = b"XXXX"
    expect_error(img, 16384, ["foreign image", "bank A", "bank B"])


def test_wrong_version():
    img = good_image()
    for b in (0, 8192):
        img[b + 4] = 9
    expect_error(img, 16384, ["unsupported version 9"])


def version_1_bank(cfg):
    # what a firmware before the mask secrets wrote: the version 1 payload, its own CRC
    import struct
    import binascii
    img = bytearray(nvram.encode(cfg, 5)[:nvram.HDR_LEN + nvram.PAYLOAD_V1_LEN])
    struct.pack_into("<H", img, 4, 1)
    struct.pack_into("<I", img, 12, binascii.crc32(img[16:], binascii.crc32(img[:12])))
    return img


def test_a_version_1_bank_loads_as_masks_without_secrets():
    cfg = full_config()
    back = nvram.decode(version_1_bank(cfg))
    assert back.masks == cfg.masks and back.mask_secrets == {}
    assert back.chap_secret == cfg.chap_secret and back.lunmap == cfg.lunmap
    # the next update writes version 2 into the other bank, and the version 1 bank stays readable
    path = fw.tmpdir("v1") + "/nvram.bin"
    nv = nvram.Nvram(path, 16384)
    nv.create(version_1_bank(cfg))
    back = nv.load()
    back.mask_secrets["iqn.2026-11.org.example:a"] = "a-own-secret-1"
    nv.store(back)
    again = nvram.Nvram(path, 16384).load()
    assert again.mask_secrets == {"iqn.2026-11.org.example:a": "a-own-secret-1"}
    with open(path, "rb") as f:
        img = f.read()
    assert img[4] == 1 and img[8192 + 4] == nvram.VERSION == 2
    assert nvram.decode(img[:8192]).mask_secrets == {}


def test_a_mask_secret_never_outlives_its_mask_in_the_image():
    cfg = full_config()
    cfg.mask_secrets["iqn.2026-11.org.example:gone"] = "orphan-secret-1"    # no mask of that name
    try:
        nvram.verify(cfg, nvram.encode(cfg, 2))
    except nvram.NvramError as e:
        assert "the LUN mask secrets would not read back" in str(e), str(e)
    else:
        assert False, "a secret without its mask was written"


def test_one_damaged_bank_is_survivable():
    img = good_image()
    nv = nvram.Nvram("/dev/null", 16384)
    path = fw.tmpdir("one") + "/nvram.bin"
    img[8192 + 50] ^= 0xFF
    with open(path, "wb") as f:
        f.write(img)
    nv = nvram.Nvram(path, 16384)
    assert nv.load().generation >= 1 and "bank B: CRC mismatch" in nv.notes[0]


def test_boot_with_corrupt_nvram_comes_up_unconfigured_and_keeps_the_image_aside():
    ctl = fw.boot()
    state = ctl.state_dir
    ctl.iop.close()
    with open(state + "/nvram.bin", "r+b") as f:
        f.seek(20)
        f.write(b"\xde\xad")
        f.seek(ctl.nv.bank_size + 20)
        f.write(b"\xbe\xef")
    with open(state + "/nvram.bin", "rb") as f:
        bad = f.read()
    ctl = fw.reboot(ctl)
    assert ctl.command("sd_list")["drives"] == []
    with open(state + "/nvram.bin.bad0", "rb") as f:
        assert f.read() == bad
    texts = [e["text"] for e in ctl.events.recent(10)]
    assert any("NV MEMORY UNUSABLE" in t and "CRC mismatch" in t and "nvram.bin.bad0" in t for t in texts), texts
    # the unconfigured board can be configured again and keeps it
    ctl.command("sd_create", {"raid": 0, "slots": [0, 1], "mb": 4})
    ctl = fw.reboot(ctl)
    assert len(ctl.command("sd_list")["drives"]) == 1


def _resealed(img, bank=0):
    # the bank's CRC made right again after editing its payload (what another writer could leave)
    import binascii
    import struct
    o = bank
    crc = binascii.crc32(bytes(img[o + 16:o + 16 + nvram.PAYLOAD_LEN]), binascii.crc32(bytes(img[o:o + 12])))
    struct.pack_into("<I", img, o + 12, crc)
    return img


def test_fields_this_firmware_never_writes_are_named_even_under_a_valid_crc():
    sde = nvram.SDE_LEN + nvram.SDX_LEN
    cases = (
        (16 + 1, 0x34, "system drive 0: raid byte 0x34"),                 # reserved bits, level 4
        (16 + 0, 0x07, "system drive 0: status 0x07"),
        (16 + nvram.SDE_LEN + 4, 0xFF, "system drive 0: stripe of"),      # stripe KiB (low byte)
        (16 + 3 * sde + nvram.SDE_LEN + 6, 3, "system drive 3: chunk of"),  # the log's chunk KiB
        (16 + nvram.LUNMAP_OFF + 2, 9, "LUN map: port 0 LUN 2 names system drive 9"),
        (16 + nvram.CHAP_OFF, 0xFF, "the CHAP user is not text"),
        (16 + nvram.MASK_OFF, 0xC3, "LUN mask 0's initiator name is not text"),
        (16 + nvram.MASK_SECRET_OFF + nvram.CHAP_SECRET_LEN, 0xFF, "LUN mask 1's secret is not text"),
    )
    for off, value, words in cases:
        img = good_image()
        for bank in (0, 8192):
            img[bank + off] = value
            _resealed(img, bank)
        expect_error(img, 16384, ["bank A: " + words, "bank B: "])


def test_random_fields_under_a_valid_crc_never_stop_the_board():
    # mutated images, resealed, as the factory image of a new board: each one boots (configured,
    # or unconfigured with the reason) and answers its LUNs
    from control import controller
    import factory
    random.seed(11)
    good = bytearray(nvram.encode(factory.default_config(fw.small_board()), 1))
    configured = 0
    for i in range(60):
        img = bytearray(good)
        for _ in range(random.choice((1, 3, 12))):
            k = random.randrange(16, len(img))
            img[k] = random.choice((0, 0xFF, random.getrandbits(8)))
        d = fw.tmpdir("nvfuzz")
        with open(d + "/factory.bin", "wb") as f:
            f.write(_resealed(img))
        b = fw.small_board()
        b["factory_nvram"] = d + "/factory.bin"
        ctl = controller.Controller(b, d, os.getenv("RB_ROOT", "../.."))
        configured += bool(ctl.command("sd_list")["drives"])
        for port in (0, 1):
            for lun in range(8):
                st, sn, _ = ctl.execute(("iqn.fuzz", port, lun), bytes((0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0)))
                assert st in (0, 2), st
        ctl.iop.close()
    print("mutated NV images booted:", 60, "configured:", configured)


def test_factory_images_match_the_factory_layout():
    from hw import board
    import factory
    root = os.getenv("RB_ROOT", "../..")
    for model in ("dac960sx", "dac960sf"):
        b = board.load("%s/boards/%s.json" % (root, model))
        with open("%s/%s" % (root, b["factory_nvram"]), "rb") as f:
            committed = f.read()
        assert committed == nvram.encode(factory.default_config(b), 1), model


def test_text_is_strict_utf8_as_the_host_reads_it():
    good = ("", "plain", "äöü", "\u20ac", "\U0001F600", "\U0010FFFF")
    for s in good:
        assert nvram.utf8_error(s.encode()) == -1, s
    bad = (b"\xc0\x80", b"\xc1\xbf", b"\xe0\x80\x80",          # overlong forms
           b"\xed\xa0\x80", b"\xed\xa0\xbd\xed\xb8\x80",         # surrogates (CESU-8 of an emoji)
           b"\xf4\x90\x80\x80", b"\xf8\x88\x80\x80\x80",         # past U+10FFFF
           b"\x80", b"ab\xc3", b"\xe2\x82")                      # a stray or cut-short sequence
    for b in bad:
        assert nvram.utf8_error(b) >= 0, b
    assert nvram.utf8_error(b"ok\xed\xa0\x80") == 2


def test_an_image_that_would_not_read_back_is_never_written():
    nv, cfg = nv_with_generations(1)
    with open(nv.path, "rb") as f:
        before = f.read()
    changes = (
        ("chap_secret", "äöü" * 7, "the CHAP secret is 42 bytes, its field holds 32"),
        ("chap_user", "x" * 65, "the CHAP user is 65 bytes"),
        ("chap_user", "a\0b", "the CHAP user would not read back"),
        ("masks", [("iqn.2026-11.org.example:" + "ü" * 101, 1)], "LUN mask 0's initiator name is 226 bytes, its field holds 224"),
        ("masks", [("iqn.x", 0x10000)], "the LUN masks would not read back"),
    )
    for field, value, words in changes:
        nv2 = nvram.Nvram(nv.path, 16384)
        good = nv2.load()
        setattr(good, field, value)
        try:
            nv2.store(good)
            assert False, field
        except nvram.NvramError as e:
            assert words in str(e), (words, str(e))
    for e, words in ((nvram.SystemDriveEntry(levels.RAID0, [(2, t, 0, 64) for t in range(10)], 640), "10 members"),
                     (nvram.SystemDriveEntry(levels.NORAID, [(2, 0, 1 << 32, 64)], 64), "system drive 1 would not"),
                     (nvram.SystemDriveEntry(levels.NORAID, [(0, 0, 0, 64)], 64), "share blocks")):
        nv2 = nvram.Nvram(nv.path, 16384)
        good = nv2.load()
        good.sd[1] = e
        try:
            nv2.store(good)
            assert False, words
        except nvram.NvramError as err:
            assert words in str(err), (words, str(err))
    with open(nv.path, "rb") as f:
        assert f.read() == before


def forged_jbod(channel, target, start, blocks):
    # a good image whose banks also define system drive 5: a JBOD over that one extent
    img = good_image()
    off = 16 + 5 * (nvram.SDE_LEN + nvram.SDX_LEN)
    for bank in (0, 8192):
        nvram.struct.pack_into(nvram.SDE, img, bank + off, levels.ONLINE, levels.NORAID, 1, 0)
        nvram.struct.pack_into(nvram.VDRIVE, img, bank + off + 4, channel, target, 0, start, blocks)
        nvram.struct.pack_into(nvram.SDX, img, bank + off + nvram.SDE_LEN, blocks, 64, 0, 0)
        _resealed(img, bank)
    return img


def test_drives_that_share_blocks_are_refused_naming_both():
    # a forged bank: a JBOD over blocks of SD0's member on disk 0:2, and one over the log drive's
    img = forged_jbod(0, 2, 500, 100)
    expect_error(img, 16384, ["bank A: system drive 0 and system drive 5 share blocks of disk 0:2 "
                              "(extents 8+1002 and 500+100)", "bank B: "])
    img = forged_jbod(2, 3, 511, 1)
    expect_error(img, 16384, ["system drive 3 and system drive 5 share blocks of disk 2:3 (extents 16+512 and 511+1)"])
    # next to each other is not sharing
    img = forged_jbod(2, 3, 528, 8)
    path = fw.tmpdir("adjacent") + "/nvram.bin"
    with open(path, "wb") as f:
        f.write(img)
    assert nvram.Nvram(path, 16384).load().sd[5].vdrive == [(2, 3, 528, 8)]


def test_a_member_named_by_a_target_the_board_does_not_have_is_not_built():
    # disk 0:4 of a board with 4 targets a channel would be slot 4, which is disk 1:0 (a member of
    # the log drive): two names for one disk must not get past the check of shared blocks
    import factory
    b = fw.small_board()
    d = fw.tmpdir("alias")
    cfg = factory.default_config(b)
    cfg.sd[2] = nvram.SystemDriveEntry(levels.NORAID, [(0, 4, 0, 2048)], 2048)
    cfg.lunmap[2] = 2
    with open(d + "/factory.bin", "wb") as f:
        f.write(nvram.encode(cfg, 1))
    ctl = fw.boot(state=d, b=b)
    assert 2 not in ctl.drives and 1 in ctl.drives
    texts = [e["text"] for e in ctl.events.recent(10)]
    assert any("SD2 CANNOT BE BUILT" in t and "disk 0:4" in t and "targets 0..3" in t for t in texts), texts
    st, sn, _ = fw.run(ctl, 2, fw.cdb(0x2A, 0, 0, 0, 0, 0, 0, 0, 1, 0), bytes(512))
    assert st == 2 and sn[2] & 0x0F == 2          # NOT READY: nothing reaches the log drive's disk
