"""Pair figures: failover time (kill -9 of a drive's owner to the first GOOD READ through its
taken-over portal, by a host that reconnects to the address it knew; median and max of the kills,
which alternate between the controllers, each followed by a failback), and first writes during a
snapshot on a pair against a simplex board, side by side in interleaved rounds: issued through the
owner's port (duplex_snapshot_first_write_ratio) and through the partner's (forwarded,
duplex_forwarded_write_ratio). Each ratio is the median of the rounds' ratios; the rounds' range
is printed as _min/_max. Write-back writes with the cache mirrored to the partner against the same on
the simplex board (no partner): 64 KiB writes (duplex_wb_write_ratio) and 4 KiB writes
(duplex_wb_write_4k_ratio), interleaved the same way. `--kills N`, `--rounds N`."""
import random
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from duplex_storm import OWN1, PRIMARY, Host, give_controller_1_a_drive  # noqa: E402
from harness import Board, Pair, write_board  # noqa: E402

CHUNK = 128          # blocks of the factory log drive's chunk: each write below is a first write
FIRST_WRITES = 192   # per round and host (12 MiB of copies)
BATCH = 16


def arg(argv, name, default):
    return int(argv[argv.index(name) + 1]) if name in argv else default


def run(emit, argv):
    kills, rounds = arg(argv, "--kills", 20), arg(argv, "--rounds", 15)
    with tempfile.TemporaryDirectory() as d:
        pair = Pair(Path(d), populated_slots=8)
        simplex = None
        try:
            give_controller_1_a_drive(pair)
            times = [failover_ms(pair, k % 2) for k in range(kills)]
            emit("duplex_failover_ms", statistics.median(times), "ms")
            emit("duplex_failover_max_ms", max(times), "ms")
            sdir = Path(d) / "simplex"
            sdir.mkdir()
            board_file, bd = write_board(sdir, populated_slots=8)
            (sdir / "state").mkdir()
            simplex = Board(board_file, sdir / "state", bd["heap_kb"])
            ratios(emit, pair, simplex, rounds)
            wb_ratios(emit, pair, simplex, rounds)
        finally:
            pair.kill()
            if simplex is not None:
                simplex.kill()


def failover_ms(pair, victim):
    """kill -9 of `victim` -> ms until a host at its host port 0 reads its drive again; then failback"""
    errors = []
    h = Host(pair.portal(victim, 0), errors, pause=0.002)
    lun = PRIMARY if victim == 0 else OWN1
    cdb = struct.pack(">BBQIBB", 0x88, 0, 0, 1, 0, 0)
    if h.run(lun, cdb, read_len=512) is None:
        raise RuntimeError("no read before the kill: %s" % errors)
    t0 = time.perf_counter()
    pair.c[victim].proc.kill()
    if h.run(lun, cdb, read_len=512) is None:
        raise RuntimeError("no read after the kill: %s" % errors)
    ms = (time.perf_counter() - t0) * 1000
    h.close()
    pair.kill(victim)
    pair.restart(victim)
    survivor = 1 - victim
    pair.wait(survivor, lambda s: s["serving"] == [survivor] and s["partner"] == "UP", "gave back")
    pair.wait(victim, lambda s: s["serving"] == [victim], "own ports")
    return ms


def ratios(emit, pair, simplex, rounds):
    """first writes on the pair through the owner's and the partner's port vs on the simplex board:
    in each round one snapshot on each board, and the three hosts' writes interleaved in batches
    (in a new order each batch), so that the machine's noise falls on all three alike"""
    hosts = {"simplex": Host(simplex.portals[0], []), "owner": Host(pair.portal(0, 0), []),
             "forwarded": Host(pair.portal(1, 0), [])}
    first = {"simplex": 0, "owner": 0, "forwarded": FIRST_WRITES}     # chunks: the pair's two apart
    rnd = random.Random(rounds)
    got = {k: [] for k in hosts}
    for _ in range(rounds):
        for ctl in (simplex, pair.c[0]):
            ctl.command("snapshot_start", {"sd": 0})
        spent = dict.fromkeys(hosts, 0.0)
        for b in range(0, FIRST_WRITES, BATCH):
            order = list(hosts)
            rnd.shuffle(order)
            for k in order:
                spent[k] += first_writes(hosts[k], first[k] + b)
        for ctl in (simplex, pair.c[0]):
            ctl.command("snapshot_stop")
        for k in hosts:
            got[k].append(spent[k])
    for h in hosts.values():
        h.close()
    for name, k in (("duplex_snapshot_first_write_ratio", "owner"), ("duplex_forwarded_write_ratio", "forwarded")):
        r = [a / b for a, b in zip(got["simplex"], got[k])]      # time on the simplex / time here
        emit(name, statistics.median(r), "x")
        emit(name + "_min", min(r), "x")
        emit(name + "_max", max(r), "x")


def wb_ratios(emit, pair, simplex, rounds):
    """write-back writes on SD0 through its owner, mirrored to the partner, vs the simplex board's"""
    for ctl in (simplex, pair.c[0]):
        ctl.command("sd_policy", {"sd": 0, "wb": True})
    hosts = {"simplex": Host(simplex.portals[0], []), "pair": Host(pair.portal(0, 0), [])}
    rnd = random.Random(rounds)
    for name, blocks in (("duplex_wb_write_ratio", 128), ("duplex_wb_write_4k_ratio", 8)):
        got = {k: [] for k in hosts}
        for _ in range(rounds):
            spent = dict.fromkeys(hosts, 0.0)
            for b in range(0, FIRST_WRITES, BATCH):
                order = list(hosts)
                rnd.shuffle(order)
                for k in order:
                    spent[k] += writes(hosts[k], b * blocks, blocks)
            for k in hosts:
                got[k].append(spent[k])
        r = [a / b for a, b in zip(got["simplex"], got["pair"])]
        emit(name, statistics.median(r), "x")
        emit(name + "_min", min(r), "x")
        emit(name + "_max", max(r), "x")
    for h in hosts.values():
        h.close()
    for ctl in (simplex, pair.c[0]):
        ctl.command("sd_policy", {"sd": 0, "wb": False})


def writes(host, lba, blocks):
    """-> s for BATCH writes of `blocks` blocks from `lba` on"""
    data = bytes(blocks * 512)
    t0 = time.perf_counter()
    for i in range(BATCH):
        cdb = struct.pack(">BBQIBB", 0x8A, 0, lba + i * blocks, blocks, 0, 0)
        if host.run(PRIMARY, cdb, data_out=data) is None:
            raise RuntimeError("a write failed: %s" % host.errors)
    return time.perf_counter() - t0


def first_writes(host, chunk):
    """-> s for BATCH 4 KiB writes, each the first to its chunk since the snapshot began"""
    data = bytes(4096)
    t0 = time.perf_counter()
    for c in range(chunk, chunk + BATCH):
        if host.run(PRIMARY, struct.pack(">BBQIBB", 0x8A, 0, c * CHUNK, 8, 0, 0), data_out=data) is None:
            raise RuntimeError("a first write failed: %s" % host.errors)
    return time.perf_counter() - t0
