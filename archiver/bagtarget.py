"""Where an exported bag's bytes go: a folder, or a zip file, one file at a time.

Either way nothing is at the destination until :meth:`BagTarget.commit`: a folder is written
under a hidden temporary name beside it and renamed into place, a zip file likewise. An
export that stops (a checksum that does not match, a store that fails, Ctrl-C) calls
:meth:`BagTarget.abort`, which removes the partial bag, so nothing half-written ever looks
like a bag. Files are streamed: each chunk is written as it comes, nothing is held whole.
A zip holds the bag in one top-level folder named after the file (``evidence.zip`` holds
``evidence/bagit.txt`` ...), as BagIt serializations do.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import zipfile
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import IO, Protocol

from archiver.errors import ExportError


class FileSink(Protocol):
    async def write(self, chunk: bytes) -> None: ...


class BagTarget(Protocol):
    """One bag being written. ``path`` is relative to the bag's root, ``/``-separated."""

    destination: Path

    def open_file(self, path: str) -> AbstractAsyncContextManager[FileSink]: ...

    async def commit(self) -> None: ...

    async def abort(self) -> None: ...


def _refuse_existing(destination: Path) -> None:
    if destination.exists() or destination.is_symlink():
        raise ExportError(f"{destination} already exists; choose a new name")
    if not destination.parent.is_dir():
        raise ExportError(f"{destination.parent} is not a folder")


class _ThreadedFile:
    def __init__(self, file: IO[bytes]) -> None:
        self._file = file

    async def write(self, chunk: bytes) -> None:
        await asyncio.to_thread(self._file.write, chunk)


class FolderTarget:
    """A bag as a folder at ``destination``."""

    def __init__(self, destination: Path) -> None:
        _refuse_existing(destination)
        self.destination = destination
        self._partial = _partial_name(destination)
        self._partial.mkdir()

    @asynccontextmanager
    async def open_file(self, path: str) -> AsyncIterator[FileSink]:
        target = self._partial / path
        await asyncio.to_thread(target.parent.mkdir, parents=True, exist_ok=True)
        file = await asyncio.to_thread(target.open, "xb")
        try:
            yield _ThreadedFile(file)
            await asyncio.to_thread(_flush_and_sync, file)
        finally:
            await asyncio.to_thread(file.close)

    async def commit(self) -> None:
        _refuse_existing(self.destination)
        await asyncio.to_thread(self._partial.rename, self.destination)
        await asyncio.to_thread(_sync_folder, self.destination.parent)

    async def abort(self) -> None:
        await asyncio.to_thread(shutil.rmtree, self._partial, True)


class ZipTarget:
    """A bag as a zip file (stored, not compressed: evidence is mostly media and archives
    already compressed), written through :mod:`zipfile` as it streams.

    To a file at ``destination`` (under a hidden name until :meth:`commit`), or, with
    :meth:`to_stream`, straight to a stream such as standard output: there nothing can be
    taken back, so an aborted bag is left without its central directory, which no unzip tool
    takes for a whole zip file.
    """

    def __init__(
        self,
        destination: Path,
        *,
        now: datetime,
        stream: IO[bytes] | None = None,
        folder: str | None = None,
    ) -> None:
        self.destination = destination
        self._folder = folder or destination.stem
        self._date_time = (now.year, now.month, now.day, now.hour, now.minute, now.second)
        self._partial: Path | None = None
        if stream is None:
            _refuse_existing(destination)
            self._partial = _partial_name(destination)
            stream = self._partial.open("xb")
        self._file = stream
        self._gate = _Gate(stream, seekable=self._partial is not None)
        self._zip = zipfile.ZipFile(self._gate, "w", compression=zipfile.ZIP_STORED)

    @classmethod
    def to_stream(cls, stream: IO[bytes], *, now: datetime) -> ZipTarget:
        """A bag written to ``stream`` as it goes, in a folder named after the export time."""
        folder = f"archiver-export-{now:%Y%m%dT%H%M%SZ}"
        return cls(Path("-"), now=now, stream=stream, folder=folder)

    @asynccontextmanager
    async def open_file(self, path: str) -> AsyncIterator[FileSink]:
        info = zipfile.ZipInfo(f"{self._folder}/{path}", date_time=self._date_time)
        info.compress_type = zipfile.ZIP_STORED
        info.external_attr = 0o644 << 16
        member = await asyncio.to_thread(self._zip.open, info, "w", force_zip64=True)
        try:
            yield _ThreadedFile(member)
        finally:
            await asyncio.to_thread(member.close)

    async def commit(self) -> None:
        await asyncio.to_thread(self._zip.close)
        if self._partial is None:
            await asyncio.to_thread(self._file.flush)
            return
        await asyncio.to_thread(_flush_and_sync, self._file)
        self._file.close()
        _refuse_existing(self.destination)
        await asyncio.to_thread(self._partial.rename, self.destination)
        await asyncio.to_thread(_sync_folder, self.destination.parent)

    async def abort(self) -> None:
        self._gate.shut()  # the central directory zipfile writes on closing goes nowhere
        self._zip.close()
        if self._partial is None:
            self._file.flush()
            return
        self._file.close()
        self._partial.unlink(missing_ok=True)


class _Gate:
    """The file :mod:`zipfile` writes to: passes bytes on until shut, then drops them.
    Without ``seekable`` it cannot tell its position, so zipfile writes a stream (sizes after
    each member's data) that needs no seeking back."""

    def __init__(self, file: IO[bytes], *, seekable: bool) -> None:
        self._file = file
        self._seekable = seekable
        self._open = True

    def shut(self) -> None:
        self._open = False

    def write(self, data: bytes, /) -> int:
        if self._open:
            self._file.write(data)
        return len(data)

    def flush(self) -> None:
        if self._open:
            self._file.flush()

    def close(self) -> None:
        """Nothing: the file is the target's to close (zipfile never closes a file it was
        given)."""

    def tell(self) -> int:
        if not self._seekable:
            raise OSError("a stream: no position")
        return self._file.tell()

    def seek(self, offset: int, whence: int = 0) -> int:
        if not self._seekable:
            raise OSError("a stream: no seeking")
        return self._file.seek(offset, whence)


def _partial_name(destination: Path) -> Path:
    """A hidden name beside ``destination`` (same file system, so the rename is atomic);
    created with the umask's permissions, like the destination would be."""
    return destination.parent / f".{destination.name}.{secrets.token_hex(6)}.partial"


def _flush_and_sync(file: IO[bytes]) -> None:
    file.flush()
    os.fsync(file.fileno())


def _sync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
