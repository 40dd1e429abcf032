# Stackwatch — developer entry points. `make run` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SDK := clients/python
SUM := $(shell cat pyproject.toml $(SDK)/pyproject.toml $(SDK)/setup.py | cksum | cut -d' ' -f1)
RUN_STAMP := $(VENV)/.installed-run-$(SUM)
STAMP := $(VENV)/.installed-test-$(SUM)
NODE_STAMP := tests/node/node_modules/.installed
JS := clients/js
JS_STAMP := $(JS)/node_modules/.installed
VENDOR := src/stackwatch/server/web/static/vendor

.PHONY: run test check lint format clean bench vendor screenshots

## The server depends on stackwatch-sdk (stackwatch.sdk, stackwatch.scrub), which is built from $(SDK): both are
## installed editable in one step, so pip takes stackwatch-sdk from here and both import from src/.
## `make run` needs only that ($(RUN_STAMP)); everything else also needs the test tools, the `test` extra
## ($(STAMP)), which includes the run installation.
$(RUN_STAMP): pyproject.toml $(SDK)/pyproject.toml $(SDK)/setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ./$(SDK) -e .
	rm -f $(VENV)/.installed-run-*
	touch $(RUN_STAMP)

$(STAMP): pyproject.toml $(SDK)/pyproject.toml $(SDK)/setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ./$(SDK) -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP) $(RUN_STAMP)

## The JavaScript client (clients/js): its dev dependencies (@sentry/node, TypeScript for the JSDoc check), and
## the live @sentry/node 10 and 11 its packed tarball is tested against (clients/js/test/compat).
JS_COMPAT := $(JS)/test/compat/sentry-node-10 $(JS)/test/compat/sentry-node-11
$(JS_STAMP): $(JS)/package.json $(JS)/package-lock.json $(JS_COMPAT:=/package-lock.json)
	for dir in $(JS_COMPAT); do (cd $$dir && npm ci --no-audit --no-fund --loglevel=error) || exit 1; done
	cd $(JS) && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed

$(NODE_STAMP): tests/node/package.json tests/node/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		cd tests/node && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed; \
	else echo "npm not found: the @sentry/node tests will be skipped"; fi

## Start Stackwatch on SQLite (./stackwatch-data) and print the dashboard URL, login and DSN; on a fresh data
## directory, a simulated MeshHook workload (stackwatch demo) fills the default project.
run: $(RUN_STAMP)
	$(BIN)/stackwatch serve --demo

## Lint, type-check and run the whole test suite: Python (SQLite and PostgreSQL), then the JavaScript client's.
test: check $(NODE_STAMP)
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)
	cd $(JS) && npm test --silent

## ruff and mypy --strict for the Python; TypeScript's checker over the JavaScript's JSDoc types, and the shipped
## .d.ts files (clients/js/types, written by `npm run types` there) must be what the sources give.
check: $(STAMP) $(JS_STAMP)
	$(BIN)/ruff check src tests bench $(SDK)
	$(BIN)/ruff format --check src tests bench $(SDK)
	$(BIN)/mypy
	cd $(JS) && npm run --silent check

format: $(STAMP)
	$(BIN)/ruff format src tests bench $(SDK)
	$(BIN)/ruff check --fix src tests bench $(SDK)

## Take the dashboard's screenshots in docs/screenshots again (the browser tests take them; needs Chromium).
screenshots: $(STAMP)
	STACKWATCH_SCREENSHOTS=docs/screenshots $(BIN)/python -m pytest tests/test_browser.py tests/test_browser_connect.py \
		-k sqlite -q

## Throughput and latency benchmark (see bench/README.md).
bench: $(STAMP)
	$(BIN)/python -m bench.loadgen

clean:
	rm -rf $(VENV) tests/node/node_modules $(JS)/node_modules $(JS_COMPAT:=/node_modules) .pytest_cache .mypy_cache .ruff_cache

## Fetch the vendored front-end libraries again from npm (see src/stackwatch/server/web/static/vendor/README.md).
vendor:
	rm -rf .vendor-tmp && mkdir .vendor-tmp
	cd .vendor-tmp && npm pack --silent htmx.org@2.0.11 htmx-ext-sse@2.2.4 uplot@1.6.32 >/dev/null \
		&& for f in *.tgz; do mkdir "$${f%.tgz}" && tar xzf "$$f" -C "$${f%.tgz}"; done
	cp .vendor-tmp/htmx.org-2.0.11/package/dist/htmx.min.js .vendor-tmp/htmx.org-2.0.11/package/LICENSE $(VENDOR)/htmx/
	cp .vendor-tmp/htmx-ext-sse-2.2.4/package/dist/sse.min.js .vendor-tmp/htmx-ext-sse-2.2.4/package/LICENSE \
		$(VENDOR)/htmx-ext-sse/
	cp .vendor-tmp/uplot-1.6.32/package/dist/uPlot.iife.min.js .vendor-tmp/uplot-1.6.32/package/dist/uPlot.min.css \
		.vendor-tmp/uplot-1.6.32/package/LICENSE $(VENDOR)/uplot/
	rm -rf .vendor-tmp
