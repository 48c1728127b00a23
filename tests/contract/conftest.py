"""The stores every contract suite runs over: a folder, the S3 API server, memory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from archiver.store import Store, open_store
from archiver.store.filesystem import FilesystemStore

S3_PREFIX = "evidence/run"


@pytest.fixture(params=["filesystem", "filesystem-named-temps", "s3", "memory"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """A new, empty store of each kind; S3 spools under ``tmp_path / "spool"``.

    ``filesystem-named-temps`` is the folder store as it works where the file system has no
    unnamed temp files (``O_TMPFILE``) and the kernel no ``openat2``.
    """
    kind: str = request.param
    if kind == "filesystem":
        opened = open_store(f"file://{tmp_path}/root")
        assert isinstance(opened, FilesystemStore) and opened.unnamed_temps
        assert opened.open_beneath
    elif kind == "filesystem-named-temps":
        opened = FilesystemStore(tmp_path / "root", unnamed_temps=False, open_beneath=False)
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
