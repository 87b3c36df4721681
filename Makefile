# Every target makes its own virtual environment on first use, so on a fresh clone
# `make test` is the whole set-up plus the whole test run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test test-pure lint format sim bench clean compile pure

# Editable in compat mode: the project root goes on sys.path, where the compiled core's shared
# library (paxoskv_core__mypyc) lies.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,fast,web]' --config-settings editable_mode=compat
	touch $(STAMP)

# The core (paxoskv/paxos, paxoskv/state, the transport's framing; the list is in
# paxoskv/compiled.py) compiled by mypyc
# into C extension modules beside its sources; rebuilt whenever one of them changes, so a stale
# build never runs edited code (and tests/test_compiled_core.py fails if one does).
# `make pure` removes it.
CORE := $(shell $(PYTHON) setup.py --core-sources)
COMPILED := build/.compiled

# OpenSSL's headers too: the tag module is optional, so a build made before they were
# installed lacks it, and must be made again once they are.
OPENSSL_HEADERS := $(wildcard /usr/include/openssl/sha.h /usr/local/include/openssl/sha.h)

$(COMPILED): $(STAMP) $(CORE) setup.py paxoskv/compiled.py $(OPENSSL_HEADERS)
	mkdir -p build && find paxoskv -name '*.so' -delete
	PAXOSKV_COMPILE=1 $(BIN)/python setup.py --quiet build_ext --inplace --parallel 2 \
		>build/compile.log 2>&1 || (cat build/compile.log; exit 1)
	# An edit that changes no generated C (a comment) leaves the library as it was; it is
	# still the build of these sources (tests/test_compiled_core.py compares their times).
	touch paxoskv_core__mypyc*.so
	touch $@

compile: $(COMPILED)

pure:
	find paxoskv -name '*.so' -delete
	rm -f paxoskv_core__mypyc*.so $(COMPILED)

# Everything against the compiled core (what `make demo` and the benchmarks run), then the
# core's unit tests against its pure-Python source as well, in a copy without the build (the
# simulator, the slow part, runs on the compiled build only: both run the same source).
test: $(COMPILED)
	$(BIN)/python -m pytest
	$(MAKE) test-pure

test-pure: $(STAMP)
	rm -rf build/pure && mkdir -p build/pure
	tar --exclude='./.venv' --exclude='./build' --exclude='*.so' --exclude='./.git' -cf - . \
		| tar -xf - -C build/pure
	cd build/pure && ../../$(BIN)/python -m pytest -q tests/paxos tests/state tests/transport \
		tests/test_compiled_core.py

lint: $(STAMP)
	$(BIN)/ruff check paxoskv tests benchmarks simulations
	$(BIN)/ruff format --check paxoskv tests benchmarks simulations
	$(BIN)/mypy paxoskv
	$(BIN)/mypy paxoskv/state/frozen.py  # the stub stands in for it above (frozen.pyi)
	$(BIN)/mypy simulations  # the simulator checks the engine: its own types are checked too

format: $(STAMP)
	$(BIN)/ruff check --fix paxoskv tests benchmarks simulations
	$(BIN)/ruff format paxoskv tests benchmarks simulations

sim: $(COMPILED)
	$(BIN)/python -m simulations run --seeds 2000 --jobs 2
	$(BIN)/python -m simulations run --seeds 1000 --first-seed 50001 --jobs 2 --nodes 3 \
		--leader-reads 0.5
	$(BIN)/python -m simulations run --seeds 1000 --first-seed 70001 --jobs 2 --nodes 3 \
		--leader-reads 0.5 --clock-drift 0.05 --faults crash,loss,membership,partition,pause

bench: $(COMPILED)
	$(BIN)/python benchmarks/storage.py
	$(BIN)/python benchmarks/state.py
	$(BIN)/python benchmarks/engine.py
	$(BIN)/python benchmarks/transport.py
	$(BIN)/python benchmarks/cluster.py
	$(BIN)/python benchmarks/reads.py --systems paxoskv
	$(BIN)/python benchmarks/thin_client.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
	find paxoskv -name '*.so' -delete
	rm -f paxoskv_core__mypyc*.so

.PHONY: demo local-cluster

# A three-node cluster on loopback, driven through the CLI: writes, a watch, the leader
# killed and restarted; prints every command it runs. Bounded; leaves nothing running.
demo: $(COMPILED)
	$(BIN)/python demo/demo.py

# N nodes on loopback in the foreground (NODES=3 LEARNERS=1: the tutorial promotes l1); Ctrl-C stops them all.
local-cluster: $(COMPILED)
	$(BIN)/paxos-kv local-cluster --nodes $(or $(NODES),3) --learners $(or $(LEARNERS),1)
