"""System calls the standard library does not wrap, reached through the C library.

Only on Linux, and only where the C library has the function; otherwise None, and each
caller falls back to what it does without.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any


def linux_function(
    name: str, *, argtypes: Sequence[Any] | None = None, restype: Any = ctypes.c_int
) -> Callable[..., int] | None:
    """libc's ``name``, setting ``errno`` for :func:`last_error`, or None."""
    if sys.platform != "linux":
        return None
    try:
        function = getattr(ctypes.CDLL(None, use_errno=True), name)
    except (OSError, AttributeError):
        return None
    if argtypes is not None:
        function.argtypes = list(argtypes)
    function.restype = restype
    found: Callable[..., int] = function
    return found


def last_error(filename: str | None = None) -> OSError:
    """The OSError for the ``errno`` the last such call left."""
    number = ctypes.get_errno()
    if filename is None:
        return OSError(number, os.strerror(number))
    return OSError(number, os.strerror(number), filename)
