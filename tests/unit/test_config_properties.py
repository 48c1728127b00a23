"""Property tests for the config loader: any TOML document, any value, any key.

The loader either returns settings or raises ConfigError naming the file (and the key,
when one key is to blame); never another exception.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archiver.config import Config, load_config
from archiver.errors import ConfigError

ENVIRON = {"PERFECTO_TOKEN": "p-token-123456", "DEVREV_TOKEN": "d-token-123456"}

TABLES: dict[str, dict[str, list[Any]]] = {
    "store": {
        "url": [
            "file:///tmp/evidence",
            "s3://bucket/prefix",
            "http://x",
            "file://relative",
            "s3://",
            "memory://",
            "file:///tmp/%00x",
        ],
        "endpoint_url": ["http://127.0.0.1:9000", "http://[::1", "ftp://x", "http://h:99999"],
        "region": ["us-east-1", ""],
        "multipart_threshold_mib": [5, 4, 64],
        "multipart_chunksize_mib": [5, 16],
        "transfer_concurrency": [1, 0],
        "spool_dir": ["/tmp/spool", " "],
    },
    "state": {"url": ["sqlite:////tmp/state.db", "postgresql://db", "sqlite:///", "x"]},
    "engine": {
        "download_concurrency": [1, 0, 8],
        "max_attempts": [5, 0],
        "interval_seconds": [1, 0.5],
        "shutdown_grace_seconds": [30, -1],
        "not_ready_attempts": [3],
        "not_ready_delay_seconds": [5.0],
        "cleanup_incomplete_after_seconds": [0, 3600],
    },
    "http": {
        "connect_timeout": [10, 0.01],
        "read_timeout": [60],
        "api_timeout": [120],
        "attempts": [6, 0],
        "backoff_initial": [1.0],
        "backoff_max": [60],
        "chunk_size_kib": [1024, 2],
        "max_artifact_mib": [0, 100],
        "artifact_hosts": [["cdn.example.com"], [""], "one.example.com"],
    },
    "log": {"level": ["info", "loud"], "format": ["json", "xml"]},
    "sources.perfecto": {
        "base_url": ["https://cloud.app.perfectomobile.com", "http://[::1", "ftp://x"],
        "token_env": ["PERFECTO_TOKEN", "NOT_SET_ANYWHERE", ""],
        "token": ["secret"],
        "auth_header": ["PERFECTO-AUTHORIZATION", "bad header", "Ünïcode"],
        "window_hours": [24, 25, 0.001],
        "page_cap": [1000],
        "pdf_report": [True],
        "trusted_hosts": [["a.example.com"]],
        "session_concurrency": [4],
    },
    "sources.devrev": {
        "base_url": ["https://api.devrev.ai"],
        "token_env": ["DEVREV_TOKEN"],
        "version_key": ["app", ["a", "b"], []],
        "type": ["mobile", "desktop"],
        "platform": ["ios", "symbian"],
        "limit": [50, 101],
    },
    "sources.testmo": {
        "base_url": ["https://x.testmo.net"],
        "project_ids": [[1], [], [True]],
        "per_page": [100, 7],
    },
}

NAMES = st.from_regex(r"[a-z][a-z_]{0,14}", fullmatch=True)
SCALARS = st.one_of(
    st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=20),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(),
    st.booleans(),
)
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3))


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)  # \uXXXX escapes are TOML's too
    return "[" + ", ".join(toml_value(item) for item in value) + "]"


@st.composite
def documents(draw: st.DrawFn) -> str:
    lines = []
    for key, value in draw(st.dictionaries(NAMES, VALUES, max_size=2)).items():
        lines.append(f"{key} = {toml_value(value)}")
    for table in draw(st.lists(st.sampled_from(sorted(TABLES)), unique=True, max_size=6)):
        lines.append(f"[{table}]")
        known = TABLES[table]
        for key in draw(st.lists(st.sampled_from(sorted(known)), unique=True, max_size=6)):
            value = draw(st.one_of(st.sampled_from(known[key]), VALUES))
            lines.append(f"{key} = {toml_value(value)}")
        for key, value in draw(st.dictionaries(NAMES, VALUES, max_size=1)).items():
            if key not in known:
                lines.append(f"{key} = {toml_value(value)}")
    return "\n".join(lines) + "\n"


def check(document: bytes) -> Config | None:
    with tempfile.TemporaryDirectory() as folder, mock.patch.dict(os.environ, ENVIRON):
        path = Path(folder) / "archiver.toml"
        path.write_bytes(document)
        try:
            return load_config(path)
        except ConfigError as error:
            assert error.path == str(path), error
            assert str(path) in str(error)
            if error.key is not None:
                assert f"key '{error.key}'" in str(error)
            return None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents())
def test_any_document_gives_settings_or_a_config_error(document: str) -> None:
    check(document.encode())


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_give_settings_or_a_config_error(document: bytes) -> None:
    check(document)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(sorted(TABLES["http"])), VALUES)
def test_a_minimal_config_with_one_odd_value(key: str, value: Any) -> None:
    base = '[store]\nurl = "file:///tmp/e"\n[state]\nurl = "sqlite:////tmp/s.db"\n[http]\n'
    config = check(f"{base}{key} = {toml_value(value)}\n".encode())
    if config is not None:
        assert all(math.isfinite(v) for v in (config.http.read_timeout, config.http.api_timeout))
