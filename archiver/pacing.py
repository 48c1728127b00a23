"""Pacing from a vendor's rate-limit headers, so a long back-fill does not hammer the API.

Vendors that announce ``X-Ratelimit-Remaining`` and ``X-Ratelimit-Reset`` (DevRev) are
paced before they have to answer 429: when the budget is nearly spent, the remaining
requests are spread over the time left in the window; when it is spent, requests wait for
the reset. A 429 is still handled by the retry policy; this only makes it rare.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

LOW_BUDGET = 5
MAX_PAUSE_SECONDS = 300.0
# A reset value this large is an epoch timestamp, not a number of seconds.
EPOCH_THRESHOLD = 1_000_000_000


class RateLimitPacer:
    def __init__(self) -> None:
        self._not_before = 0.0

    def observe(self, headers: Mapping[str, str]) -> None:
        remaining = _number(headers.get("X-Ratelimit-Remaining"))
        reset = _reset_seconds(headers.get("X-Ratelimit-Reset"))
        if remaining is None or reset is None:
            return
        if remaining <= 0:
            delay = reset
        elif remaining <= LOW_BUDGET:
            delay = reset / (remaining + 1)
        else:
            return
        self._not_before = max(self._not_before, time.monotonic() + min(delay, MAX_PAUSE_SECONDS))

    async def wait_turn(self) -> None:
        delay = self._not_before - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _reset_seconds(value: str | None) -> float | None:
    number = _number(value)
    if number is None:
        return None
    if number > EPOCH_THRESHOLD:
        number = number - time.time()
    return max(0.0, number)
