"""Pacing from a vendor's rate-limit headers, so a long back-fill does not hammer the API.

Vendors that announce ``X-Ratelimit-Remaining`` and ``X-Ratelimit-Reset`` (DevRev) are
paced before they have to answer 429: when the budget is nearly spent, the remaining
requests are spread over the time left in the window; when it is spent, requests wait for
the reset. A 429 is still handled by the retry policy; this only makes it rare.

The clocks and the sleep are parameters so that tests can drive the pacer without waiting.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping

LOW_BUDGET = 5
MAX_PAUSE_SECONDS = 300.0
# A reset value this large is an epoch timestamp, not a number of seconds.
EPOCH_THRESHOLD = 1_000_000_000


class RateLimitPacer:
    def __init__(
        self,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """``wall_clock`` turns an epoch reset into seconds; ``monotonic`` times the rest."""
        self._monotonic = monotonic
        self._wall_clock = wall_clock
        self._sleep = sleep
        self._not_before = 0.0

    def observe(self, headers: Mapping[str, str]) -> None:
        remaining = _number(headers.get("X-Ratelimit-Remaining"))
        reset = _reset_seconds(headers.get("X-Ratelimit-Reset"), self._wall_clock())
        if remaining is None or reset is None:
            return
        if remaining <= 0:
            delay = reset
        elif remaining <= LOW_BUDGET:
            delay = reset / (remaining + 1)
        else:
            return
        now = self._monotonic()
        self._not_before = max(self._not_before, now + min(delay, MAX_PAUSE_SECONDS))

    async def wait_turn(self) -> None:
        delay = self._not_before - self._monotonic()
        if delay > 0:
            await self._sleep(delay)


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _reset_seconds(value: str | None, now: float) -> float | None:
    """Seconds until the reset, given in seconds or as an epoch timestamp (``now`` is one)."""
    number = _number(value)
    if number is None:
        return None
    if number > EPOCH_THRESHOLD:
        number = number - now
    return max(0.0, number)
