# Two commands matter: `make run` and `make test`. `make run` uses the PostgreSQL, Redis and
# RabbitMQ at their URLs, and starts the ones that do not answer (see README, "Run it");
# `make stop` stops what it started.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# What running needs (`make run`), and on top of it the test and lint tools (`make test`).
RUNTIME := $(VENV)/.runtime
STAMP := $(VENV)/.installed

.PHONY: run stop api worker setup test test-fast check format install browser clean

$(RUNTIME): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
		echo "Python 3.11 or newer is needed; $(PYTHON) is $$($(PYTHON) --version 2>&1)." \
		"Run with another: make run PYTHON=python3.12"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $(RUNTIME)

$(STAMP): $(RUNTIME)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

setup: $(RUNTIME)
	$(BIN)/python -m server.setup

run: setup
	$(BIN)/python -m server.run

stop: $(RUNTIME)
	$(BIN)/python -m server.services stop

api: setup
	$(BIN)/python -m server.run api

worker: setup
	$(BIN)/python -m server.run worker

# Format, lint and types: what `make test` checks first.
check: $(STAMP)
	$(BIN)/ruff format --check server tests scripts
	$(BIN)/ruff check server tests scripts
	$(BIN)/mypy server tests scripts

format: $(STAMP)
	$(BIN)/ruff format server tests scripts
	$(BIN)/ruff check --fix server tests scripts

# The unit tier, in seconds: tests that need none of the services. The services' URLs point
# at a closed port, so a test that would reach one fails instead of passing by chance.
NO_SERVICES := TEST_DATABASE_URL=postgresql+psycopg2://postgres@127.0.0.1:9/none \
	TEST_BROKER_URL=amqp://guest:guest@127.0.0.1:9// TEST_REDIS_URL=redis://127.0.0.1:9/0
test-fast: $(STAMP)
	$(NO_SERVICES) $(BIN)/pytest -m unit -q $(PYTEST_ARGS)

# The browser test drives Debian's Chromium (no browser download), and a test checks
# docker-compose.yml with `docker-compose config`; both installed when missing and when we
# may (root, as in CI). Without them those tests are skipped.
browser:
	@command -v chromium >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	@command -v docker-compose >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null; }

# Everything, with a coverage report (the API and worker processes the tests start are
# measured too). The fault suite runs last and unmeasured: it times kills and restarts.
test: check browser
	rm -rf test-artifacts/coverage && mkdir -p test-artifacts/coverage
	$(BIN)/coverage run -m pytest -m "not faults" $(PYTEST_ARGS)
	$(BIN)/pytest -m faults $(PYTEST_ARGS) || [ $$? = 5 ]
	$(BIN)/coverage combine -q && $(BIN)/coverage report

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
