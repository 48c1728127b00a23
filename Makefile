# Every target sets up its own virtualenv in .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint typecheck check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

demo: $(BIN)/python
	$(BIN)/python -m pip install --quiet .
	$(BIN)/archiver demo

test: $(BIN)/python
	$(BIN)/python -m pip install --quiet ".[test]"
	$(BIN)/python -m pytest

lint: $(BIN)/python
	$(BIN)/python -m pip install --quiet ".[dev]"
	$(BIN)/ruff check archiver tests
	$(BIN)/ruff format --check archiver tests

typecheck: $(BIN)/python
	$(BIN)/python -m pip install --quiet ".[dev]"
	$(BIN)/mypy

check: lint typecheck test

clean:
	rm -rf $(VENV) build *.egg-info archiver-demo .pytest_cache .mypy_cache .ruff_cache
