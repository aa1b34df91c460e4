"""`raidboard nvram dump`: the host's own decoder of NV memory images (offline), checked against the
factory images, against the NV memory of a running board (and the board's own decode of it), and
against damaged images. Also `lop`, which needs the firmware's long operations."""
import subprocess
import sys
from pathlib import Path

import pytest

from test_cli import rb, rbj
from harness import answer

RAIDBOARD = str(Path(sys.executable).with_name("raidboard"))
REPO = Path(__file__).resolve().parents[1]


def dump(path, rc=0):
    p = subprocess.run([RAIDBOARD, "nvram", "dump", "--json", str(path)], capture_output=True, text=True, timeout=30)
    assert p.returncode == rc, (p.returncode, p.stdout, p.stderr)
    return answer(p.stdout, "Success" if rc == 0 else "Failure"), p.stderr


def current(d):
    return next(b for b in d["banks"] if b["bank"] == d["current"])["image"]


@pytest.mark.parametrize("model,ports", [("dac960sx", 2), ("dac960sf", 2)])
def test_factory_images(model, ports):
    d, _ = dump(REPO / "nvram" / ("%s-factory.bin" % model))
    im = current(d)
    sds = {s["sd"]: s for s in im["system_drives"]}
    # the factory default (nvram/README.md): sd0 RAID 5 over four disks, sd1 RAID 1 over two with LOG
    assert sds[0]["level"] == 5 and sds[0]["n_drvs"] == 4 and not sds[0]["log"]
    assert sds[1]["level"] == 1 and sds[1]["n_drvs"] == 2 and sds[1]["log"] and sds[1]["raid"] & 0x40
    assert sds[0]["status"] == "ONLINE"
    assert sds[1]["blocks"] < sds[0]["blocks"]
    lm = {(m["port"], m["lun"]): m["sd"] for m in im["lun_map"]}
    assert lm == {(p, 0): 0 for p in range(ports)} | {(p, 1): 1 for p in range(ports)}
    text = subprocess.run([RAIDBOARD, "nvram", "dump", str(REPO / "nvram" / ("%s-factory.bin" % model))],
                          capture_output=True, text=True, timeout=30).stdout
    assert "sd1  raid=0x41 RAID1|LOG" in text and "port 0 LUN 1 -> sd1" in text


def test_dump_of_a_running_board_matches_the_board(board):
    nv = board.state / "nvram.bin"
    gen0 = current(dump(nv)[0])["generation"]
    rbj(board, "lun", "map", "1/3", "sd0")
    rbj(board, "sd", "policy", "sd0", "wb")
    d, _ = dump(nv)
    im = current(d)
    assert im["generation"] > gen0
    assert {"port": 1, "lun": 3, "sd": 0} in im["lun_map"]
    assert next(s for s in im["system_drives"] if s["sd"] == 0)["wb"] is True
    # the board's own decode (firmware/hw/nvram.py) and the host's (raidboard/nvimage.py) agree
    online = rbj(board, "nvram", "show")
    assert online["generation"] == im["generation"]
    assert sorted((m["port"], m["lun"], m["sd"]) for m in online["lun_map"]) == \
        sorted((m["port"], m["lun"], m["sd"]) for m in im["lun_map"])
    theirs = [s for s in online["system_drives"] if s]
    assert [(s["raid"], s["blocks"], s["n_drvs"], s["stripe_kb"], [list(v) for v in s["vdrive"]]) for s in theirs] == \
        [(s["raid"], s["blocks"], s["n_drvs"], s["stripe_kb"],
          [[v["channel"], v["target"], v["start"], v["blocks"]] for v in s["vdrive"]]) for s in im["system_drives"]]
    # both banks hold a valid image after two updates: the newer is current
    assert all(b["ok"] for b in d["banks"])
    assert current(d)["generation"] == max(b["image"]["generation"] for b in d["banks"])


def test_damaged_images(board, tmp_path):
    rbj(board, "lun", "map", "1/3", "sd0")  # one update: both banks are written
    raw = bytearray((board.state / "nvram.bin").read_bytes())
    d, _ = dump(board.state / "nvram.bin")
    cur = next(b for b in d["banks"] if b["bank"] == d["current"])
    other = next(b for b in d["banks"] if b["bank"] != d["current"])
    assert other["ok"]

    # a flipped bit in the current bank: the previous image (the other bank) is the current one
    bad = bytearray(raw)
    bad[cur["offset"] + 100] ^= 0x10
    (tmp_path / "flip.bin").write_bytes(bad)
    d2, _ = dump(tmp_path / "flip.bin")
    assert d2["current"] == other["bank"]
    assert "CRC mismatch" in next(b for b in d2["banks"] if b["bank"] == cur["bank"])["error"]

    # both banks damaged: no valid bank, exit 7, the reason of each bank
    bad[other["offset"] + 200] ^= 0x01
    (tmp_path / "both.bin").write_bytes(bad)
    d3, _ = dump(tmp_path / "both.bin", rc=7)
    assert d3["current"] is None and d3["error"].count("CRC mismatch") == 2
    p = subprocess.run([RAIDBOARD, "nvram", "dump", str(tmp_path / "both.bin")], capture_output=True, text=True)
    assert p.returncode == 7 and "no valid bank" in p.stdout

    # wrong magic, wrong version, truncated
    foreign = bytearray(raw)
    for b in d["banks"]:
        foreign[b["offset"]:b["offset"] + 4] = b"XXXX"
    (tmp_path / "foreign.bin").write_bytes(foreign)
    assert "foreign image" in dump(tmp_path / "foreign.bin", rc=7)[0]["error"]
    version = bytearray(raw)
    for b in d["banks"]:
        version[b["offset"] + 4] = 9
    (tmp_path / "version.bin").write_bytes(version)
    assert "unsupported version 9" in dump(tmp_path / "version.bin", rc=7)[0]["error"]
    (tmp_path / "short.bin").write_bytes(raw[:100])
    assert "truncated" in dump(tmp_path / "short.bin", rc=7)[0]["error"]
    # a file that is not there is a usage error
    p = subprocess.run([RAIDBOARD, "nvram", "dump", str(tmp_path / "nope.bin")], capture_output=True, text=True)
    assert p.returncode == 2 and "nope.bin" in p.stderr


def forge_drive_over_the_log(raw, offsets):
    # SD2 = a JBOD over the first 1 MiB of disk 1:0, which is a member of the log drive SD1, mapped
    # as port 0 LUN 2, in every bank, with the CRC made right again (what a hostile writer can do)
    import struct
    import zlib
    from raidboard import nvimage as nv
    for off in offsets:
        p = off + nv.HEADER.size
        struct.pack_into("<BBBB", raw, p + 2 * nv.SD_SLOT, 0x03, 7, 1, 0)
        struct.pack_into("<BBHII", raw, p + 2 * nv.SD_SLOT + 4, 1, 0, 0, 0, 2048)
        struct.pack_into("<IHHI", raw, p + 2 * nv.SD_SLOT + nv.SDE_LEN, 2048, 64, 0, 0)
        raw[p + nv.LUNMAP_OFF + 2] = 2
        struct.pack_into("<I", raw, off + 12, zlib.crc32(bytes(raw[p:p + nv.PAYLOAD_LEN]),
                                                         zlib.crc32(bytes(raw[off:off + 12]))))
    return raw


def test_a_forged_drive_over_another_drives_blocks_is_refused_naming_both(board, tmp_path):
    # before, such a bank booted with SD2 ONLINE, and writes to its LUN overwrote the log drive
    rbj(board, "lun", "map", "1/3", "sd0")  # both banks hold an image
    board.stop()
    nvfile = board.state / "nvram.bin"
    d, _ = dump(nvfile)
    nvfile.write_bytes(forge_drive_over_the_log(bytearray(nvfile.read_bytes()), [b["offset"] for b in d["banks"]]))
    why = "system drive 1 and system drive 2 share blocks of disk 1:0 (extents 0+131072 and 0+2048)"
    d, _ = dump(nvfile, rc=7)
    assert d["error"].count(why) == 2
    board.boot()
    assert why in board.log() and "NV MEMORY UNUSABLE" in board.log()
    assert rbj(board, "sd", "list")["drives"] == [] and rbj(board, "lun", "list")["map"] == []


def test_lop_commands(board):
    p = subprocess.run([RAIDBOARD, "--port", "socket://%s:%d" % tuple(board.console), "--json", "lop", "status"],
                       capture_output=True, text=True, timeout=30)
    if p.returncode == 1 and "NOT_SUPPORTED" in p.stderr:
        pytest.skip("the firmware has no long operations yet (firmware/lop/ops.py answers NOT_SUPPORTED)")
    assert p.returncode == 0, p.stderr
    st = answer(p.stdout)
    assert isinstance(st, dict)
    # a consistency check of the RAID 5 drive, to the end, with a progress bar
    out, err = rb(board, "lop", "start", "check", "sd0", "--wait", "--interval", "0.2", timeout=300)
    assert "%" in err
    _, err = rb(board, "lop", "stop", "sd7", rc=1)


def test_host_and_firmware_agree_on_which_images_are_valid(tmp_path):
    # mutated factory images, resealed with a right CRC (what another writer could leave): the
    # host's decoder and the firmware's accept and refuse the same ones, each naming a reason
    import random
    import struct
    import zlib
    from harness import MICROPYTHON
    from raidboard import nvimage
    good = bytearray((REPO / "nvram" / "dac960sx-factory.bin").read_bytes())
    # with a masked initiator and its own secret, so that mutations reach those fields too
    p = nvimage.HEADER.size
    good[p + nvimage.MASK_OFF:p + nvimage.MASK_OFF + 18] = b"iqn.2026-11.org.x:"
    secret = "\u00e4-own-secret".encode()
    good[p + nvimage.MASK_SECRET_OFF:p + nvimage.MASK_SECRET_OFF + len(secret)] = secret
    rnd = random.Random(4)
    paths = []
    for i in range(200):
        m = bytearray(good)
        for _ in range(rnd.choice((1, 2, 6, 24))):
            k = rnd.randrange(16, len(m))
            m[k] = rnd.choice((0, 0xFF, rnd.getrandbits(8)))
        struct.pack_into("<I", m, 12, zlib.crc32(bytes(m[16:]), zlib.crc32(bytes(m[:12]))))
        p = tmp_path / ("m%03d.bin" % i)
        p.write_bytes(m)
        paths.append(p)
    script = tmp_path / "verdicts.py"
    script.write_text(
        "import sys\nsys.path.insert(0, %r)\nfrom hw import nvram\n" % str(REPO / "firmware") +
        "for p in sys.argv[1:]:\n"
        "    try:\n        nvram.decode(open(p, 'rb').read()); print('OK')\n"
        "    except nvram.NvramError as e:\n        print('ERR', e)\n")
    out = subprocess.run([MICROPYTHON, str(script)] + [str(p) for p in paths], capture_output=True, text=True,
                         timeout=120)
    fw = out.stdout.splitlines()
    assert len(fw) == len(paths), out.stderr[-2000:]
    refused = 0
    for p, verdict in zip(paths, fw):
        try:
            nvimage.decode_bank(p.read_bytes())
            host = "OK"
        except nvimage.BankError as e:
            host = "ERR " + str(e)
        assert (host == "OK") == (verdict == "OK"), (p.name, host, verdict)
        refused += verdict != "OK"
    assert 0 < refused < len(paths)
    print("mutated NV images: %d, refused by both: %d" % (len(paths), refused))


def test_a_version_1_bank_decodes_as_masks_without_secrets(tmp_path):
    import struct
    import zlib
    from raidboard import nvimage as nv
    bank = bytearray((REPO / "nvram" / "dac960sx-factory.bin").read_bytes())[:nv.HEADER.size + nv.PAYLOAD_V1_LEN]
    p = nv.HEADER.size
    bank[p + nv.MASK_OFF:p + nv.MASK_OFF + 18] = b"iqn.2026-11.org.x:"
    struct.pack_into("<H", bank, 4, 1)
    struct.pack_into("<I", bank, 12, zlib.crc32(bytes(bank[p:]), zlib.crc32(bytes(bank[:12]))))
    (tmp_path / "v1.bin").write_bytes(bank)
    d, _ = dump(tmp_path / "v1.bin")
    im = current(d)
    assert im["version"] == 1 and im["masks"][0]["initiator"] == "iqn.2026-11.org.x:"
    assert im["masks"][0]["secret_set"] is False


def test_control_characters_an_image_holds_are_shown_escaped(tmp_path):
    # an image from another writer (or an older firmware) may hold them; dumping it must not send
    # escape sequences to the operator's terminal
    import struct
    import zlib
    from raidboard import nvimage as nv
    bank = bytearray((REPO / "nvram" / "dac960sx-factory.bin").read_bytes())
    p = nv.HEADER.size
    bank[p + nv.CHAP_OFF:p + nv.CHAP_OFF + 11] = b"\x1b]0;pwned\x07x"
    bank[p + nv.CHAP_OFF + 64:p + nv.CHAP_OFF + 77] = b"s3cret-s3cret"
    bank[p + nv.MASK_OFF:p + nv.MASK_OFF + 8] = b"iqn.\x1b[2J"
    struct.pack_into("<I", bank, 12, zlib.crc32(bytes(bank[p:p + nv.PAYLOAD_LEN]), zlib.crc32(bytes(bank[:12]))))
    (tmp_path / "ctl.bin").write_bytes(bank)
    out = subprocess.run([RAIDBOARD, "nvram", "dump", str(tmp_path / "ctl.bin")], capture_output=True, text=True,
                         timeout=30).stdout
    assert "CHAP: user \\u001b]0;pwned\\u0007x" in out and "mask: iqn.\\u001b[2J" in out and "\x1b" not in out
