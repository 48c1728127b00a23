# Every target sets up its own virtualenv in .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test test-s3 bench lint typecheck check clean lock lock-check system-test config-docs

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The vendor simulators are a distribution of their own (simulators/), not in the archiver's
# wheel: the demo, the tests, the benchmarks and the checkers install both.
demo: $(BIN)/python
	$(BIN)/python -m pip install --quiet . ./simulators
	$(BIN)/archiver demo

test: $(BIN)/python
	$(BIN)/python -m pip install --quiet ".[test]" -e ./simulators
	$(BIN)/python -m pytest

# The S3 tests again, on real S3 servers (Ceph RGW over http and https, LocalStack) that
# tests/system/s3_servers.sh starts on loopback; `make test` runs them on moto.
test-s3: $(BIN)/python
	$(BIN)/python -m pip install --quiet ".[test]" -e ./simulators
	@exports=$$(tests/system/s3_servers.sh start) || { \
		echo "test-s3: the S3 servers could not be started (see above)" >&2; exit 1; }; \
	eval "$$exports" && $(BIN)/python -m pytest -m s3 -k "not moto"

bench: $(BIN)/python
	$(BIN)/python -m pip install --quiet ".[test]" -e ./simulators
	$(BIN)/python -m bench

lint: $(BIN)/python
	$(BIN)/python -m pip install --quiet ".[dev]" -e ./simulators
	$(BIN)/ruff check archiver simulators tests bench
	$(BIN)/ruff format --check archiver simulators tests bench

typecheck: $(BIN)/python
	$(BIN)/python -m pip install --quiet ".[dev]" -e ./simulators
	$(BIN)/mypy

check: lint typecheck test

# requirements.lock: the runtime dependencies of pyproject.toml, pinned with hashes, that the
# container image installs. Regenerate it after changing pyproject's dependencies.
lock: $(BIN)/python
	$(BIN)/python -m pip install --quiet pip-tools
	CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile --quiet --generate-hashes \
		--strip-extras --no-emit-index-url --no-emit-find-links \
		--output-file requirements.lock pyproject.toml

# Offline: the lock is all pins with hashes, within pyproject's ranges (also run by `make test`).
lock-check: $(BIN)/python
	$(BIN)/python -m pip install --quiet ".[test]" -e ./simulators
	$(BIN)/python -m pytest -q tests/system/test_requirements_lock.py

# config/archiver.example.toml and docs/configuration.md, from the settings' declarations
# (archiver/config.py, archiver/sources/*.py). A unit test fails until they are regenerated.
config-docs: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	$(BIN)/python -m archiver.config_docs

# Not part of `make test`: needs a Docker engine (DOCKER_HOST) and a few minutes. Builds the
# image and runs it, then boots systemd in a container and runs the unit, then runs the
# Compose stack of contrib/compose (PostgreSQL, three replicas) and kills replicas in it.
system-test:
	tests/system/container_image.sh
	tests/system/systemd_unit.sh
	tests/system/replicas_compose.sh

clean:
	rm -rf $(VENV) .venv-floor build *.egg-info simulators/build simulators/*.egg-info archiver-demo .pytest_cache .mypy_cache .ruff_cache
