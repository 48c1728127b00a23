"""The stores every contract suite runs over: a folder, the S3 API server, memory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from archiver.store import Store, open_store

S3_PREFIX = "evidence/run"


@pytest.fixture(params=["filesystem", "s3", "memory"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """A new, empty store of each kind; S3 spools under ``tmp_path / "spool"``."""
    kind: str = request.param
    if kind == "filesystem":
        opened = open_store(f"file://{tmp_path}/root")
    elif kind == "memory":
        opened = open_store("memory://")
    else:
        endpoint: str = request.getfixturevalue("s3_endpoint")
        bucket: str = request.getfixturevalue("s3_bucket")
        (tmp_path / "spool").mkdir()
        opened = open_store(
            f"s3://{bucket}/{S3_PREFIX}", endpoint_url=endpoint, spool_dir=str(tmp_path / "spool")
        )
    yield opened
    await opened.close()
