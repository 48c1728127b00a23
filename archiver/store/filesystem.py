"""Filesystem store (``file:///abs/path``): temp file, fsync, rename.

A write goes to a private temp file under ``<root>/.incoming/`` (same filesystem, so the final
``os.replace`` is atomic), is fsynced, renamed into place and the directory fsynced: after
``commit`` returns the object survives a crash, and readers never see half of it. Objects
are created ``0o600`` and folders ``0o750``. This store does not check the SHA-256 it is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import stat
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiofiles
from aiofiles.threadpool.binary import AsyncBufferedIOBase

from archiver.errors import StoreError
from archiver.keys import check_key, check_prefix
from archiver.store import ObjectWriter
from archiver.store.localfile import LocalFileWriter, open_temp_file

INCOMING = ".incoming"
TEMP_PREFIX = "write-"
CHUNK_SIZE = 1024 * 1024
FOLDER_MODE = 0o750

_REASONS = {
    errno.ENOSPC: "no space left on device (the store is full)",
    errno.EDQUOT: "disk quota exceeded (the store is full)",
    errno.EFBIG: "file too large for the file system or the process's file size limit",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
    errno.ENOENT: "no such object",
    errno.EISDIR: "a folder is in the way",
    errno.ENOTDIR: "a file is in the way",
}


class FilesystemStore:
    def __init__(self, root: str | os.PathLike[str], *, chunk_size: int = CHUNK_SIZE) -> None:
        self.description = f"file://{os.fspath(root)}"
        try:
            self._root = _prepare_root(Path(root))
        except OSError as exc:
            raise StoreError(f"cannot use {self.description} as a store: {_reason(exc)}") from exc
        self._incoming = self._root / INCOMING
        self._chunk_size = chunk_size

    def __repr__(self) -> str:
        return f"FilesystemStore({self.description!r})"

    @asynccontextmanager
    async def open_writer(
        self, key: str, *, content_type: str | None = None
    ) -> AsyncIterator[ObjectWriter]:
        target = await asyncio.to_thread(self._path, key)
        try:
            temp, handle = await open_temp_file(self._incoming, TEMP_PREFIX)
        except OSError as exc:
            raise self._failure("start writing", key, exc) from exc
        writer = _FileWriter(self, key, target, temp, handle)
        try:
            yield writer
        finally:
            await writer.abort()

    async def put_bytes(self, key: str, data: bytes, *, content_type: str | None = None) -> None:
        async with self.open_writer(key, content_type=content_type) as writer:
            await writer.write(data)
            await writer.commit(sha256="", size=len(data))

    async def read_bytes(self, key: str) -> bytes:
        path = await asyncio.to_thread(self._path, key)
        try:
            async with aiofiles.open(path, "rb") as handle:
                return await handle.read()
        except OSError as exc:
            raise self._failure("read", key, exc) from exc

    async def iter_bytes(self, key: str) -> AsyncIterator[bytes]:
        path = await asyncio.to_thread(self._path, key)
        try:
            async with aiofiles.open(path, "rb") as handle:
                while chunk := await handle.read(self._chunk_size):
                    yield chunk
        except OSError as exc:
            raise self._failure("read", key, exc) from exc

    async def exists(self, key: str) -> bool:
        return await self.size(key) is not None

    async def size(self, key: str) -> int | None:
        path = await asyncio.to_thread(self._path, key)
        try:
            return await asyncio.to_thread(_file_size, path)
        except OSError as exc:
            raise self._failure("inspect", key, exc) from exc

    async def list_keys(self, prefix: str = "") -> AsyncIterator[str]:
        check_prefix(prefix)
        try:
            keys = await asyncio.to_thread(self._keys_under, prefix)
        except OSError as exc:
            raise self._failure("list", prefix, exc) from exc
        for key in keys:
            yield key

    async def cleanup_incomplete(self, *, older_than: float = 0.0) -> int:
        try:
            return await asyncio.to_thread(self._remove_stale_temps, time.time() - older_than)
        except OSError as exc:
            raise self._failure("clean up", INCOMING, exc) from exc

    async def close(self) -> None:
        return None

    def _path(self, key: str) -> Path:
        check_key(key)
        if key.split("/", 1)[0] == INCOMING:
            raise ValueError(f"store key {key!r} is inside the store's {INCOMING} folder")
        path = self._root.joinpath(*key.split("/"))
        # A symlink planted inside the root must not lead a write outside it.
        if not path.resolve().is_relative_to(self._root):
            raise StoreError(f"store key {key!r} resolves outside {self.description}")
        return path

    def _keys_under(self, prefix: str) -> list[str]:
        folder = self._root.joinpath(*prefix.rpartition("/")[0].split("/"))
        if not folder.is_dir() or not folder.resolve().is_relative_to(self._root):
            return []
        keys = []
        for directory, folders, files in os.walk(folder, onerror=_raise):
            if Path(directory) == self._root and INCOMING in folders:
                folders.remove(INCOMING)
            for name in files:
                key = (Path(directory) / name).relative_to(self._root).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def _remove_stale_temps(self, cutoff: float) -> int:
        removed = 0
        with os.scandir(self._incoming) as entries:
            for entry in entries:
                if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime <= cutoff:
                    Path(entry.path).unlink(missing_ok=True)
                    removed += 1
        return removed

    def _failure(self, operation: str, key: str, exc: OSError) -> StoreError:
        return StoreError(f"cannot {operation} {key!r} in {self.description}: {_reason(exc)}")


class _FileWriter(LocalFileWriter):
    def __init__(
        self,
        store: FilesystemStore,
        key: str,
        target: Path,
        temp: Path,
        handle: AsyncBufferedIOBase,
    ) -> None:
        super().__init__(key=key, temp=temp, handle=handle)
        self._store = store
        self._target = target

    async def finish(self, *, sha256: str, size: int) -> None:
        await asyncio.to_thread(os.fsync, self.handle.fileno())
        await self.handle.close()
        await asyncio.to_thread(_move_into_place, self.temp, self._target)

    def error(self, operation: str, exc: OSError) -> StoreError:
        return self._store._failure(operation, self.key, exc)


def _prepare_root(root: Path) -> Path:
    if not root.is_absolute():
        raise ValueError(f"a filesystem store needs an absolute path, got {str(root)!r}")
    if not root.is_dir():
        root.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    (root / INCOMING).mkdir(mode=0o700, exist_ok=True)
    return root.resolve()


def _move_into_place(temp: Path, target: Path) -> None:
    created = _make_folders(target.parent)
    temp.replace(target)
    for folder in {target.parent, *(path.parent for path in created)}:
        _fsync_folder(folder)


def _make_folders(folder: Path) -> list[Path]:
    """``mkdir -p`` that reports which folders it created (their parents need an fsync)."""
    missing = []
    while not folder.is_dir():
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):  # a concurrent writer made it first
            path.mkdir(mode=FOLDER_MODE)
    return missing


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _file_size(path: Path) -> int | None:
    try:
        status = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return status.st_size if stat.S_ISREG(status.st_mode) else None


def _reason(exc: OSError) -> str:
    return _REASONS.get(exc.errno or 0) or exc.strerror or type(exc).__name__


def _raise(exc: OSError) -> None:
    raise exc
