"""What the test process still holds open: a writer that leaks a descriptor shows up here."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def open_files_under(folder: Path) -> list[str]:
    """Deleted or unnamed files below ``folder`` this process still holds open."""
    found = []
    for fd in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith(f"{folder}/") and "(deleted)" in target:
                found.append(target)
    return found
