from common import *
exec(open("c4.py").read().split("RANGES =")[0].split("b = boot")[1].join(["b = boot", ""]) if False else "")
import json as J
b = boot("/tmp/atk/c4b")
from c4util import rawreq
try:
    for ch in ["\u00e4", "\u0301", "\u2028", "\u2029", "\u200b", "\u202e", "\ufeff", "\ufffe", "\uffff", "\ufdd0", "\ue000", "\U0001f600", "\U0010ffff", "\u00a0", "\u00ad", "\u0085"]:
        user = "ab" + ch + "cd"
        body = ("chap_set " + J.dumps({"user": user, "secret": "secret-secret-1"}, ensure_ascii=False)).encode("utf-8")
        r = rawreq(b, body)
        ok = r.startswith("1 OK")
        got = cmd(b, "chap_get")["user"] if ok else None
        b.restart()
        got2 = cmd(b, "chap_get")["user"] if ok else None
        print("U+%04X" % ord(ch), r[:60], ok and (got == user, got2 == user))
finally:
    b.stop()
