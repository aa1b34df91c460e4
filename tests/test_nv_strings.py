"""No string can break NV memory: every string field (CHAP user and secret, masked initiator names)
is checked in encoded UTF-8 bytes against the field that holds it, by the CLI before
it sends and by the board's command table, and is either refused naming the field and its byte limit
or kept exactly across a restart, with the rest of the configuration intact."""
import json

from hypothesis import HealthCheck, given, settings, strategies as st

from raidboard import nvimage
from raidboard.errors import UsageError
from raidboard.inputs import iscsi_name, nv_text
from raidboard.model import CHAP_SECRET_MAX, CHAP_SECRET_MIN, CHAP_USER_MAX
from test_cli import drives, lunmap, rb, rbj

HOST = "iqn.2026-11.org.example:host-a"


def configuration(board):
    return drives(board), lunmap(board), rbj(board, "mask", "list"), rbj(board, "call", "chap_get")


def test_a_chap_secret_of_umlauts_costs_no_configuration(board):
    # 20 characters, 40 bytes in UTF-8: the 32-byte field used to overrun and the next bank write
    # grew past its CRC, so after one more change and a restart the board came up unconfigured
    secret = ("äöü" * 7)[:20]
    _, err = rb(board, "chap", "set", "admin", rc=2, env={"RAIDBOARD_CHAP_SECRET": secret})
    assert "CHAP secret" in err and "40 bytes" in err and "32 bytes" in err
    _, err = rb(board, "call", "chap_set", json.dumps({"user": "admin", "secret": secret}), rc=1)
    assert "NV_LIMIT" in err and "CHAP secret" in err and "32 bytes" in err
    rbj(board, "lun", "map", "1/3", "sd0")
    before = configuration(board)
    board.restart()
    assert configuration(board) == before
    assert lunmap(board)[(1, 3)] == 0 and len(drives(board)) == 2
    assert "NV MEMORY UNUSABLE" not in board.log()


def test_the_cli_refuses_what_nv_memory_cannot_hold_before_sending(board):
    for argv, words in ((("chap", "set", "ü" * 32, "s3cret-s3cret"), "the CHAP user is 64 bytes in UTF-8; NV memory holds at most 63"),
                        (("chap", "set", "admin", "ä" * 5), "the CHAP secret is 10 bytes in UTF-8; NV memory holds 12 to 32"),
                        (("chap", "set", "admin", "s3cret\x1bs3cret"), "the CHAP secret has control character U+001B"),
                        (("mask", "set", "iqn.2026-11.org.example:" + "x" * 200, "0/0"), "224 bytes in UTF-8; NV memory holds at most 223"),
                        (("mask", "set", "iqn.2026-11.org.example:hööst", "0/0"), "U+00F6 is not allowed"),
                        (("mask", "set", "IQN.2026-11.org.example", "0/0"), "U+0049 is not allowed"),
                        (("mask", "set", "iqn.2026-13.org.example", "0/0"), "is not an iSCSI name"),
                        (("mask", "set", "eui.02004567a425678", "0/0"), "eui. + 16 hex digits"),
                        (("sd", "create", "--raid", "0", "--slots", "0,1,2,3,4,5,6,7,8,9"), "at most 8 members")):
        if argv[0] == "chap":          # a secret travels in the environment, never in argv
            argv, env = argv[:3], {"RAIDBOARD_CHAP_SECRET": argv[3]}
        else:
            env = None
        _, err = rb(board, *argv, rc=2, env=env)
        assert words in err, (argv, err)
    rbj(board, "mask", "set", "eui.02004567a425678d", "0/0")
    rbj(board, "mask", "set", "naa.52004567ba64678d", "1/0")
    assert [m["initiator"] for m in rbj(board, "mask", "list")["masks"]] == ["eui.02004567a425678d",
                                                                              "naa.52004567ba64678d"]


def test_more_than_8_members_is_refused_by_the_board(make_board):
    # (the CLI refuses before sending; the board refuses whoever sends it)
    board = make_board(drive_channels=3, targets_per_channel=4, populated_slots=12)
    before = configuration(board)
    _, err = rb(board, "call", "sd_create", json.dumps({"raid": 0, "slots": list(range(6, 12)) + [0, 1, 2, 3]}),
                rc=1)
    assert "NV_LIMIT" in err and "10 members" in err and "at most 8" in err
    board.restart()
    assert configuration(board) == before


SET = {  # field -> (command and arguments holding the string, what an error names, byte limits)
    "chap_user": (lambda t: ("chap_set", {"user": t, "secret": "s3cret-s3cret"}), "the CHAP user", (0, 63)),
    "chap_secret": (lambda t: ("chap_set", {"user": "admin", "secret": t}), "the CHAP secret", (12, 32)),
    "initiator": (lambda t: ("mask_set", {"initiator": t, "luns": [[0, 0], [1, 1]]}), "the initiator name", (1, 223)),
}
CLI_CHECK = {  # the checks `raidboard chap set` and `raidboard mask set` make before sending
    "chap_user": lambda t: nv_text(t, "the CHAP user", CHAP_USER_MAX),
    "chap_secret": lambda t: nv_text(t, "the CHAP secret", CHAP_SECRET_MAX, CHAP_SECRET_MIN),
    "initiator": iscsi_name,
}


def cli_accepts(field, text):
    try:
        CLI_CHECK[field](text)
        return True
    except UsageError:
        return False
ANY = st.characters(exclude_categories=())                     # lone surrogates and control characters too
TEXTS = st.one_of(st.text(ANY, max_size=70), st.text("äöü€😀ab\x00\x7f\x85", min_size=6, max_size=40),
                  st.text(ANY, max_size=120).map(lambda s: "iqn.2026-11.org.example:" + s),
                  st.text("abz09-.:", min_size=1, max_size=210).map(lambda s: "iqn.2026-11.org.example:" + s))


def stored_chap(board):
    # the CHAP user and secret as the current bank of NV memory holds them (the console never reads
    # a secret back, so the proof that it is kept exactly comes from the memory itself)
    image = (board.state / "nvram.bin").read_bytes()
    d = nvimage.dump(image)
    off = dict((b["bank"], b["offset"]) for b in d["banks"])[d["current"]] + nvimage.HEADER.size + nvimage.CHAP_OFF
    return {"user": image[off:off + 64].rstrip(b"\0").decode(), "secret": image[off + 64:off + 96].rstrip(b"\0").decode()}


def call(board, name, args):
    from raidboard.proto import BoardError, Link
    with Link("socket://%s:%d" % tuple(board.console)) as link:
        try:
            return link.request(name, args)
        except BoardError as e:
            return e


def assert_refused_with_field_and_limit(err, text, what, limits):
    assert err.code in ("NV_LIMIT", "BAD_ARGUMENT"), (err.code, err.message)
    assert err.message.startswith(what), (what, err.message)
    if err.code == "NV_LIMIT":
        n = len(text.encode("utf-8", "surrogatepass"))
        assert not limits[0] <= n <= limits[1] and str(limits[1]) in err.message, (n, err.message)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(sorted(SET)), TEXTS), min_size=1, max_size=4))
def test_any_string_is_refused_or_kept_exactly_across_a_restart(board, changes):
    for m in call(board, "mask_list", {})["masks"]:
        call(board, "mask_clear", {"initiator": m["initiator"]})
    rest = call(board, "sd_list", {}), call(board, "lun_list", {})
    chap, masks = stored_chap(board), []
    for field, text in changes:
        command, what, limits = SET[field]
        name, args = command(text)
        r = call(board, name, args)
        if field in CLI_CHECK and text:       # (`chap clear`, not `chap set ""`, turns CHAP off)
            assert cli_accepts(field, text) == (not isinstance(r, Exception)), (field, text, r)
        if isinstance(r, Exception):
            assert_refused_with_field_and_limit(r, text, what, limits)
            continue
        assert limits[0] <= len(text.encode()) <= limits[1] or text == "" and field != "initiator"
        if name == "chap_set":
            chap = args if args["secret"] else {"user": "", "secret": ""}     # an empty secret: CHAP off
        else:
            masks = [m for m in masks if m != text] + [text]          # a mask set again moves last
    board.restart()
    assert (call(board, "sd_list", {}), call(board, "lun_list", {})) == rest
    assert stored_chap(board) == chap
    assert call(board, "chap_get", {}) == {"user": chap["user"], "secret_set": bool(chap["secret"])}
    assert [m["initiator"] for m in call(board, "mask_list", {})["masks"]] == masks


def test_cli_and_firmware_agree_on_which_initiator_names_are_iscsi_names(tmp_path):
    # two readings of RFC 3720/3722 (a regular expression on the host, a scan in the firmware):
    # names built from the pieces the rules are about get the same verdict from both
    import random
    import subprocess
    from harness import MICROPYTHON, ROOT
    rnd = random.Random(9)

    def iqn():
        return "iqn." + rnd.choice(["2026-11", "1999-00", "2026-1", "2026-13", "abcd-11", "2026-12"]) + \
            rnd.choice([".", "", ":"]) + rnd.choice(["com.example", "org", "", "a..b", "-x.y", "com.Example",
                                                     "ex_ample", "a.b.c-d"]) + \
            rnd.choice(["", ":", ":host1", ":a:b.c-d", ":ä", ":x y", ".", "::"])

    def hexname():
        digits = "".join(rnd.choice("0123456789abcdef") for _ in range(rnd.choice([15, 16, 17, 32, 33])))
        return rnd.choice(["eui.", "naa.", "EUI.", "naa"]) + rnd.choice([digits, digits.upper(), digits[:-1] + "g"])
    names = [rnd.choice([iqn, iqn, hexname])() for _ in range(600)]
    names += ["iqn.2026-11.org.example:" + "x" * k for k in (198, 199, 200)]
    script = tmp_path / "names.py"
    script.write_text("import sys\nsys.path.insert(0, %r)\nfrom control import commands_hostmap as config\n" % str(ROOT / "firmware") +
                      "for n in open(sys.argv[1]).read().split('\\n'):\n"
                      "    print('OK' if config.iscsi_name_error(n) is None else 'ERR')\n")
    (tmp_path / "names.txt").write_text("\n".join(names))
    out = subprocess.run([MICROPYTHON, str(script), str(tmp_path / "names.txt")], capture_output=True, text=True,
                         timeout=60, cwd=str(ROOT / "firmware"))
    firmware = out.stdout.split()
    assert len(firmware) == len(names), out.stderr[-2000:]
    host = ["OK" if cli_accepts("initiator", n) else "ERR" for n in names]
    assert [(n, h) for n, h, f in zip(names, host, firmware) if h != f] == []
    assert 20 < host.count("OK") < len(names) - 20
