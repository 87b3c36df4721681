# Every target makes its own virtual environment on first use, so on a fresh clone
# `make test` is the whole set-up plus the whole test run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test lint format sim bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,fast]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check paxoskv tests benchmarks simulations
	$(BIN)/ruff format --check paxoskv tests benchmarks simulations
	$(BIN)/mypy paxoskv

format: $(STAMP)
	$(BIN)/ruff check --fix paxoskv tests benchmarks simulations
	$(BIN)/ruff format paxoskv tests benchmarks simulations

sim: $(STAMP)
	$(BIN)/python -m simulations run --seeds 2000 --jobs 2

bench: $(STAMP)
	$(BIN)/python benchmarks/storage.py
	$(BIN)/python benchmarks/state.py
	$(BIN)/python benchmarks/engine.py
	$(BIN)/python benchmarks/transport.py
	$(BIN)/python benchmarks/cluster.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info

.PHONY: demo local-cluster

# A three-node cluster on loopback, driven through the CLI: writes, a watch, the leader
# killed and restarted; prints every command it runs. Bounded; leaves nothing running.
demo: $(STAMP)
	$(BIN)/python demo/demo.py

# N nodes on loopback in the foreground (NODES=3 LEARNERS=0); Ctrl-C stops them all.
local-cluster: $(STAMP)
	$(BIN)/paxos-kv local-cluster --nodes $(or $(NODES),3) --learners $(or $(LEARNERS),0)
