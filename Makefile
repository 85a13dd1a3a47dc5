PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
export RCSGATE_WEBHOOKS_ALLOW_PRIVATE ?= true

.PHONY: install install-dev run test lint typecheck bench clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "rcsgate needs Python 3.11+ (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e .
	@touch $@

$(VENV)/.installed-dev: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e '.[dev]'
	@touch $(VENV)/.installed $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

run: install
	$(BIN)/rcsgate db upgrade
	$(BIN)/rcsgate demo
	$(BIN)/rcsgate serve

lint: install-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: install-dev
	$(BIN)/mypy

# Three pytest workers, one test file each at a time (files share module-scoped servers), the
# longest files first (tests/conftest.py, LONGEST_FIRST): many tests wait on real servers and
# subprocesses, and with two workers a 2-core machine was idle about a third of the run.
test: lint typecheck
	$(BIN)/pytest -n 3 --dist loadfile --no-loadscope-reorder

# Benchmarks (docs/PERFORMANCE.md) on SQLite, and on PostgreSQL when RCSGATE_BENCH_DATABASE_URL names a
# database the benchmarks may empty (e.g. postgresql://postgres@127.0.0.1:5432/rcsgate_bench).
# single_send, pipeline, queries and (PostgreSQL only) scale rewrite their tables in docs/PERFORMANCE.md (--update-doc);
# `make bench BENCH_ARGS=--quick` is a smoke run of everything that writes nothing there.
BENCH_ARGS ?=
BENCH_SCRIPTS := single_send pipeline queries

bench: install-dev
	$(BIN)/python bench/campaigns.py --json $(BENCH_ARGS)
	@set -e; for s in $(BENCH_SCRIPTS); do \
		echo "== bench/$$s.py (SQLite)"; \
		$(BIN)/python bench/$$s.py --json --update-doc $(BENCH_ARGS); \
	done
	@set -e; if [ -n "$$RCSGATE_BENCH_DATABASE_URL" ]; then \
		$(BIN)/python bench/campaigns.py --json --database-url "$$RCSGATE_BENCH_DATABASE_URL" $(BENCH_ARGS); \
		for s in $(BENCH_SCRIPTS); do \
			echo "== bench/$$s.py (PostgreSQL)"; \
			$(BIN)/python bench/$$s.py --json --update-doc --database-url "$$RCSGATE_BENCH_DATABASE_URL" $(BENCH_ARGS); \
		done; \
		echo "== bench/scale.py (PostgreSQL)"; \
		$(BIN)/python bench/scale.py --json --update-doc --database-url "$$RCSGATE_BENCH_DATABASE_URL" $(BENCH_ARGS); \
	fi

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
