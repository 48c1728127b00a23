"""``syncfs(2)``: make everything written to one file system durable in one call.

The standard library has ``os.sync`` (every file system) and ``os.fsync`` (one file), not
``syncfs``; it is reached through libc. It is used only where it reports write-back errors
(Linux 5.8 and later): before that it returned 0 even when the disk had refused data.
"""

from __future__ import annotations

import ctypes
import os
import sys

from archiver.store.libc import last_error, linux_function

_REPORTS_ERRORS_SINCE = (5, 8)


def _kernel_version() -> tuple[int, int]:
    numbers = os.uname().release.split("-")[0].split(".")
    try:
        return int(numbers[0]), int(numbers[1])
    except (IndexError, ValueError):
        return 0, 0


_SYNCFS = (
    linux_function("syncfs", argtypes=(ctypes.c_int,))
    if sys.platform == "linux" and _kernel_version() >= _REPORTS_ERRORS_SINCE
    else None
)


def available() -> bool:
    """Whether :func:`syncfs` can be used here."""
    return _SYNCFS is not None


def syncfs(fd: int) -> None:
    """Write back and flush the file system holding ``fd``; OSError if that failed.

    Errors are those since ``fd`` was opened (or since its last ``syncfs``), so the caller
    keeps one descriptor open from before its first write.
    """
    if _SYNCFS is None:
        raise OSError(0, "syncfs is not available on this system")
    if _SYNCFS(fd) != 0:
        raise last_error()
