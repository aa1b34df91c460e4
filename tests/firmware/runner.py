# Runs firmware tests on MicroPython: `micropython runner.py FILE TEST [TEST...]`.
# Prints one line per test: "@@RESULT <name> PASS" or "@@RESULT <name> FAIL" followed by the
# traceback; pytest (tests/firmware/conftest.py) turns each into its own item.
import sys
import io

here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
sys.path.insert(0, here)
sys.path.insert(0, here + "/../../firmware")


def main():
    path = sys.argv[1]
    name = path.rsplit("/", 1)[-1][:-3]
    mod = __import__(name)
    names = sys.argv[2:] or [n for n in dir(mod) if n.startswith("test_")]
    failed = 0
    for n in names:
        fn = getattr(mod, n)
        try:
            fn()
            print("@@RESULT", n, "PASS")
        except Exception as e:
            failed += 1
            buf = io.StringIO()
            sys.print_exception(e, buf)
            print("@@RESULT", n, "FAIL")
            print(buf.getvalue())
            print("@@END")
    sys.exit(1 if failed else 0)


main()
