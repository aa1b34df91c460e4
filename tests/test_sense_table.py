"""The host's decoder (`raidboard cdb`) knows every sense triple and return word the board documents:
each is read from the firmware's own documents and decoded through raidboard.render."""
import re
from pathlib import Path

from raidboard import render

FW = Path(__file__).resolve().parent.parent / "firmware"
SENSE_DOCS = ("scsi/vendor.md", "scsi/README.md", "lop/README.md")
ROW = re.compile(r"^\| 0x([0-9A-F]{2}) \| 0x([0-9A-F]{2}) \| 0x([0-9A-F]{2}) \| (.+?) \|$", re.M)
TRIPLE = re.compile(r"\b([0-9A-F]{2})/([0-9A-F]{2})/([0-9A-F]{2})\b")
WORD_ROW = re.compile(r"^\| 0x([0-9A-F]{4}) \| ([^|]+?) \|", re.M)
WORD_TABLES = {"Table 7": 0x44, "Table 10": 0x43}      # lop/README.md section -> the command's byte 2


def doc(name):
    return (FW / name).read_text()


def first_phrase(when):
    # the meaning a row opens with, before its details
    return re.split(r" \(| —|[:,;]", when.replace("`", "").replace("**", ""))[0].strip().lower()


def test_every_vendor_table_row_decodes_to_its_documented_meaning():
    rows = ROW.findall(doc("scsi/vendor.md"))
    vendor = [r for r in rows if r[0] == "09"]
    assert len(vendor) >= 8
    for key, asc, ascq, when in vendor:
        got = render.sense_meaning(0x09, int(asc, 16), int(ascq, 16))
        assert first_phrase(when) in got.lower(), (key, asc, ascq, when, got)


def test_every_documented_sense_triple_has_a_meaning():
    seen = set()
    for name in SENSE_DOCS:
        text = doc(name)
        seen |= {tuple(int(x, 16) for x in m) for m in TRIPLE.findall(text)}
        seen |= {tuple(int(x, 16) for x in r[:3]) for r in ROW.findall(text)}
    seen = {t for t in seen if t[0] <= 0x0F}            # a sense key is 4 bits (not a date)
    assert (0x09, 0x82, 0x00) in seen and (0x05, 0x24, 0x00) in seen
    for key, asc, ascq in sorted(seen):
        got = render.sense_meaning(key, asc, ascq)
        assert got and got != "vendor specific", "%02X/%02X/%02X has no meaning" % (key, asc, ascq)


def test_every_documented_return_word_decodes_to_its_documented_meaning():
    text = doc("lop/README.md")
    n = 0
    for title, opcode in WORD_TABLES.items():
        section = text[text.index("### %s " % title):]
        section = section[:section.index("\n\n", section.index("|"))]
        for word, meaning in WORD_ROW.findall(section):
            cdb = bytes((0x20, 0, opcode))
            w = int(word, 16)
            assert render.word_meaning(cdb, bytes((w >> 8, w & 0xFF))) == "word 0x%s %s" % (word, meaning.strip())
            n += 1
    assert n >= 12            # Table 7: 6 rows, Table 10: 6 rows


def test_the_board_overflow_sense_is_named_not_vendor_specific():
    sense = bytes((0x70, 0, 0x09, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x82, 0x00, 0, 0, 0, 0))
    assert "Log Overflow" in render.describe_sense(sense)
