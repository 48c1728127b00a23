"""The part every disk-backed writer shares: bytes go to a private local temp file first.

The filesystem store renames the finished file into place; the S3 store uploads it and
deletes it. Either way, nothing is visible at the key until ``commit`` succeeds, and
``abort`` (or an exception, or a cancelled task) removes the temp file.

File work runs in worker threads, and as little as possible is a hop of its own: the pieces
of one ``write`` go to the file in one ``writev``, a first write of up to ``HOLD_BYTES`` waits
in memory, the temp file (owner-only, ``O_EXCL``) is
created by the first write that needs it, and a commit writes, seals, syncs and moves in
as few hops as the store allows (one for a small object).
A hop in flight is remembered; ``abort`` waits for it before it cleans up, so a task
cancelled mid-hop cannot leave a temp file behind that the thread created afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from archiver.errors import StoreError

_T = TypeVar("_T")
# A first write up to this size waits in memory for the commit: one hop for small objects.
HOLD_BYTES = 1024 * 1024
# At most this many buffers go to one writev (Linux's IOV_MAX).
MAX_BUFFERS = 1024
WRITEBACK_BYTES = 8 * 1024 * 1024


class LocalFileWriter(ABC):
    def __init__(
        self, *, key: str, folder: Path, prefix: str, start_writeback: bool = False
    ) -> None:
        self.key = key
        self._start_writeback = start_writeback
        self._unsynced = 0
        self.temp: Path | None = None
        self._folder = folder
        self._prefix = prefix
        self._fd: int | None = None
        self._held: tuple[bytes, ...] = ()
        self._written = 0
        self._finished = False
        self._in_flight: asyncio.Future[Any] | None = None

    async def write(self, *pieces: bytes) -> None:
        self._require_open()
        size = sum(len(piece) for piece in pieces)
        if self._fd is None and not self._held and size <= HOLD_BYTES:
            # Most objects are one write: keep it until commit, which writes it in its hop.
            self._held = pieces
            self._written += size
            return
        try:
            await self.in_thread(self._write_sync, pieces, size)
        except OSError as exc:
            raise self.error("write", exc) from exc
        self._written += size

    async def commit(self, *, sha256: str, size: int) -> None:
        self._require_open()
        try:
            if self._written != size:
                raise StoreError(
                    f"cannot commit {self.key!r}: {self._written} bytes written, {size} expected"
                )
            try:
                await self.finish(sha256=sha256, size=size)
            except OSError as exc:
                raise self.error("commit", exc) from exc
        except BaseException:
            await self.abort()
            raise
        self._finished = True

    async def abort(self) -> None:
        if self._finished:
            return
        self._finished = True
        in_flight = self._in_flight

        async def discard() -> None:
            if in_flight is not None:
                with contextlib.suppress(BaseException):  # its outcome no longer matters
                    await in_flight
            try:
                await self.abort_more()
            finally:
                await asyncio.to_thread(self._discard_sync)

        # Shielded: a second cancellation must not stop the clean-up half-way.
        await asyncio.shield(asyncio.ensure_future(discard()))

    @abstractmethod
    async def finish(self, *, sha256: str, size: int) -> None:
        """Make the written bytes visible at the key (``seal_sync`` first), and clean up."""

    async def abort_more(self) -> None:  # noqa: B027 (optional for subclasses)
        """Undo whatever a subclass started for an unfinished write, before the temp goes."""

    @abstractmethod
    def error(self, operation: str, exc: OSError) -> StoreError:
        """A StoreError for a local file operation that failed."""

    async def in_thread(self, function: Callable[..., _T], *args: Any) -> _T:
        """Run ``function`` in a worker thread; remembered so ``abort`` can wait for it."""
        self._in_flight = asyncio.get_running_loop().run_in_executor(None, function, *args)
        return await asyncio.shield(self._in_flight)

    def seal_sync(self, *, fsync: bool) -> Path:
        """Fsync (if asked) and close the temp file; an object never written is empty."""
        fd = self.opened_sync()
        if fsync:
            os.fsync(fd)
        self._fd = None
        os.close(fd)
        assert self.temp is not None
        return self.temp

    def opened_sync(self) -> int:
        """The temp file's descriptor, created now (with the held chunk) if need be."""
        return self._fd if self._fd is not None else self._open_sync()

    def _write_sync(self, pieces: tuple[bytes, ...], size: int) -> None:
        fd = self.opened_sync()
        _write_all(fd, pieces)
        self.wrote_sync(pieces)
        self._unsynced += size
        if self._start_writeback and self._unsynced >= WRITEBACK_BYTES:
            # Hand the bytes so far to the disk now, without waiting: the fsync at commit
            # then finds little left to write, and evidence does not crowd the page cache.
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            self._unsynced = 0

    def create_temp_sync(self) -> int:
        """Create the temp file: a named one in the writer's folder, unless overridden."""
        fd, name = tempfile.mkstemp(prefix=self._prefix, dir=self._folder)
        self.temp = Path(name)
        return fd

    def _open_sync(self) -> int:
        """Create the temp file and write the chunk held back so far, if any."""
        # A bare descriptor: every write is one system call, with no buffer to flush.
        fd = self.create_temp_sync()
        self._fd = fd
        if self._held:
            _write_all(fd, self._held)
            self.wrote_sync(self._held)
            self._held = ()
        return fd

    def _discard_sync(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
        if self.temp is not None:
            self.temp.unlink(missing_ok=True)
        self.discard_more_sync()

    def wrote_sync(self, pieces: tuple[bytes, ...]) -> None:  # noqa: B027 (optional)
        """Called in the worker thread with the pieces just written, in order."""

    def discard_more_sync(self) -> None:  # noqa: B027 (optional for subclasses)
        """Close whatever else a subclass holds open for an unfinished write."""

    def _require_open(self) -> None:
        if self._finished:
            raise StoreError(f"the writer for {self.key!r} is already closed")


def _write_all(fd: int, pieces: tuple[bytes, ...]) -> None:
    """Write every piece, in order, with as few ``writev`` calls as the kernel allows."""
    views = [memoryview(piece) for piece in pieces if piece]
    while views:
        written = os.writev(fd, views[:MAX_BUFFERS])
        while written:  # drop what went out; a piece written in part keeps its rest
            if written >= len(views[0]):
                written -= len(views.pop(0))
            else:
                views[0] = views[0][written:]
                written = 0
