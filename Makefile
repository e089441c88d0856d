# CryptoFlow: every target bootstraps its own virtualenv, so a fresh clone needs only Python 3.11/3.12.
SHELL := /bin/bash
VENV ?= .venv
# First interpreter that really runs and is 3.11 or 3.12 (pyenv shims can exist without a working Python).
PYTHON_BIN ?= $(shell for c in python3.11 python3.12 python3; do \
  if $$c -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 12))' >/dev/null 2>&1; then command -v $$c; break; fi; done)
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench

.PHONY: demo test crash-test lint bench bench-quick bench-book bench-latency bench-host bench-sort bench-journal bench-synthetic chaos clean-warehouse

$(STAMP): pyproject.toml setup.py operators/book/_levels.c connectors/binance/_depth.c cryptoflow/_level_block.c
	@if [ -z "$(PYTHON_BIN)" ]; then echo "CryptoFlow needs python3.11 or python3.12 on PATH (bytewax 0.21.1 has no wheels for other versions)"; exit 1; fi
	@test -x $(PY) || $(PYTHON_BIN) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)  ## main job: local simulator replaying real captures -> dataflows -> ./warehouse
	$(VENV)/bin/cryptoflow demo

test: $(STAMP)  ## lint + the whole test suite
	$(PY) -m ruff check .
	$(PY) -m pytest -q

# The `bench` extra: cryptofeed (an sdist with Cython extensions, built here once) and py-spy.
$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	@touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)  ## throughput vs orjson ceiling and cryptofeed, 3 runs (~5 min): bench-results/latest.{json,md}
	$(PY) -m benchmarks.run

bench-quick: $(BENCH_STAMP)  ## the same, smaller corpora and one run (~1 min)
	$(PY) -m benchmarks.run --quick

chaos: $(STAMP)  ## 10-minute chaos run against the simulator (disconnects, stalls, 10x bursts, 429s)
	CRYPTOFLOW_CHAOS_SECONDS=$${CRYPTOFLOW_CHAOS_SECONDS:-600} $(PY) -m pytest -q -s -p no:logging tests/integration/test_chaos.py  # no log capture: it keeps every record

crash-test: $(STAMP)  ## SIGKILL/resume exactly-once test, longer: 30 kills per catalog, fresh seed (CFTEST_CRASH_SEED=n to replay)
	CFTEST_CRASH_KILLS=$${CFTEST_CRASH_KILLS:-30} $(PY) -m pytest -q -s tests/integration/test_crash_exactly_once.py

bench-journal: $(STAMP)  ## journal hand-off vs in-memory queue, frames/s on the Binance recording
	$(PY) -m benchmarks.journal_overhead

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

bench-synthetic: $(STAMP)  ## synthetic-mode frames/s per protocol (1,000 symbols)
	$(PY) -m benchmarks.bench_synthetic

bench-book: $(STAMP)  ## order-book ns per level update, bytes per level, RSS of 1,000 x 2,000-level books (issue 7)
	$(PY) -m benchmarks.bench_book

bench-latency: $(STAMP)  ## p50/p90/p99/max exchange->ingest->normalized->committed at 10k and 50k offered changes/s
	$(PY) -m benchmarks.latency

bench-sort: $(STAMP)  ## the sink's sort of a write (rows in order, interleaved) and its whole write stage: Arrow's sort_by against sort_rows
	$(PY) -m benchmarks.sort_rows

bench-host: $(STAMP)  ## 20 s of the host-stall meter alone (cryptoflow host-stalls): does the host take this machine's CPUs away?
	$(PY) -m cryptoflow.cli host-stalls --seconds 20

clean-warehouse:
	rm -rf warehouse
