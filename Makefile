# raidboard — two commands: `make run` and `make test`.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STATE   ?= state
BOARD   ?= boards/dac960sx.json

.PHONY: run test bench torture clean-state

$(BIN)/raidboard: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

run: $(BIN)/raidboard
	$(BIN)/raidboard boot $(BOARD) $(STATE) --attach

test: $(BIN)/raidboard
	$(BIN)/pytest -q -n 2 tests

bench: $(BIN)/raidboard
	$(BIN)/python tests/bench/run.py

torture: $(BIN)/raidboard
	$(BIN)/python tests/bench/run.py --only crash --kills 1000
	$(BIN)/python tests/bench/run.py --only duplex --kills 200

clean-state:
	rm -rf $(STATE)
