"""Filesystem store (``file:///abs/path``): unnamed temp file, made durable, linked into place.

A write goes to an unnamed file (``O_TMPFILE``) in the folder of its key, is made durable,
then linked to its name, and the name made durable: after ``commit`` returns the object
survives a crash, readers never see half of it, and a process that dies mid-write leaves
nothing behind (the kernel frees an unnamed file). Each writer works in its own folder, so
concurrent sessions do not contend for one temp folder or for the file system's cross-folder
rename lock. Folders are opened with one ``openat2`` that refuses every symlink on the way (see
:mod:`archiver.store.beneath`), or where the kernel lacks it one level at a time with
``O_NOFOLLOW``: a symlink planted below the root is refused. Where the file system (or a
missing ``/proc``) does not allow unnamed files, writes go to private named temp files under
``<root>/.incoming/`` instead and are renamed into place. Objects are created ``0o600`` and
folders ``0o750``. This store does not check the SHA-256 it is given.
While a big object is written, every 8 MiB are handed to the disk at once (``posix_fadvise``
``DONTNEED`` starts the writeback without waiting), so the sync at commit does not find a
whole video still to write, and evidence nobody reads back does not push other files out of
the page cache.

``put_bytes_if_absent`` writes and syncs its temp file the same way, then links it to the
key: a link fails if anything is there already, so the object appears whole or not at all
and never replaces another (hard links are needed: every local Linux filesystem has them).

How an object is made durable: with a ``syncfs`` on the store's file system before it is
linked and another after, each shared by every durable write waiting at that moment (group
commit). The first covers the object, the folders made for it, and every object committed
earlier with ``durable=False`` (a session's artifacts, which matter only once a manifest
lists them, and skip any sync of their own): the manifest written after them is their
barrier. The second covers the new name, where an fsync of its folder would need a worker
thread of its own. One ``syncfs`` after dozens of files costs about what two or three fsyncs
do. Small objects, and the link of every object, need only a few system calls that touch
the page cache, fewer than a hop to a worker thread costs, so they run on the event loop.
A failed ``syncfs`` cannot be tried again: the kernel reports a write-back error once, and
the pages it lost may belong to any object written before. So after one, every durable write
fails, naming the error, until the archiver is restarted (sessions without a manifest are
then archived again). Where ``syncfs`` does not report write-back errors (not Linux, or Linux
before 5.8), every object is fsynced, with its folder and any folder made for it, as it is
committed, whatever ``durable`` says.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import secrets
import stat
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import aiofiles

from archiver.errors import StoreBroken, StoreError
from archiver.keys import check_key, check_prefix
from archiver.store import ObjectWriter, OneVersionPerKey, beneath, syncfs
from archiver.store.localfile import LocalFileWriter

INCOMING = ".incoming"
TEMP_PREFIX = "write-"
CHUNK_SIZE = 1024 * 1024
# Objects up to this size are written to their temp file on the event loop (no fsync).
INLINE_BYTES = 256 * 1024
FOLDER_MODE = 0o750
FILE_MODE = 0o600
_T = TypeVar("_T")
_FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

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


class FilesystemStore(OneVersionPerKey):
    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        chunk_size: int = CHUNK_SIZE,
        unnamed_temps: bool | None = None,
        deferred_sync: bool | None = None,
        open_beneath: bool | None = None,
    ) -> None:
        """``unnamed_temps``, ``deferred_sync``, ``open_beneath``: None finds out whether this
        system allows them.

        ``deferred_sync``: whether objects are made durable by a shared ``syncfs`` (else by
        an fsync each, at commit, whatever ``durable`` says). ``open_beneath``: whether paths
        are opened with one ``openat2`` (else one level at a time).
        """
        self.description = f"file://{os.fspath(root)}"
        if deferred_sync is None:
            deferred_sync = syncfs.available()
        try:
            self._root = _prepare_root(Path(root))
            self._incoming = self._root / INCOMING
            if unnamed_temps is None:
                unnamed_temps = _unnamed_temps_work(self._incoming)
            # Opened before any write: syncfs reports the errors since its descriptor opened.
            self._root_fd: int | None = os.open(self._root, _FOLDER_FLAGS)
        except OSError as exc:
            raise StoreError(f"cannot use {self.description} as a store: {_reason(exc)}") from exc
        self.unnamed_temps = unnamed_temps
        self.deferred_sync = deferred_sync
        self._beneath = beneath.Opener(self._root_fd)
        self.open_beneath = self._beneath.usable if open_beneath is None else open_beneath
        if self.open_beneath and not self._beneath.usable:
            os.close(self._root_fd)
            raise StoreError(f"cannot use {self.description}: this system has no openat2")
        self._chunk_size = chunk_size
        self._writes = 0  # objects whose bytes are all in the file system so far
        self._synced_writes = 0  # how many of them a finished syncfs covered
        self._syncing = asyncio.Lock()
        self._sync_failure: OSError | None = None  # once set, nothing more is made durable
        # Without syncfs: folders made whose names no fsync of their parent has covered yet.
        self._names_owed: set[str] = set()

    def __repr__(self) -> str:
        return f"FilesystemStore({self.description!r})"

    @asynccontextmanager
    async def open_writer(
        self, key: str, *, content_type: str | None = None, durable: bool = True
    ) -> AsyncIterator[ObjectWriter]:
        self._check(key)
        writer = _FileWriter(self, key, durable=durable)
        try:
            yield writer
        finally:
            await writer.abort()

    async def put_bytes(
        self, key: str, data: bytes, *, content_type: str | None = None, durable: bool = True
    ) -> None:
        self._check(key)
        await _FileWriter(self, key, durable=durable).write_all(data)

    async def put_bytes_if_absent(
        self, key: str, data: bytes, *, content_type: str | None = None, durable: bool = True
    ) -> bool:
        self._check(key)
        return await _FileWriter(self, key, durable=durable).write_all(data, replace=False)

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
        self._check(key)
        try:
            return self._size(key)  # a few lstat calls on cached metadata: no thread hop
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

    async def object_info(self, key: str) -> Mapping[str, str]:
        if await self.size(key) is None:
            raise StoreError(f"cannot inspect {key!r} in {self.description}: no such object")
        return {}

    async def check(self) -> None:
        # The root was made usable in __init__; a folder removed since shows up here.
        if not await asyncio.to_thread(self._incoming.is_dir):
            raise StoreError(f"cannot use {self.description} as a store: its folder is gone")

    async def cleanup_incomplete(self, *, older_than: float = 0.0) -> int:
        try:
            return await asyncio.to_thread(self._remove_stale_temps, time.time() - older_than)
        except OSError as exc:
            raise self._failure("clean up", INCOMING, exc) from exc

    async def _sync_written(self, key: str) -> None:
        """Make every object counted in ``_writes`` so far durable, with one ``syncfs``.

        Whoever waits while a ``syncfs`` runs shares the next one: a ``syncfs`` that
        started after a caller's writes covers them all. A ``syncfs`` runs to its end even
        if its caller is cancelled, and a failed one is remembered (see the module notes).
        """
        wanted = self._writes
        async with self._syncing:
            self._raise_if_sync_failed(key)
            if self._synced_writes >= wanted:
                return  # a syncfs that started after those writes has finished
            covering = self._writes
            if self._root_fd is None:
                raise StoreError(f"cannot make {key!r} durable: the store is closed")
            sync = asyncio.ensure_future(asyncio.to_thread(syncfs.syncfs, self._root_fd))
            try:
                await asyncio.shield(sync)
            except asyncio.CancelledError:
                await _outcome_of(sync)  # the lock stays held until the syncfs is over
                raise
            except OSError:
                pass  # remembered just below
            finally:
                failure = sync.exception() if sync.done() and not sync.cancelled() else None
                if isinstance(failure, OSError):
                    self._sync_failure = failure
            self._raise_if_sync_failed(key)
            self._synced_writes = covering

    def _raise_if_sync_failed(self, key: str) -> None:
        if self._sync_failure is not None:
            raise StoreBroken(
                f"cannot make {key!r} durable in {self.description}: writing the file system "
                f"back to disk failed ({_reason(self._sync_failure)}), so objects written "
                "before then may be lost; restart the archiver once the disk is sound"
            ) from self._sync_failure

    async def close(self) -> None:
        async with self._syncing:  # not while a syncfs uses the descriptor
            if self._root_fd is not None:
                os.close(self._root_fd)
                self._root_fd = None

    def _check(self, key: str) -> None:
        check_key(key)
        if key.split("/", 1)[0] == INCOMING:
            raise ValueError(f"store key {key!r} is inside the store's {INCOMING} folder")

    def _path(self, key: str) -> Path:
        """The path of ``key``; blocking (a worker thread's job)."""
        self._check(key)
        parts = key.split("/")
        # A symlink planted inside the root must not lead a read or write outside it.
        # The root itself is resolved once; below it, a link anywhere on the way is refused.
        on_the_way = self._root
        for part in parts:
            on_the_way = on_the_way / part
            try:
                if stat.S_ISLNK(on_the_way.lstat().st_mode):
                    raise self._through_a_link(key)
            except (FileNotFoundError, NotADirectoryError):
                break  # the rest is created as real folders on commit
        return self._root.joinpath(*parts)

    def _open_folder(self, key: str) -> int:
        """The folder ``key`` goes in, opened; missing folders are created.

        Opened with one ``openat2`` if the folders exist, else one level at a time with
        ``O_NOFOLLOW``: a symlink anywhere below the root is refused, and cannot be swapped
        in between a check and the write. A folder's name must survive a crash as well as
        the object in it: with ``syncfs``, the one before the object is linked covers the
        name; without, its parent is fsynced by every writer through it until one such fsync
        has succeeded.
        """
        folder = key.rpartition("/")[0]
        if folder and not self._names_owed and self._can_open_beneath():
            with contextlib.suppress(OSError):  # missing, or a link: the walk says which
                return self._beneath.open(folder, beneath.FOLDER_FLAGS)
        fd = os.open(self._root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            path = ""
            for part in key.split("/")[:-1]:
                path = f"{path}/{part}" if path else part
                try:
                    child = _open_subfolder(part, fd)
                except FileNotFoundError:
                    if not self.deferred_sync:
                        self._names_owed.add(path)  # first: a writer that opens it fsyncs too
                    with contextlib.suppress(FileExistsError):  # a concurrent writer made it
                        os.mkdir(part, FOLDER_MODE, dir_fd=fd)
                    child = _open_subfolder(part, fd)
                if path in self._names_owed:
                    try:
                        os.fsync(fd)
                    except BaseException:
                        os.close(child)
                        raise
                    self._names_owed.discard(path)
                os.close(fd)
                fd = child
        except _ThroughALink as exc:
            os.close(fd)
            raise self._through_a_link(key) from exc
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _through_a_link(self, key: str) -> StoreError:
        return StoreError(
            f"store key {key!r} leads through a symbolic link, maybe outside {self.description}"
        )

    def _size(self, key: str) -> int | None:
        if self._can_open_beneath():
            try:
                fd = self._beneath.open(key, beneath.PATH_FLAGS)
            except (FileNotFoundError, NotADirectoryError):
                return None
            except OSError:
                pass  # a link on the way (or worse): the walk says which
            else:
                try:
                    status = os.fstat(fd)
                finally:
                    os.close(fd)
                return _object_size(status)
        return _file_size(self._path(key))

    def _can_open_beneath(self) -> bool:
        return self.open_beneath and self._root_fd is not None

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
    """Writes one object: into a temp file, then durable (as asked), then into place.

    ``durable=False`` with ``syncfs``: no sync at all, the next durable write covers it.
    ``durable=True`` with ``syncfs``: a shared ``syncfs``, the link, another shared ``syncfs``.
    Without ``syncfs``: an fsync of the file, the link, an fsync of the folder.
    """

    def __init__(self, store: FilesystemStore, key: str, *, durable: bool = True) -> None:
        super().__init__(key=key, folder=store._incoming, prefix=TEMP_PREFIX, start_writeback=True)
        self._store = store
        self._deferred = not durable and store.deferred_sync
        self._synced_by_store = durable and store.deferred_sync
        self._folder_fd: int | None = None  # the key's folder, opened with the temp file

    def create_temp_sync(self) -> int:
        folder = self._store._open_folder(self.key)
        try:
            if not self._store.unnamed_temps:
                fd = super().create_temp_sync()  # a named one under .incoming
            else:
                fd = os.open(
                    ".", os.O_WRONLY | os.O_TMPFILE | os.O_CLOEXEC, FILE_MODE, dir_fd=folder
                )
        except BaseException:
            os.close(folder)
            raise
        self._folder_fd = folder
        return fd

    def discard_more_sync(self) -> None:
        if self._folder_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._folder_fd)
            self._folder_fd = None

    async def finish(self, *, sha256: str, size: int) -> None:
        await self._place(replace=True)

    async def write_all(self, data: bytes, *, replace: bool = True) -> bool:
        """The whole object at once (manifests, ledger entries, small records).

        With ``replace=False`` an object already at the key stays, and False comes back.
        """
        self._require_open()
        try:
            await self.write(data)
            try:
                placed = await self._place(replace=replace)
            except OSError as exc:
                raise self.error("write" if replace else "create", exc) from exc
        except BaseException:
            await self.abort()
            raise
        self._finished = True
        return placed

    async def _place(self, *, replace: bool) -> bool:
        """Make the written bytes durable as asked and visible at the key."""
        store = self._store
        if self._deferred:
            placed = await self._small_on_loop(self._place_sync, replace)
            store._writes += 1
            return placed
        if not self._synced_by_store:
            return await self.in_thread(self._place_sync, replace)
        if self._fd is None:  # the bytes are still held: into the temp file with them
            await self._small_on_loop(self.opened_sync)
        store._writes += 1
        await store._sync_written(self.key)  # its bytes, and every object's before, durable
        # A link only touches metadata, so it needs no worker thread; the next shared
        # syncfs, not an fsync of its folder, makes the new name durable.
        placed = self._place_sync(replace)
        if placed:
            store._writes += 1
            await store._sync_written(self.key)
        return placed

    async def _small_on_loop(self, function: Callable[..., _T], *args: Any) -> _T:
        """Run ``function`` on the event loop if the object is small and not on disk yet."""
        if self._fd is None and self._written <= INLINE_BYTES:
            return function(*args)
        return await self.in_thread(function, *args)

    def error(self, operation: str, exc: OSError) -> StoreError:
        return self._store._failure(operation, self.key, exc)

    def _place_sync(self, replace: bool) -> bool:
        fsync = not self._deferred and not self._synced_by_store
        fd = self.opened_sync()
        folder = self._folder_fd
        assert folder is not None  # opened with the temp file
        name = self.key.rpartition("/")[2]
        try:
            if self.temp is not None:  # a named temp file under .incoming
                temp = self.seal_sync(fsync=fsync)
                placed = _move_into_place(temp, folder, name, replace=replace)
                if not replace:
                    temp.unlink()  # a link, made or refused, leaves the temp's own name
            else:
                if fsync:
                    os.fsync(fd)
                placed = _link_into_place(fd, folder, name, replace=replace)
            if placed and fsync:
                os.fsync(folder)  # the new name survives a crash
            return placed
        finally:
            self._discard_sync()  # the file is in place or given up: close it and the folder


def _prepare_root(root: Path) -> Path:
    if not root.is_absolute():
        raise ValueError(f"a filesystem store needs an absolute path, got {str(root)!r}")
    if not root.is_dir():
        root.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    (root / INCOMING).mkdir(mode=0o700, exist_ok=True)
    return root.resolve()


class _ThroughALink(Exception):
    pass


def _open_subfolder(name: str, parent: int) -> int:
    try:
        return os.open(name, _FOLDER_FLAGS, dir_fd=parent)
    except OSError as exc:
        # O_NOFOLLOW with O_DIRECTORY refuses a symlink as ENOTDIR or ELOOP.
        if exc.errno in (errno.ENOTDIR, errno.ELOOP) and stat.S_ISLNK(
            os.lstat(name, dir_fd=parent).st_mode
        ):
            raise _ThroughALink(name) from exc
        raise


def _unnamed_temps_work(folder: Path) -> bool:
    """Whether unnamed files can be made in ``folder`` and reached through ``/proc`` to link."""
    try:
        fd = os.open(folder, os.O_WRONLY | os.O_TMPFILE | os.O_CLOEXEC, FILE_MODE)
    except OSError:
        return False
    try:
        Path(f"/proc/self/fd/{fd}").stat()
    except OSError:
        return False
    finally:
        os.close(fd)
    return True


def _link_unnamed(fd: int, folder: int, name: str) -> None:
    # linkat(AT_FDCWD, "/proc/self/fd/N", folder, name, AT_SYMLINK_FOLLOW); Python calls
    # linkat, which follows the magic link to the open file, only when a dir_fd is given.
    os.link(f"/proc/self/fd/{fd}", name, dst_dir_fd=folder, follow_symlinks=True)


def _link_into_place(fd: int, folder: int, name: str, *, replace: bool) -> bool:
    """Give the unnamed file ``fd`` the name ``name`` in ``folder``.

    A link never replaces anything: without ``replace`` an object already there stays and
    False comes back; with it, the file is linked under a spare name and renamed over the
    object (atomic; a crash between the two leaves the spare ``.archiver-*`` name behind).
    """
    try:
        _link_unnamed(fd, folder, name)
    except FileExistsError:
        if not replace:
            return False
        spare = f".archiver-{secrets.token_hex(8)}"
        _link_unnamed(fd, folder, spare)
        try:
            os.replace(spare, name, src_dir_fd=folder, dst_dir_fd=folder)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(spare, dir_fd=folder)
            raise
    return True


def _move_into_place(temp: Path, folder: int, name: str, *, replace: bool) -> bool:
    """Rename the named temp file to ``name`` in ``folder``, or hard-link it there only if
    nothing is there yet; returns whether it was placed."""
    if replace:
        os.replace(temp, name, dst_dir_fd=folder)
    else:
        try:
            os.link(temp, name, dst_dir_fd=folder)
        except FileExistsError:
            return False
    return True


def _file_size(path: Path) -> int | None:
    try:
        status = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return _object_size(status)


def _object_size(status: os.stat_result) -> int | None:
    """The size of a regular file; None for anything else (a folder is no object)."""
    return status.st_size if stat.S_ISREG(status.st_mode) else None


async def _outcome_of(future: asyncio.Future[None]) -> None:
    """Wait for ``future`` to finish, whatever it ends with and however often we are cancelled."""
    while not future.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(future)


def _reason(exc: OSError) -> str:
    return _REASONS.get(exc.errno or 0) or exc.strerror or type(exc).__name__


def _raise(exc: OSError) -> None:
    raise exc
