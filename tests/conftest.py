"""Fixtures that boot real boards for end-to-end tests (the machinery is in harness.py).

`board` is a DAC960SX with small (64 MiB) sparse disks and the factory layout, booted into a fresh
state directory with its console and both iSCSI portals on ephemeral loopback ports. `make_board`
boots others (`make_board(disk_mb=..., model="dac960sf")`). Tests import helpers from `harness`,
not from `conftest`: tests/firmware has a conftest of its own.
"""
import pytest

from harness import Board, write_board


@pytest.fixture
def make_board(tmp_path):
    boards = []

    def make(model="dac960sx", **overrides):
        n = len(boards)
        state = tmp_path / ("state%d" % n)
        state.mkdir()
        path, d = write_board(tmp_path, model, **overrides)
        b = Board(path, state, d["heap_kb"])
        boards.append(b)
        return b

    yield make
    for b in boards:
        b.kill()


@pytest.fixture
def board(make_board):
    return make_board()
