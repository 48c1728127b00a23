"""Readiness: an observer that remembers each source's last successful pass, and says
whether the daemon is doing its job (``/readyz``): its start-up checks passed, the store
answers now, and every source passed lately."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from archiver.errors import ArchiverError
from archiver.observe import NullObserver

STORE_CHECK_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


class Readiness(NullObserver):
    """Ready once start-up checks passed and every enabled source had a successful pass in
    the last ``max_missed_passes`` intervals."""

    def __init__(
        self,
        sources: Iterable[str],
        *,
        interval_seconds: float,
        max_missed_passes: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sources = tuple(sources)
        self.window_seconds = interval_seconds * max_missed_passes
        self.max_missed_passes = max_missed_passes
        self.started_up = False
        # A cheap read of the store (a HEAD on S3): set once the store is open.
        self.store_probe: Callable[[], Awaitable[object]] | None = None
        self._clock = clock
        self._last_success: dict[str, float] = {}
        self._last_failed: set[str] = set()

    def pass_finished(self, source: str, *, ok: bool, seconds: float) -> None:
        if ok:
            self._last_success[source] = self._clock()
            self._last_failed.discard(source)
        else:
            self._last_failed.add(source)

    async def checks(self) -> list[Check]:
        found = [
            Check(
                "startup",
                self.started_up,
                "config, state, store and ledger head checked" if self.started_up else "starting",
            )
        ]
        if self.store_probe is not None:
            found.append(await self._store_check(self.store_probe))
        now = self._clock()
        for source in self.sources:
            found.append(self._source_check(source, now))
        return found

    @staticmethod
    async def _store_check(probe: Callable[[], Awaitable[object]]) -> Check:
        started = time.monotonic()
        try:
            await asyncio.wait_for(probe(), STORE_CHECK_SECONDS)
        except TimeoutError:
            return Check("store", False, f"no answer within {STORE_CHECK_SECONDS:g} s")
        except ArchiverError as exc:
            return Check("store", False, str(exc))
        return Check("store", True, f"answered in {time.monotonic() - started:.3f} s")

    def _source_check(self, source: str, now: float) -> Check:
        name = f"source:{source}"
        last = self._last_success.get(source)
        if last is None:
            detail = "no successful pass yet"
            if source in self._last_failed:
                detail += "; the last pass failed"
            return Check(name, False, detail)
        age = now - last
        if age > self.window_seconds:
            return Check(
                name,
                False,
                f"last successful pass {age:.0f} s ago, more than {self.max_missed_passes} "
                f"intervals ({self.window_seconds:g} s)",
            )
        return Check(name, True, f"last successful pass {age:.0f} s ago")
