# Stackwatch — developer entry points. `make run` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
NODE_STAMP := tests/node/node_modules/.installed

.PHONY: run test check lint format clean bench

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

$(NODE_STAMP): tests/node/package.json tests/node/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		cd tests/node && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed; \
	else echo "npm not found: the @sentry/node tests will be skipped"; fi

## Start Stackwatch on SQLite (./stackwatch-data) and print the dashboard URL, login and DSN; on a fresh data
## directory, a simulated MeshHook workload (stackwatch demo) fills the default project.
run: $(STAMP)
	$(BIN)/stackwatch serve --demo

## Lint, type-check and run the whole test suite (SQLite and PostgreSQL).
test: check $(NODE_STAMP)
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

check: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

## Throughput and latency benchmark (see bench/README.md).
bench: $(STAMP)
	$(BIN)/python -m bench.loadgen

clean:
	rm -rf $(VENV) tests/node/node_modules .pytest_cache .mypy_cache .ruff_cache
