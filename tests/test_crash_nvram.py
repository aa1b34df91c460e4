"""NV memory under kill -9: a firmware process updating its configuration in a loop is killed at
random instants; every time, the image that remains loads, and holds one of the written states."""
import random
import subprocess

from harness import MICROPYTHON, ROOT

WRITER = r"""
import sys
sys.path.insert(0, %r)
from hw import nvram
nv = nvram.Nvram(%r, 16384)
try:
    cfg = nv.load()
except OSError:
    cfg = nv.create(nvram.encode(nvram.Config(), 1))
i = cfg.generation
print("go")
while True:
    i += 1
    # content derived from the generation, so a reader can check the image is one we wrote
    cfg.lunmap[0] = i %% 8
    cfg.chap_user = "user%%d" %% i
    nv.store(cfg)
    print(i)
"""

READER = r"""
import sys
sys.path.insert(0, %r)
from hw import nvram
cfg = nvram.Nvram(%r, 16384).load()
ok = cfg.lunmap[0] == cfg.generation %% 8 and cfg.chap_user == "user%%d" %% cfg.generation
print(cfg.generation, ok)
"""


def test_kill_during_nvram_updates_never_leaves_an_unreadable_image(tmp_path):
    path = str(tmp_path / "nvram.bin")
    fwdir = str(ROOT / "firmware")
    rnd = random.Random(1)
    last = 0
    for _ in range(40):
        p = subprocess.Popen([MICROPYTHON, "-c", WRITER % (fwdir, path)], stdout=subprocess.PIPE)
        p.stdout.readline()
        for _ in range(rnd.randrange(1, 6)):
            p.stdout.readline()   # killed after a random number of updates, in the middle of the next
        p.kill()
        p.wait()
        p.stdout.close()
        out = subprocess.run([MICROPYTHON, "-c", READER % (fwdir, path)], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        gen, ok = out.stdout.split()
        assert ok == "True" and int(gen) >= last
        last = int(gen)
    assert last > 40          # the writer made progress between kills (at least one update each time)
