"""Owner-only files and the single-writer lock file of a local state database.

Next to ``state.db`` lives ``state.db.lock``: the process holding an exclusive ``flock`` on
it (and whose pid it contains) is the only archiver allowed to use the database. The kernel
drops the lock when that process dies, so a stale lock file never blocks a restart. Files
are created owner-only (0o600), a missing parent directory owner-only (0o700).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from archiver.errors import StateError, StateLocked

FILE_MODE = 0o600
DIRECTORY_MODE = 0o700


class LockFile:
    """An exclusive ``flock`` on ``<db>.lock``, holding the owner's pid."""

    def __init__(self, path: Path, descriptor: int) -> None:
        self.path = path
        self._descriptor = descriptor

    @classmethod
    def acquire(cls, database: Path) -> LockFile:
        path = database.with_name(database.name + ".lock")
        descriptor = open_owner_only(path, database)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(descriptor)
            os.close(descriptor)
            raise StateLocked(
                f"state database {database} is in use by another archiver process"
                f" (pid {holder}); stop it first or use another state url"
            ) from None
        except OSError as exc:
            os.close(descriptor)
            raise StateError(f"state database {database}: cannot lock {path}: {exc}") from exc
        try:
            _write_pid(descriptor)
        except OSError as exc:
            os.close(descriptor)
            raise StateError(f"state database {database}: cannot write {path}: {exc}") from exc
        return cls(path, descriptor)

    def release(self) -> None:
        """Clear the pid and drop the lock (closing the descriptor releases the flock)."""
        with contextlib.suppress(OSError):
            os.ftruncate(self._descriptor, 0)
        os.close(self._descriptor)


def make_parent_directory(database: Path) -> None:
    try:
        database.parent.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
    except OSError as exc:
        raise StateError(
            f"state database {database}: cannot create its directory {database.parent}: {exc}"
        ) from exc


def open_owner_only(path: Path, database: Path) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    except OSError as exc:
        raise StateError(f"state database {database}: cannot open {path}: {exc}") from exc


def _read_pid(descriptor: int) -> str:
    try:
        text = os.pread(descriptor, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        text = ""
    return text if text.isdigit() else "unknown"


def _write_pid(descriptor: int) -> None:
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
