from common import *
from c4util import rawreq
import random, json as J
random.seed(int(sys.argv[1]) if len(sys.argv) > 1 else 4)
b = boot("/tmp/atk/c4")
RANGES = [(0x20, 0x7e), (0xa0, 0x2ff), (0x300, 0x36f), (0x2000, 0x206f), (0xd7f0, 0xd7ff), (0xe000, 0xe0ff),
          (0xfdd0, 0xfdef), (0xfff0, 0xffff), (0x10000, 0x1f6ff), (0x10fff0, 0x10ffff), (0x0, 0x1f), (0x7f, 0x9f)]
def rstr(n):
    out = []
    for _ in range(n):
        lo, hi = random.choice(RANGES[:-2] if random.random() > 0.02 else RANGES[-2:]); out.append(chr(random.randint(lo, hi)))
    return "".join(out)
stats = {"tries": 0, "accepted": 0, "refused": {}, "restarts": 0, "divergences": 0, "weird": []}
try:
    for it in range(int(sys.argv[2]) if len(sys.argv) > 2 else 40):
        user = rstr(random.randint(0, 16))
        secret = rstr(random.randint(4, 9))
        mode = random.choice(["raw", "escaped", "rawbytes"])
        if mode == "raw":
            body = ("chap_set " + J.dumps({"user": user, "secret": secret}, ensure_ascii=False)).encode("utf-8", "surrogatepass")
        elif mode == "escaped":
            body = ("chap_set " + J.dumps({"user": user, "secret": secret})).encode()
        else:
            # raw bytes incl. CESU surrogates / overlongs inside the user string
            junk = random.choice([b"\xed\xa0\x80", b"\xc0\xaf", b"\xf4\x90\x80\x80", b"\xef\xbf\xbe", b"\xe2\x80\xa8", b"\xc2\x85"])
            body = b'chap_set {"user": "ab' + junk + b'cd", "secret": "' + secret.encode("utf-8", "surrogatepass") + b'"}'
        stats["tries"] += 1
        try:
            before = cmd(b, "chap_get")
        except Exception as e:
            stats["weird"].append("chap_get failed: %r" % e); break
        resp = rawreq(b, body)
        ok = resp.startswith("1 OK")
        if not ok:
            code = resp.split(" ")[2] if len(resp.split(" ")) > 2 else resp
            stats["refused"][code] = stats["refused"].get(code, 0) + 1
            after = cmd(b, "chap_get")
            if after != before:
                stats["weird"].append("refused but changed: %r %r -> %r" % (body[:80], before, after))
            continue
        stats["accepted"] += 1
        got = cmd(b, "chap_get")
        if random.random() < 0.3 or mode == "rawbytes":
            b.restart(); stats["restarts"] += 1
            got2 = cmd(b, "chap_get")
            if got2 != got:
                stats["divergences"] += 1; stats["weird"].append("restart changed %r -> %r" % (got, got2))
            if "bad" in b.log()[-2000:].lower() and "nvram" in b.log()[-2000:].lower():
                stats["weird"].append("nvram bad after restart")
        sent_user = None
        try:
            sent_user = J.loads(body.split(b" ", 1)[1].decode("utf-8"))["user"]
        except Exception:
            sent_user = "<undecodable>"
        if got["user"] != sent_user:
            stats["divergences"] += 1
            stats["weird"].append("stored %r sent %r (mode %s, bytes %r)" % (got["user"], sent_user, mode, body[:90]))
finally:
    print(J.dumps(stats, ensure_ascii=True, indent=0)[:4000])
    b.stop()
