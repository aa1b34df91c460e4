# JSON text of the line protocol's answers and events (lineproto.md "Numbers"). MicroPython's
# json.dumps writes a float with 16 significant digits from an inexact conversion, so 8.7 goes out
# as 8.699999999999999; here floats are written with 15, which gives back every value the board
# makes (tenths of a percent, times to the tenth of a millisecond). Everything else is json.dumps's.
import json


def dumps(v):
    if not _has_float(v):
        return json.dumps(v)          # the common case, in C
    out = []
    _put(v, out)
    return "".join(out)


def _has_float(v):
    if isinstance(v, float):
        return True
    if isinstance(v, dict):
        for k in v:
            if _has_float(v[k]):
                return True
    elif isinstance(v, (list, tuple)):
        for x in v:
            if _has_float(x):
                return True
    return False


def _put(v, out):
    if isinstance(v, float):
        out.append(number(v))
    elif isinstance(v, dict):
        out.append("{")
        sep = ""
        for k in v:
            out.append(sep)
            out.append(json.dumps(str(k)))
            out.append(": ")
            _put(v[k], out)
            sep = ", "
        out.append("}")
    elif isinstance(v, (list, tuple)):
        out.append("[")
        sep = ""
        for x in v:
            out.append(sep)
            _put(x, out)
            sep = ", "
        out.append("]")
    else:
        out.append(json.dumps(v))


def number(f):
    """A float as JSON: 15 significant digits, still a float to the reader (8.7, 100.0); a value
    JSON has no number for (NaN, infinity) is null."""
    if f != f or f in (float("inf"), float("-inf")):
        return "null"
    s = "%.15g" % f
    for c in s:
        if c in ".e":
            return s
    return s + ".0"
