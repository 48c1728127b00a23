"""A store that reports its writes to an observer: how long each took, and the bytes handed
over that are not committed yet. Everything else goes straight to the store it wraps."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from archiver.observe import Observer
from archiver.store import ObjectWriter, Store


class ObservedStore:
    def __init__(self, store: Store, observer: Observer) -> None:
        self.inner = store
        self.observer = observer
        self.description = store.description

    def __repr__(self) -> str:
        return f"ObservedStore({self.inner!r})"

    @asynccontextmanager
    async def open_writer(
        self, key: str, *, content_type: str | None = None, durable: bool = True
    ) -> AsyncIterator[ObjectWriter]:
        async with self.inner.open_writer(
            key, content_type=content_type, durable=durable
        ) as writer:
            observed = _ObservedWriter(writer, self.observer)
            try:
                yield observed
            finally:
                observed.settle()

    async def put_bytes(
        self, key: str, data: bytes, *, content_type: str | None = None, durable: bool = True
    ) -> None:
        self.observer.store_bytes_in_flight(len(data))
        started = time.monotonic()
        try:
            await self.inner.put_bytes(key, data, content_type=content_type, durable=durable)
        finally:
            self.observer.store_bytes_in_flight(-len(data))
        self.observer.store_write("put", seconds=time.monotonic() - started)

    async def put_bytes_if_absent(
        self, key: str, data: bytes, *, content_type: str | None = None, durable: bool = True
    ) -> bool:
        self.observer.store_bytes_in_flight(len(data))
        started = time.monotonic()
        try:
            created = await self.inner.put_bytes_if_absent(
                key, data, content_type=content_type, durable=durable
            )
        finally:
            self.observer.store_bytes_in_flight(-len(data))
        self.observer.store_write("put_if_absent", seconds=time.monotonic() - started)
        return created

    async def read_bytes(self, key: str) -> bytes:
        return await self.inner.read_bytes(key)

    async def read_created(self, key: str) -> bytes:
        return await self.inner.read_created(key)

    async def extra_versions(self, prefix: str) -> Mapping[str, int]:
        return await self.inner.extra_versions(prefix)

    async def unkept_promises(self, key: str) -> list[str]:
        return await self.inner.unkept_promises(key)

    def iter_bytes(self, key: str) -> AsyncIterator[bytes]:
        return self.inner.iter_bytes(key)

    async def exists(self, key: str) -> bool:
        return await self.inner.exists(key)

    async def size(self, key: str) -> int | None:
        return await self.inner.size(key)

    def list_keys(self, prefix: str = "") -> AsyncIterator[str]:
        return self.inner.list_keys(prefix)

    async def object_info(self, key: str) -> Mapping[str, str]:
        return await self.inner.object_info(key)

    async def check(self) -> None:
        await self.inner.check()

    async def cleanup_incomplete(self, *, older_than: float = 0.0) -> int:
        return await self.inner.cleanup_incomplete(older_than=older_than)

    async def close(self) -> None:
        await self.inner.close()


class _ObservedWriter:
    """Counts the bytes written and not yet committed; ``settle`` lets go of what is left."""

    def __init__(self, writer: ObjectWriter, observer: Observer) -> None:
        self._writer = writer
        self._observer = observer
        self._uncommitted = 0

    async def write(self, *pieces: bytes) -> None:
        size = sum(len(piece) for piece in pieces)
        self._uncommitted += size
        self._observer.store_bytes_in_flight(size)
        started = time.monotonic()
        await self._writer.write(*pieces)
        self._observer.store_write("write", seconds=time.monotonic() - started)

    async def commit(self, *, sha256: str, size: int) -> None:
        started = time.monotonic()
        await self._writer.commit(sha256=sha256, size=size)
        self._observer.store_write("commit", seconds=time.monotonic() - started)
        self.settle()

    async def abort(self) -> None:
        try:
            await self._writer.abort()
        finally:
            self.settle()

    def settle(self) -> None:
        if self._uncommitted:
            self._observer.store_bytes_in_flight(-self._uncommitted)
            self._uncommitted = 0
