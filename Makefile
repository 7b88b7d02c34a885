# Two commands matter: `make run` and `make test`. Both work on a fresh clone against the
# PostgreSQL, Redis and RabbitMQ on localhost (see README for the settings).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run api worker setup test check install browser clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

setup: $(STAMP)
	$(BIN)/python -m server.setup

run: setup
	$(BIN)/python -m server.run

api: setup
	$(BIN)/python -m server.run api

worker: setup
	$(BIN)/python -m server.run worker

check: $(STAMP)
	$(BIN)/ruff check server tests scripts
	$(BIN)/mypy server

# The browser test drives Debian's Chromium (no browser download); installed when missing
# and when we may (root, as in CI). Without it that one test is skipped.
browser:
	@command -v chromium >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

test: $(STAMP) browser
	$(BIN)/ruff check server tests scripts
	$(BIN)/mypy server
	$(BIN)/pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
