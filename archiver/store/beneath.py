"""Open a path below a folder in one system call, refusing every symbolic link on the way.

``openat2`` with ``RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`` (Linux 5.6 and later) does in one
call what opening one level at a time with ``O_NOFOLLOW`` does in two calls per level: the
path cannot leave the folder, and a symlink anywhere in it, the last part included, fails
with ``ELOOP``. The standard library does not wrap it, so it is reached through libc's
``syscall``. Where it is missing or a container's seccomp filter refuses it, :func:`Opener`
says so at once (``usable`` is False) and callers walk the path themselves.
"""

from __future__ import annotations

import ctypes
import os

from archiver.store.libc import last_error, linux_function

# openat2's number is the same on every Linux architecture (it came after the unification).
_SYS_OPENAT2 = 437
_RESOLVE_NO_SYMLINKS = 0x04
_RESOLVE_BENEATH = 0x08
FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
PATH_FLAGS = getattr(os, "O_PATH", 0) | os.O_CLOEXEC


class _OpenHow(ctypes.Structure):
    _fields_ = (
        ("flags", ctypes.c_uint64),
        ("mode", ctypes.c_uint64),
        ("resolve", ctypes.c_uint64),
    )


_SYSCALL = linux_function("syscall", restype=ctypes.c_long)


class Opener:
    """Opens paths below the folder ``folder_fd`` with ``openat2``, if the system allows."""

    def __init__(self, folder_fd: int) -> None:
        self._folder_fd = folder_fd
        self._how = {
            flags: _OpenHow(flags, 0, _RESOLVE_BENEATH | _RESOLVE_NO_SYMLINKS)
            for flags in (FOLDER_FLAGS, PATH_FLAGS)
        }
        self._size = ctypes.sizeof(_OpenHow)
        self.usable = _SYSCALL is not None and self._works()

    def _works(self) -> bool:
        try:
            os.close(self.open(".", PATH_FLAGS))
        except OSError:
            return False
        return True

    def open(self, path: str, flags: int) -> int:
        """A descriptor for ``path`` (``FOLDER_FLAGS`` or ``PATH_FLAGS``); OSError otherwise."""
        assert _SYSCALL is not None
        how = self._how[flags]
        fd = _SYSCALL(
            _SYS_OPENAT2, self._folder_fd, os.fsencode(path), ctypes.byref(how), self._size
        )
        if fd < 0:
            raise last_error(path)
        return fd
