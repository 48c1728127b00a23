"""The stores every contract suite runs over: a folder, the S3 API server, memory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from archiver.store import Store, open_store
from archiver.store.filesystem import FilesystemStore
from tests.support.s3server import SERVERS, new_bucket, plain_client, remove_bucket, server_named

S3_PREFIX = "evidence/run"


@pytest.fixture(
    params=["filesystem", "filesystem-named-temps", "memory", *(f"s3-{name}" for name in SERVERS)]
)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """A new, empty store of each kind; S3 (on each server under test) spools under
    ``tmp_path / "spool"``.

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
        endpoint = server_named(kind.removeprefix("s3-"), request).endpoint
        (tmp_path / "spool").mkdir()
        bucket = new_bucket(endpoint)
        opened = open_store(
            f"s3://{bucket}/{S3_PREFIX}", endpoint_url=endpoint, spool_dir=str(tmp_path / "spool")
        )
    yield opened
    await opened.close()
    if kind.startswith("s3-"):
        client = plain_client(endpoint)
        remove_bucket(client, bucket)
        client.close()
