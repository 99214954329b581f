# Two commands on a fresh machine (Python 3.11 + make): `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME := $(CURDIR)/.dagster_home
UI_PORT ?= 3000

.PHONY: run test ui lint format bench clean install install-dev

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamp files: reinstall only when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

## Materialize the whole asset graph on the bundled sample (data/sample -> data/warehouse/).
run: $(VENV)/.installed
	$(BIN)/segment-pipeline run

## Run the test suite, one pytest-xdist worker per CPU (at most 4), a test file per worker at a
## time: its module fixtures are built once. `make test PYTEST_ARGS=` runs it in one process.
PYTEST_ARGS ?= -n logical --maxprocesses=4 --dist loadfile
test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## Start the Dagster UI on http://127.0.0.1:$(UI_PORT) (project instance in .dagster_home/).
ui: $(VENV)/.installed
	$(BIN)/dagster dev -h 127.0.0.1 -p $(UI_PORT) -w workspace.yaml

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/sqlfluff lint segment_pipeline/sql

format: $(VENV)/.installed-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## Measure the pipeline against the issue's targets (BENCH_ARGS=--quick skips the 10M size).
bench: $(VENV)/.installed
	$(BIN)/python benchmarks/run_benchmarks.py $(BENCH_ARGS)

clean:
	rm -rf data/warehouse .dagster_home/storage .dagster_home/history .dagster_home/logs \
		.dagster_home/schedules .pytest_cache .ruff_cache
