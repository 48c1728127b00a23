"""Memory store (``memory://``): a dict-backed fake with the same contract, for tests.

Unlike the filesystem store it checks the SHA-256 handed to ``commit``, as S3 does, so a test
catches a caller that hashes the wrong bytes. ``write_order`` lists keys in commit order;
``not_yet_durable`` holds the keys written with ``durable=False`` since the last durable
write, so a test sees what a power cut could take back.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from archiver.errors import StoreError
from archiver.keys import check_key, check_prefix
from archiver.store import ObjectWriter, OneVersionPerKey

CHUNK_SIZE = 64 * 1024


class MemoryStore(OneVersionPerKey):
    def __init__(self, *, chunk_size: int = CHUNK_SIZE) -> None:
        self.description = "memory://"
        self.objects: dict[str, bytes] = {}
        self.content_types: dict[str, str | None] = {}
        self.write_order: list[str] = []
        self.not_yet_durable: set[str] = set()
        self._chunk_size = chunk_size
        self._open_writers: set[_MemoryWriter] = set()

    def __repr__(self) -> str:
        return f"MemoryStore({len(self.objects)} objects)"

    @asynccontextmanager
    async def open_writer(
        self, key: str, *, content_type: str | None = None, durable: bool = True
    ) -> AsyncIterator[ObjectWriter]:
        check_key(key)
        writer = _MemoryWriter(self, key, content_type, durable=durable)
        self._open_writers.add(writer)
        try:
            yield writer
        finally:
            await writer.abort()

    async def put_bytes(
        self, key: str, data: bytes, *, content_type: str | None = None, durable: bool = True
    ) -> None:
        check_key(key)
        self._install(key, bytes(data), content_type, durable=durable)

    async def put_bytes_if_absent(
        self, key: str, data: bytes, *, content_type: str | None = None, durable: bool = True
    ) -> bool:
        check_key(key)
        if key in self.objects:
            return False
        self._install(key, bytes(data), content_type, durable=durable)
        return True

    async def read_bytes(self, key: str) -> bytes:
        check_key(key)
        try:
            return self.objects[key]
        except KeyError:
            raise StoreError(f"memory store: no object at {key!r}") from None

    async def iter_bytes(self, key: str) -> AsyncIterator[bytes]:
        data = await self.read_bytes(key)
        for start in range(0, len(data), self._chunk_size):
            yield data[start : start + self._chunk_size]

    async def exists(self, key: str) -> bool:
        check_key(key)
        return key in self.objects

    async def size(self, key: str) -> int | None:
        check_key(key)
        data = self.objects.get(key)
        return None if data is None else len(data)

    async def list_keys(self, prefix: str = "") -> AsyncIterator[str]:
        check_prefix(prefix)
        for key in sorted(self.objects):
            if key.startswith(prefix):
                yield key

    async def object_info(self, key: str) -> Mapping[str, str]:
        check_key(key)
        if key not in self.objects:
            raise StoreError(f"memory store: no object at {key!r}")
        return {}

    async def check(self) -> None:
        return None

    async def cleanup_incomplete(self, *, older_than: float = 0.0) -> int:
        cutoff = time.time() - older_than
        stale = [writer for writer in self._open_writers if writer.started_at <= cutoff]
        for writer in stale:
            writer.discard()
        return len(stale)

    async def close(self) -> None:
        return None

    def _install(
        self, key: str, data: bytes, content_type: str | None, *, durable: bool = True
    ) -> None:
        self.objects[key] = data
        self.content_types[key] = content_type
        self.write_order.append(key)
        if durable:
            self.not_yet_durable.clear()  # a durable write is a barrier for the ones before
        else:
            self.not_yet_durable.add(key)

    def _forget(self, writer: _MemoryWriter) -> None:
        self._open_writers.discard(writer)


class _MemoryWriter:
    def __init__(
        self, store: MemoryStore, key: str, content_type: str | None, *, durable: bool
    ) -> None:
        self._store = store
        self._key = key
        self._content_type = content_type
        self._durable = durable
        self._buffer = bytearray()
        self._finished = False
        self._discarded = False
        self.started_at = time.time()

    async def write(self, *pieces: bytes) -> None:
        self._require_open()
        for piece in pieces:
            self._buffer += piece

    async def commit(self, *, sha256: str, size: int) -> None:
        self._require_open()
        try:
            self._check(sha256=sha256, size=size)
        except StoreError:
            await self.abort()
            raise
        self._finished = True
        self._store._forget(self)
        self._store._install(
            self._key, bytes(self._buffer), self._content_type, durable=self._durable
        )

    async def abort(self) -> None:
        self._finished = True
        self._buffer.clear()
        self._store._forget(self)

    def discard(self) -> None:
        """What ``cleanup_incomplete`` does to a leftover: its bytes are gone for good."""
        self._discarded = True
        self._buffer.clear()
        self._store._forget(self)

    def _require_open(self) -> None:
        if self._discarded:
            raise StoreError(f"memory store: the write of {self._key!r} was cleaned up")
        if self._finished:
            raise StoreError(f"memory store: the writer for {self._key!r} is already closed")

    def _check(self, *, sha256: str, size: int) -> None:
        if len(self._buffer) != size:
            raise StoreError(
                f"memory store: {self._key!r}: {len(self._buffer)} bytes written, {size} expected"
            )
        if hashlib.sha256(self._buffer).hexdigest() != sha256.lower():
            raise StoreError(f"memory store: {self._key!r}: SHA-256 does not match the bytes")
