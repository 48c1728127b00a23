"""A one-line progress bar for long runs on a terminal (``verify``); silent otherwise."""

from __future__ import annotations

import time
from typing import TextIO

WIDTH = 30
INTERVAL = 0.1  # seconds between redraws


class TerminalProgress:
    """Draws ``[#####.....]  45%  120/300 objects  1.2/2.6 GiB`` in place on ``stream``."""

    def __init__(self, stream: TextIO, *, label: str = "verify") -> None:
        self._stream = stream
        self._label = label
        self._drawn_at = 0.0
        self._shown = False

    def __call__(self, objects: int, done: int, total_objects: int, total: int) -> None:
        now = time.monotonic()
        finished = objects == total_objects
        if not finished and now - self._drawn_at < INTERVAL:
            return
        self._drawn_at = now
        fraction = done / total if total else (1.0 if finished else 0.0)
        filled = int(WIDTH * fraction)
        bar = "#" * filled + "." * (WIDTH - filled)
        self._stream.write(
            f"\r{self._label} [{bar}] {fraction:4.0%}  {objects}/{total_objects} objects  "
            f"{human_bytes(done)}/{human_bytes(total)}"
        )
        self._stream.flush()
        self._shown = True

    def close(self) -> None:
        if self._shown:
            self._stream.write("\n")
            self._stream.flush()


def human_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")
