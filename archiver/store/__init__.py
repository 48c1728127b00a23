"""Store seam: puts bytes at a key. It never decides, retries or orders anything.

Contract (checked by ``tests/contract/test_store_contract.py`` over every implementation):

* ``open_writer(key)`` returns an :class:`ObjectWriter`. ``write(*pieces)`` takes one chunk or
  several pieces to write in order (bytes as they came off the network, never joined into a
  copy first). Bytes written to it become visible
  at ``key`` only when ``commit`` returns; ``abort`` (or leaving the ``async with`` block
  without ``commit``, e.g. on an exception) leaves no trace of them. An existing object at
  ``key`` is replaced atomically on commit: readers see the old bytes or the new, never a mix.
* ``commit(sha256=..., size=...)`` checks the number of bytes written matches ``size`` and
  raises :class:`~archiver.errors.StoreError` otherwise. The caller hashed the bytes on the
  way in. Where the backend can check a digest of a whole object in one request (S3's
  ``PutObject``), the store hands it over and a mismatch is refused. An S3 object sent in
  parts while it downloads has each part checked against the CRC32 of the bytes written for
  it instead; the filesystem store checks nothing (it writes the very buffers hashed).
* ``put_bytes`` is the same for small in-memory payloads (manifests).
* An object is durable (it survives a power cut) when ``commit``/``put_bytes`` returns, unless
  it was written with ``durable=False``: then it is visible at once but durable only once a
  later durable write returns. A durable write is a barrier: when it returns, every object
  committed before it began is durable too, so a power cut never keeps it and loses them.
  Stores whose writes are durable anyway (S3) ignore the flag. The engine writes a session's
  artifacts that way; the manifest, written after them, is their barrier.
* ``put_bytes_if_absent`` creates the object only if nothing is at ``key`` yet, atomically:
  of several writers racing for one key exactly one gets ``True``, the others ``False``, and
  ``read_created`` returns the winner's bytes, whole; ``durable`` means what it means for
  ``put_bytes``. The ledger builds its hash chain on this, and the engine its session
  claims. (An S3 server that ignores conditional writes on a versioned bucket leaves the
  losers' versions behind where retention keeps them; ``read_created`` reads the winner's,
  and ``extra_versions`` lists keys with more than one version, for ``verify``.)
* ``iter_bytes`` streams an object in chunks (memory does not grow with its size);
  ``list_keys`` yields every key under a prefix in sorted order.
* ``object_info`` returns what the backend reports about a stored object beyond its bytes
  (S3: retention mode and date, legal hold, encryption, storage class, version), as
  printable strings; stores with nothing to report return an empty mapping.
* ``unkept_promises`` says what the backend reports a stored object lacks of what the store
  was configured to give every object (S3: encryption, retention, legal hold); empty when
  all is there or nothing was promised.
* ``check`` is the start-up check: the store is there and can do what it was configured to
  do (an S3 bucket exists, with versioning and Object Lock when retention is asked for); it
  raises :class:`~archiver.errors.StoreError` naming what is missing otherwise.
* Keys are ``/``-separated, relative, already sanitized by :mod:`archiver.keys`; a store
  still refuses a key that would leave its root.
* ``cleanup_incomplete`` removes leftovers of writes that never committed (temp files,
  multipart uploads) older than ``older_than`` seconds, and returns how many it removed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol
from urllib.parse import SplitResult, unquote, urlsplit


class ObjectWriter(Protocol):
    async def write(self, *pieces: bytes) -> None: ...

    async def commit(self, *, sha256: str, size: int) -> None: ...

    async def abort(self) -> None: ...


class Store(Protocol):
    """Where evidence lands. ``description`` is safe to print (no credentials)."""

    description: str

    def open_writer(
        self, key: str, *, content_type: str | None = None, durable: bool = True
    ) -> AbstractAsyncContextManager[ObjectWriter]: ...

    async def put_bytes(
        self, key: str, data: bytes, *, content_type: str | None = None, durable: bool = True
    ) -> None: ...

    async def put_bytes_if_absent(
        self, key: str, data: bytes, *, content_type: str | None = None, durable: bool = True
    ) -> bool: ...

    async def read_bytes(self, key: str) -> bytes: ...

    async def read_created(self, key: str) -> bytes: ...

    async def extra_versions(self, prefix: str) -> Mapping[str, int]: ...

    async def unkept_promises(self, key: str) -> list[str]: ...

    def iter_bytes(self, key: str) -> AsyncIterator[bytes]: ...

    async def exists(self, key: str) -> bool: ...

    async def size(self, key: str) -> int | None: ...

    def list_keys(self, prefix: str = "") -> AsyncIterator[str]: ...

    async def object_info(self, key: str) -> Mapping[str, str]: ...

    async def check(self) -> None: ...

    async def cleanup_incomplete(self, *, older_than: float = 0.0) -> int: ...

    async def close(self) -> None: ...


class _Readable(Protocol):
    async def read_bytes(self, key: str) -> bytes: ...


class OneVersionPerKey:
    """The contract's version methods for stores that keep one version of a key and promise
    nothing beyond its bytes (a folder, memory)."""

    async def read_created(self: _Readable, key: str) -> bytes:
        return await self.read_bytes(key)

    async def extra_versions(self, prefix: str) -> Mapping[str, int]:
        return {}

    async def unkept_promises(self, key: str) -> list[str]:
        return []


def open_store(
    url: str, *, endpoint_url: str | None = None, region: str | None = None, **s3_options: Any
) -> Store:
    """The store a URL names: ``file:///abs/path``, ``s3://bucket/optional/prefix``, ``memory://``.

    ``s3_options`` are :class:`~archiver.store.s3.S3Store`'s transfer tunables; other schemes
    ignore them (and ``endpoint_url``/``region``). A URL :func:`check_store_url` refuses
    raises ValueError.
    """
    parts = check_store_url(url)
    if parts.scheme == "file":
        from archiver.store.filesystem import FilesystemStore

        return FilesystemStore(unquote(parts.path))
    if parts.scheme == "s3":
        from archiver.store.s3 import S3Store

        return S3Store(
            parts.netloc,
            unquote(parts.path),
            endpoint_url=endpoint_url,
            region=region,
            **s3_options,
        )
    from archiver.store.memory import MemoryStore

    return MemoryStore()


def check_store_url(url: str) -> SplitResult:
    """``url`` split into its parts if it names a store; ValueError says what is wrong."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise ValueError(
                f"file store URLs need an absolute path (file:///var/lib/...), got {url!r}"
            )
        if parts.query or parts.fragment:
            raise ValueError(f"file store URLs take no query or fragment, got {url!r}")
        return parts
    if parts.scheme == "s3":
        if not parts.netloc:
            raise ValueError(f"s3 store URLs need a bucket (s3://bucket/prefix), got {url!r}")
        return parts
    if parts.scheme == "memory":
        return parts
    raise ValueError(
        f"unknown store scheme {parts.scheme!r} (use file:///path or s3://bucket/prefix)"
    )
