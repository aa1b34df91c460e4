# The exception index of the snapshot engine: chunk -> log slot, against a dict, at a full log and
# past it, runs, and its RAM cost: a 100 GiB log of 64 KiB chunks on a 1 TiB primary, first
# written in random order, indexed whole in a quarter of a 32 MiB heap (the default board has 40).
import gc
import random
from snapshot import index as snapshot

DEFAULT_BOARD_BUDGET = 32 * 1024 * 1024 // 4
LOG_100G_SLOTS = 1637999                 # what attach_log finds on a 100 GiB log of 64 KiB chunks
PRIMARY_1T_CHUNKS = 1 << 24              # 1 TiB of 64 KiB chunks


def test_lookups_match_a_dict_at_a_full_log():
    idx = snapshot.ExceptionIndex(3000)
    ref = {}
    random.seed(5)
    while len(ref) < 3000:
        c = random.getrandbits(30) % idx.max_chunks
        if c not in ref:
            ref[c] = len(ref)
            assert idx.insert(c, ref[c])
    assert idx.count == 3000
    for c, s in ref.items():
        assert idx.find(c) == s, (c, s)
    misses = 0
    while misses < 2000:
        c = random.getrandbits(30) % idx.max_chunks
        if c not in ref:
            assert idx.find(c) == -1
            misses += 1
    assert sorted(idx.chunks()) == sorted(ref)
    first = next(iter(ref))
    assert idx.insert(first, 2999)                   # a chunk already there keeps its slot
    assert idx.count == 3000 and idx.find(first) == ref[first]
    assert not idx.insert_run(1 << 29, 0, 1)         # no slot left: refused, nothing changed
    idx.clear()
    assert idx.count == 0 and idx.find(first) == -1 and list(idx.chunks()) == []


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


def test_a_full_100_gib_log_written_in_random_order_fits_the_default_board():
    assert snapshot.ExceptionIndex.slots_for(DEFAULT_BOARD_BUDGET) >= LOG_100G_SLOTS
    gc.collect()
    a = gc.mem_alloc()
    idx = snapshot.ExceptionIndex(LOG_100G_SLOTS)
    gc.collect()
    per = (gc.mem_alloc() - a) / LOG_100G_SLOTS
    assert per <= 4.5, per
    assert idx.max_chunks >= PRIMARY_1T_CHUNKS
    # every slot used, chunks drawn at random from the whole primary (a bijection: no repeats)
    mul = 2654435761
    for s in range(LOG_100G_SLOTS):
        assert idx.insert_run((s * mul) & (PRIMARY_1T_CHUNKS - 1), s, 1), s
    assert idx.count == LOG_100G_SLOTS
    for s in range(0, LOG_100G_SLOTS, 97):
        assert idx.find((s * mul) & (PRIMARY_1T_CHUNKS - 1)) == s
    for s in range(LOG_100G_SLOTS, LOG_100G_SLOTS + 5000):      # never copied
        assert idx.find((s * mul) & (PRIMARY_1T_CHUNKS - 1)) == -1


def test_past_its_last_free_cell_the_index_refuses_and_keeps_every_entry():
    # the slot bound keeps the table at 90 %; here the viper insert is driven past it to the end
    idx = snapshot.ExceptionIndex(400)
    cells = len(idx.cells) // 4
    random.seed(9)
    ref = {}
    while True:
        c = random.getrandbits(26) % idx.max_chunks
        if c in ref:
            continue
        if not snapshot._insert(idx.cells, idx.p, c, len(ref) % 400):
            break
        ref[c] = len(ref) % 400
    assert idx.p[snapshot.P_N] == snapshot.STASH          # the stash filled before the refusal
    assert len(ref) > cells * 95 // 100            # well past the 90 % a full log fills
    assert sorted(idx.chunks()) == sorted(ref)
    for c, s in ref.items():
        assert idx.find(c) == s


def test_chunks_the_index_cannot_name_are_refused():
    idx = snapshot.ExceptionIndex(100)
    assert not idx.insert_run(idx.max_chunks - 1, 0, 2)
    assert not idx.insert(idx.max_chunks, 0)
    assert idx.count == 0
    try:
        snapshot.ExceptionIndex(snapshot.MAX_SLOTS + 1)
        raise AssertionError("an index beyond 24-bit slot numbers accepted")
    except ValueError:
        pass
