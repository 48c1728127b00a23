"""The example configuration shows every key the configuration accepts, and no other.

The keys accepted are the ones the parser asks for: every typed getter of a table goes
through ``_Table._get``, which the test watches while a configuration with every table
(and every source) is parsed. The example's keys are read line by line, commented out or
not, so a key whose line is commented out still counts.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from archiver import config as config_module
from archiver.config import SOURCE_PARSERS, parse_config

EXAMPLE = Path(__file__).parents[2] / "config" / "archiver.example.toml"

# What each source requires beside base_url; everything else is left to its default.
REQUIRED: dict[str, dict[str, Any]] = {
    "devrev": {"version_key": "app"},
    "testobject": {"username": "user"},
    "testmo": {"project_ids": [1]},
}


class EveryVariable(Mapping[str, str]):
    """An environment in which every token variable is set."""

    def __getitem__(self, name: str) -> str:
        return "a-token"

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def accepted_keys(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """Every dotted key the parser asks for, once every table and source is there."""
    asked: set[str] = set()
    get = config_module._Table._get

    def noting_get(
        table: config_module._Table, key: str, kinds: tuple[type, ...], kind_name: str
    ) -> Any:
        if dict not in kinds:  # a key, not a table
            asked.add(table.key(key))
        return get(table, key, kinds, kind_name)

    monkeypatch.setattr(config_module._Table, "_get", noting_get)
    sources = {
        name: {"base_url": "https://vendor.example", **REQUIRED.get(name, {})}
        for name in SOURCE_PARSERS
    }
    data = {
        "store": {"url": "s3://bucket/prefix"},
        "state": {"url": "sqlite:////var/lib/archiver/state.db"},
        "engine": {},
        "http": {},
        "log": {},
        "metrics": {"listen": "127.0.0.1:9464"},
        "sources": sources,
    }
    config = parse_config(data, path="every-table.toml", environ=EveryVariable())
    assert set(config.sources) == set(SOURCE_PARSERS)
    return asked


def example_keys() -> set[str]:
    """Every dotted key in the example, whether its line is commented out or not."""
    found: set[str] = set()
    table = ""
    for line in EXAMPLE.read_text(encoding="utf-8").splitlines():
        text = line.strip().removeprefix("#").strip()
        try:
            parsed = tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            continue  # prose
        if text.startswith("["):
            table = text[1 : text.index("]")].strip()
        else:
            found.update(f"{table}.{key}" if table else key for key in parsed)
    return found


def test_example_keys_are_read_with_their_tables() -> None:
    keys = example_keys()
    assert {"store.url", "store.spool_dir", "engine.max_attempts", "log.format"} <= keys
    assert {"sources.perfecto.token_env", "sources.ekran.settle_minutes"} <= keys
    assert not any(key.startswith("AWS") for key in keys)  # prose is no key


def test_every_accepted_key_is_in_the_example(monkeypatch: pytest.MonkeyPatch) -> None:
    missing = accepted_keys(monkeypatch) - example_keys()
    assert not missing, f"missing from {EXAMPLE.name}: {sorted(missing)}"


def test_the_example_has_no_key_the_configuration_refuses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    unknown = example_keys() - accepted_keys(monkeypatch)
    assert not unknown, f"{EXAMPLE.name} shows keys that are refused: {sorted(unknown)}"
