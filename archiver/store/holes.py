"""Give a range of a spool file back: ``fallocate(2)`` with ``FALLOC_FL_PUNCH_HOLE``.

Once S3 has a part, its bytes in the spool are dead weight. Punching them out frees their
page-cache pages and disk blocks at once, so a big object's spool holds only what is
downloaded and not yet in S3, and the next parts are written into the same few, already
mapped pages instead of ever-new ones. On ext4 (recent kernels) and tmpfs, bytes not yet
written back never reach the disk; XFS, btrfs and older ext4 kernels first write the range
out, then free it (a disk write per part, in the part's worker thread).

The standard library has ``os.posix_fallocate`` (which only allocates), not ``fallocate``
with flags; it is reached through libc. Where it does not exist or the file system does
not support holes, ``punch_hole`` does nothing: the spool stays whole until it is deleted,
as it would without this.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

from archiver.store.libc import linux_function

_PUNCH_HOLE = 0x02
_KEEP_SIZE = 0x01  # required with _PUNCH_HOLE


def _load_fallocate() -> Callable[..., int] | None:
    argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64)
    # fallocate64 takes 64-bit offsets everywhere. Where the C library lacks it (musl),
    # plain fallocate does too, if off_t is 64-bit (the size of a long).
    found = linux_function("fallocate64", argtypes=argtypes)
    if found is None and ctypes.sizeof(ctypes.c_long) == 8:
        found = linux_function("fallocate", argtypes=argtypes)
    return found


_FALLOCATE = _load_fallocate()


def punch_hole(fd: int, start: int, end: int) -> bool:
    """Drop ``[start, end)`` of the file open for writing at ``fd``; reads of it then
    give zeros. False where that cannot be done (the bytes then stay)."""
    if _FALLOCATE is None or end <= start:
        return False
    return _FALLOCATE(fd, _PUNCH_HOLE | _KEEP_SIZE, start, end - start) == 0
