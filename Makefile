# Two commands: `make run` and `make test`. Both set up what they need first:
# `make run` the server's own dependencies only, `make test` the test tools too (pytest, mypy, Playwright...).
# `make run-cluster`: one worker process per CPU sharing a private local Redis (README, *Running a cluster*).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
ARGS ?=
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run run-cluster test loadgen setup run-deps python-deps web-deps browser redis test-python test-js typecheck bench clean

run: run-deps web-deps
	$(BIN)/python -m server $(ARGS)

# One worker per CPU sharing a private redis-server on a free loopback port (ARGS="--redis URL": that one).
run-cluster: run-deps web-deps redis
	$(BIN)/python -m tools.localcluster $(ARGS)

test: setup browser redis loadgen
	$(BIN)/python -m pytest -q
	cd client_web && node --test test/
	$(BIN)/mypy

setup: python-deps web-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# What running needs: the project and its runtime dependencies (pyproject.toml's `dependencies`).
run-deps: $(VENV)/.installed-run
$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

# Everything: the runtime dependencies and the `dev` extra (tests, type checking, plots).
python-deps: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@ $(VENV)/.installed-run

web-deps: client_web/node_modules/.package-lock.json
client_web/node_modules/.package-lock.json: client_web/package.json client_web/package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "make: npm not found: install Node.js 20+ with npm (the browser client's dependencies come from the npm registry)" >&2; exit 1; }
	cd client_web && npm ci --no-audit --no-fund

# Debian's Chromium for the real-browser tests (never a browser download).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core; }

# Debian's redis-server for the tests of the match directory in Redis (each test starts its own on a free
# loopback port; the package's own service is not used).
redis:
	@command -v redis-server >/dev/null 2>&1 || { \
	  echo "installing Debian's redis-server for the directory tests"; \
	  $(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends redis-server; }

test-python: setup browser redis loadgen
	$(BIN)/python -m pytest -q

test-js: web-deps
	cd client_web && node --test test/

typecheck: python-deps
	$(BIN)/mypy

bench: run-deps loadgen
	$(BIN)/python -m tools.bench $(ARGS)

# The benchmark's C load generator (tools/loadgen_c/loadgen.c): build/loadgen, outside git; and the
# feeder that measures it alone (tools/loadgen_c/feeder.c, `python -m tools.genbench`): build/feeder.
loadgen: build/loadgen build/feeder
build/loadgen build/feeder: build/%: tools/loadgen_c/%.c tools/loadgen_c/cli.h
	@mkdir -p build
	gcc -O2 -Wall -Wextra -o $@ $<

clean:
	rm -rf build $(VENV) client_web/node_modules test-artifacts .pytest_cache .mypy_cache
