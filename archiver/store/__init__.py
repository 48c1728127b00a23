"""Store seam: puts bytes at a key. It never decides, retries or orders anything.

Contract (checked by ``tests/contract/test_store_contract.py`` over every implementation):

* ``open_writer(key)`` returns an :class:`ObjectWriter`. Bytes written to it become visible
  at ``key`` only when ``commit`` returns; ``abort`` (or leaving the ``async with`` block
  without ``commit``, e.g. on an exception) leaves no trace of them. An existing object at
  ``key`` is replaced atomically on commit: readers see the old bytes or the new, never a mix.
* ``commit(sha256=..., size=...)`` checks the number of bytes written matches ``size`` and
  raises :class:`~archiver.errors.StoreError` otherwise. The caller hashed the bytes on the
  way in; stores whose backend can verify a digest (S3 checksums) hand it over, so the
  backend refuses bytes that do not match.
* ``put_bytes`` is the same for small in-memory payloads (manifests).
* Keys are ``/``-separated, relative, already sanitized by :mod:`archiver.keys`; a store
  still refuses a key that would leave its root.
* ``cleanup_incomplete`` removes leftovers of writes that never committed (temp files,
  multipart uploads) older than ``older_than`` seconds, and returns how many it removed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Protocol


class ObjectWriter(Protocol):
    async def write(self, chunk: bytes) -> None: ...

    async def commit(self, *, sha256: str, size: int) -> None: ...

    async def abort(self) -> None: ...


class Store(Protocol):
    """Where evidence lands. ``description`` is safe to print (no credentials)."""

    description: str

    def open_writer(
        self, key: str, *, content_type: str | None = None
    ) -> AbstractAsyncContextManager[ObjectWriter]: ...

    async def put_bytes(self, key: str, data: bytes, *, content_type: str | None = None) -> None: ...

    async def read_bytes(self, key: str) -> bytes: ...

    def iter_bytes(self, key: str) -> AsyncIterator[bytes]: ...

    async def exists(self, key: str) -> bool: ...

    async def size(self, key: str) -> int | None: ...

    def list_keys(self, prefix: str = "") -> AsyncIterator[str]: ...

    async def cleanup_incomplete(self, *, older_than: float = 0.0) -> int: ...

    async def close(self) -> None: ...
