"""The part every disk-backed writer shares: bytes go to a private local temp file first.

The filesystem store renames the finished file into place; the S3 store uploads it and
deletes it. Either way, nothing is visible at the key until ``commit`` succeeds, and
``abort`` (or an exception) removes the temp file.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path

import aiofiles
from aiofiles.threadpool.binary import AsyncBufferedIOBase

from archiver.errors import StoreError


async def open_temp_file(folder: Path, prefix: str) -> tuple[Path, AsyncBufferedIOBase]:
    """A new owner-only (0o600, O_EXCL) temp file in ``folder``, opened for writing."""
    creating = asyncio.ensure_future(asyncio.to_thread(tempfile.mkstemp, prefix=prefix, dir=folder))
    try:
        fd, name = await asyncio.shield(creating)
    except asyncio.CancelledError:
        # The worker thread may create the file all the same: remove it once it has.
        creating.add_done_callback(_discard_created)
        raise
    path = Path(name)
    try:
        return path, await aiofiles.open(fd, "wb")
    except BaseException:
        os.close(fd)
        await asyncio.to_thread(path.unlink, missing_ok=True)
        raise


def _discard_created(creating: asyncio.Future[tuple[int, str]]) -> None:
    if creating.cancelled() or creating.exception() is not None:
        return
    fd, name = creating.result()
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(name)  # noqa: PTH108 (a loop callback: no await possible)


class LocalFileWriter(ABC):
    def __init__(self, *, key: str, temp: Path, handle: AsyncBufferedIOBase) -> None:
        self.key = key
        self.temp = temp
        self.handle = handle
        self._written = 0
        self._finished = False

    async def write(self, chunk: bytes) -> None:
        self._require_open()
        try:
            await self.handle.write(chunk)
        except OSError as exc:
            raise self.error("write", exc) from exc
        self._written += len(chunk)

    async def commit(self, *, sha256: str, size: int) -> None:
        self._require_open()
        try:
            if self._written != size:
                raise StoreError(
                    f"cannot commit {self.key!r}: {self._written} bytes written, {size} expected"
                )
            try:
                await self.handle.flush()
                await self.finish(sha256=sha256, size=size)
            except OSError as exc:
                raise self.error("commit", exc) from exc
        except BaseException:
            await self.abort()
            raise
        self._finished = True
        with contextlib.suppress(OSError):
            await self.handle.close()

    async def abort(self) -> None:
        if self._finished:
            return
        self._finished = True
        try:
            with contextlib.suppress(OSError):  # e.g. ENOSPC again, flushing the buffer
                await self.handle.close()
        finally:
            # Also when the task is cancelled (a sibling artifact failed): the temp file
            # must not outlive its writer. The shield covers a second cancellation.
            await asyncio.shield(asyncio.to_thread(self.temp.unlink, missing_ok=True))

    @abstractmethod
    async def finish(self, *, sha256: str, size: int) -> None:
        """Make the flushed temp file's bytes visible at the key (and clean up after)."""

    @abstractmethod
    def error(self, operation: str, exc: OSError) -> StoreError:
        """A StoreError for a local file operation that failed."""

    def _require_open(self) -> None:
        if self._finished:
            raise StoreError(f"the writer for {self.key!r} is already closed")
