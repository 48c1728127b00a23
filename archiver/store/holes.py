"""Give a range of a spool file back: ``fallocate(2)`` with ``FALLOC_FL_PUNCH_HOLE``.

Once S3 has a part, its bytes in the spool are dead weight. Punching them out frees their
page-cache pages at once, so the next parts are written into the same few, already mapped
pages instead of ever-new ones, and blocks the file system had not yet allocated are never
written to the disk at all. A big object's spool then holds only the parts in flight.

The standard library has ``os.posix_fallocate`` (which only allocates), not ``fallocate``
with flags; it is reached through libc. Where it does not exist or the file system does
not support holes, ``punch_hole`` does nothing: the spool stays whole until it is deleted,
as it would without this.
"""

from __future__ import annotations

import ctypes

from archiver.store.libc import linux_function

_PUNCH_HOLE = 0x02
_KEEP_SIZE = 0x01  # required with _PUNCH_HOLE
# fallocate64 takes 64-bit offsets on every platform, fallocate only on 64-bit ones.
_FALLOCATE = linux_function(
    "fallocate64", argtypes=(ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64)
)


def punch_hole(fd: int, start: int, end: int) -> bool:
    """Drop ``[start, end)`` of the file open for writing at ``fd``; reads of it then
    give zeros. False where that cannot be done (the bytes then stay)."""
    if _FALLOCATE is None or end <= start:
        return False
    return _FALLOCATE(fd, _PUNCH_HOLE | _KEEP_SIZE, start, end - start) == 0
