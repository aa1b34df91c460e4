# The exception index of the snapshot engine: chunk -> log slot, against a dict, including probe
# chains that wrap around the end of the table, runs, and its RAM cost.
import gc
import random
from snapshot import index as snapshot


def _home(idx, key):
    # the table cell a chunk's probe chain starts at (the engine's hash)
    return (((key * 0x9E3779B1) & 0xFFFFFFFF) * idx.cap) >> 32


def test_lookups_match_a_dict_through_wrapping_probe_chains():
    idx = snapshot.ExceptionIndex(3000)
    # 20 chunks whose chains start in the last cell: they wrap around to the table's start
    last = [k for k in range(200000) if _home(idx, k) == idx.cap - 1][:20]
    assert len(last) == 20
    ref = {}
    random.seed(5)
    for c in last:
        ref[c] = len(ref)
        idx.insert(c, ref[c])
    while len(ref) < 3000:
        c = random.getrandbits(30)
        if c not in ref:
            ref[c] = len(ref)
            idx.insert(c, ref[c])
    assert idx.count == 3000
    for c, s in ref.items():
        assert idx.find(c) == s, (c, s)
    misses = 0
    while misses < 2000:
        c = random.getrandbits(30)
        if c not in ref:
            assert idx.find(c) == -1
            misses += 1
    idx.insert(last[0], 2999)                   # a chunk already there keeps its slot
    assert idx.count == 3000 and idx.find(last[0]) == 0
    idx.clear()
    assert idx.count == 0 and idx.find(last[0]) == -1


def test_runs_are_chunks_in_one_place():
    idx = snapshot.ExceptionIndex(64)
    idx.insert_run(10, 0, 4)            # chunks 10..13 in slots 0..3
    idx.insert(14, 7)                   # 14 copied later, not next to 13 on the log
    idx.insert_run(20, 4, 2)            # 20, 21 in slots 4, 5
    assert idx.run(0, 100) == (10, -1)              # 0..9 uncopied: read from the primary
    assert idx.run(10, 100) == (14, 0)              # 10..13 in consecutive slots from 0
    assert idx.run(11, 12) == (13, 1)               # bounded by `last`
    assert idx.run(14, 100) == (15, 7)
    assert idx.run(15, 100) == (20, -1)
    assert idx.run(20, 100) == (22, 4)
    assert [idx.find(c) for c in (9, 10, 13, 14, 21, 22)] == [-1, 0, 3, 7, 5, -1]


def test_ram_per_exception_is_under_eight_bytes():
    gc.collect()
    a = gc.mem_alloc()
    idx = snapshot.ExceptionIndex(200000)
    idx.insert_run(0, 0, 200000)
    gc.collect()
    assert (gc.mem_alloc() - a) / 200000 <= 8
    try:
        snapshot.ExceptionIndex(snapshot.MAX_SLOTS + 1)
        raise AssertionError("an index beyond 24-bit slot numbers accepted")
    except ValueError:
        pass
