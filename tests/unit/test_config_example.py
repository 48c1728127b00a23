"""The example configuration and docs/configuration.md are made from the settings'
declarations (``make config-docs``); the committed files must be what they make.

The example must also show every key the configuration accepts, and no other, and every
value it shows must be accepted. Its keys are read line by line, commented out or not, so a
key whose line is commented out still counts.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from archiver import config_docs
from archiver.config import parse_config, root_tables
from archiver.sources.registry import SOURCES

ROOT = Path(__file__).parents[2]
EXAMPLE = ROOT / "config" / "archiver.example.toml"


class EveryVariable(Mapping[str, str]):
    """An environment in which every token variable is set."""

    def __getitem__(self, name: str) -> str:
        return "a-token"

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


@pytest.mark.parametrize("path", [config_docs.EXAMPLE, config_docs.REFERENCE], ids=str)
def test_the_generated_files_are_up_to_date(path: Path) -> None:
    text = dict(config_docs.generated())[path]
    committed = (ROOT / path).read_text(encoding="utf-8")
    assert committed == text, (
        f"{path} is not what the settings declare: run `{config_docs.COMMAND}` "
        "(python -m archiver.config_docs) and commit the result"
    )


def accepted_keys() -> set[str]:
    """Every dotted key the configuration accepts."""
    keys = {f"{name}.{key}" for name, table in root_tables().items() for key in table.file_keys()}
    for spec in SOURCES:
        keys |= {f"sources.{spec.name}.{key}" for key in spec.settings.file_keys()}
    return keys


def example_tables() -> dict[str, dict[str, Any]]:
    """Every key in the example with the value it shows, by table, commented out or not."""
    tables: dict[str, dict[str, Any]] = {}
    table = ""
    for line in EXAMPLE.read_text(encoding="utf-8").splitlines():
        text = line.strip().removeprefix("#").strip()
        try:
            parsed = tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            continue  # prose
        if text.startswith("["):
            table = text[1 : text.index("]")].strip()
            tables.setdefault(table, {})
        else:
            tables.setdefault(table, {}).update(parsed)
    return tables


def example_keys() -> set[str]:
    return {
        f"{table}.{key}" if table else key
        for table, keys in example_tables().items()
        for key in keys
    }


def test_example_keys_are_read_with_their_tables() -> None:
    keys = example_keys()
    assert {"store.url", "store.spool_dir", "engine.max_attempts", "log.format"} <= keys
    assert {"sources.perfecto.token_env", "sources.ekran.settle_minutes"} <= keys
    assert not any(key.startswith("AWS") for key in keys)  # prose is no key


def test_every_accepted_key_is_in_the_example() -> None:
    missing = accepted_keys() - example_keys()
    assert not missing, f"missing from {EXAMPLE.name}: {sorted(missing)}"


def test_the_example_has_no_key_the_configuration_refuses() -> None:
    unknown = example_keys() - accepted_keys()
    assert not unknown, f"{EXAMPLE.name} shows keys that are refused: {sorted(unknown)}"


def test_every_value_the_example_shows_is_accepted() -> None:
    data: dict[str, Any] = {}
    for table, keys in example_tables().items():
        where = data
        for part in table.split(".") if table else ():
            where = where.setdefault(part, {})
        where.update(keys)
    data["store"]["url"] = "s3://bucket/prefix"  # the S3-only keys are refused for a folder

    config = parse_config(data, path="every-key.toml", environ=EveryVariable())

    assert list(config.sources) == [spec.name for spec in SOURCES]
    assert config.metrics is not None and config.store.object_lock_days == 2555
    assert config.http.chunk_size == 1024 * 1024  # the file's KiB, kept in bytes
