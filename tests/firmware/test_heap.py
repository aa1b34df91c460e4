# The heap's holes are filled so that the allocator's search for a call's frame starts where the
# free space begins (hw/heap.py): after a collection leaves holes low in the heap, after nothing.
import gc
from hw import heap

K = 4000
SPACE = 4096            # blocks side by side: only the free space past every hole has so many


def _free_space():
    # every free block below the heap's free space taken and kept alive (its garbage first
    # collected): the lowest free block is then where the free space begins; -> what keeps them
    gc.collect()
    keep = [None] * 200000
    n = k = last = 0
    while k < SPACE:
        f = n * 0.5
        keep[n] = f
        k = k + 1 if id(f) == last + heap.BLOCK else 0
        last = id(f)
        n += 1
    return keep


def _holes():
    # K one-block objects side by side at the start of the free space, every second one then
    # freed by a collection: K / 2 holes of one block between live objects, and a larger one
    # halfway, the only ones below the free space; -> (what keeps the others alive, the highest
    # address among the K)
    keep = _free_space()
    objs = [None] * K
    for i in range(K):
        objs[i] = i * 0.5
    top = 0
    for o in objs:
        top = max(top, id(o))
    for i in range(0, K, 2):
        objs[i] = None
    for i in range(K // 2, K // 2 + 2 * heap.RUN):
        objs[i] = None                      # and one hole that a call's frame would fit in
    gc.collect()
    return (keep, objs), top


def test_a_float_is_one_heap_block_as_the_plug_counts_on():
    keep = _free_space()
    x = 3
    a = id(x * 0.5)
    b = id(x * 1.5)
    assert b - a == heap.BLOCK, (a, b)
    assert len(keep)


def test_the_holes_a_collection_leaves_are_filled_and_the_free_space_starts_past_them():
    objs, top = _holes()
    p = heap.Plug()
    n = p.run(1 << 20)
    assert n >= K // 2 and p.holes >= K // 2 - heap.RUN, (n, p.holes)
    x = 7
    assert id(x * 0.5) > top, "a hole below the free space was left"
    assert objs[1][1] == 0.5               # (what lives between the holes is untouched)
    assert not p.wide


def test_with_no_hole_a_run_costs_only_the_run_it_finds():
    p = heap.Plug()
    p.run()                                 # (its own attributes made)
    keep = _free_space()
    holes = p.holes
    assert p.run() == heap.RUN + 1 and p.run() == heap.RUN + 1 and p.holes == holes
    assert len(keep)


def test_a_run_stops_at_its_step_and_the_next_one_goes_on():
    objs, top = _holes()
    p = heap.Plug()
    assert p.run(500) == 500
    x = 7
    assert id(x * 0.5) < top               # holes are left for the next run
    p.run(1 << 20)
    assert id(x * 1.5) > top
    assert len(objs[1]) == K
