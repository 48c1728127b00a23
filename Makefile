# Every target sets up its own virtualenv in .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test bench lint typecheck check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

demo: $(BIN)/python
	$(BIN)/python -m pip install --quiet .
	$(BIN)/archiver demo

test: $(BIN)/python
	$(BIN)/python -m pip install --quiet ".[test]"
	$(BIN)/python -m pytest

bench: $(BIN)/python
	$(BIN)/python -m pip install --quiet ".[test]"
	$(BIN)/python -m bench

lint: $(BIN)/python
	$(BIN)/python -m pip install --quiet ".[dev]"
	$(BIN)/ruff check archiver tests bench
	$(BIN)/ruff format --check archiver tests bench

typecheck: $(BIN)/python
	$(BIN)/python -m pip install --quiet ".[dev]"
	$(BIN)/mypy

check: lint typecheck test

clean:
	rm -rf $(VENV) build *.egg-info archiver-demo .pytest_cache .mypy_cache .ruff_cache
