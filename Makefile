# Safety Admin — `make run` starts everything on embedded defaults; `make test` runs the whole suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# Tests talk to the real PostgreSQL and Redis on 127.0.0.1; override these to point elsewhere.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/postgres
TEST_REDIS_URL    ?= redis://127.0.0.1:6379/1
TEST_ENV = SAFETY_ENV=test DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) DJANGO_ALLOW_ASYNC_UNSAFE=true

.PHONY: install run test chaos bench lint format clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

run: install  ## start web, worker, embedded Redis and the demo model on http://127.0.0.1:$${PORT:-8000}
	$(BIN)/python scripts/devstack.py

test: install  ## the whole suite against real PostgreSQL, Redis, workers and Chromium
	$(TEST_ENV) $(BIN)/python -m pytest $(ARGS)

chaos: install  ## only the fault-injection scenarios
	$(TEST_ENV) $(BIN)/python -m pytest -m resilience tests/resilience $(ARGS)

bench: install  ## benchmarks, each beside its baseline; prints ratios
	$(TEST_ENV) $(BIN)/python bench/run_all.py $(ARGS)

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

clean:
	rm -rf data staticfiles .pytest_cache
