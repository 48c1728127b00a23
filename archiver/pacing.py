"""Pacing of the requests to a vendor's API, so a long back-fill does not hammer it.

Two things pace them:

* **the vendor's own word**: vendors that announce ``X-Ratelimit-Remaining`` and
  ``X-Ratelimit-Reset`` (DevRev) are paced before they have to answer 429: when the budget
  is nearly spent, the remaining requests are spread over the time left in the window; when
  it is spent, requests wait for the reset. A 429's ``Retry-After`` pauses every request
  to the vendor, not only the one retried;
* **a configured rate** (``requests_per_second`` of the source): requests take turns in a
  :class:`RequestBudget`, one every ``1 / rate`` seconds. The budget is this process's
  (:class:`LocalBudget`), or, for replicas sharing a PostgreSQL state, the database's: the
  vendor's limits apply to the account, so all replicas together keep to the rate, and a
  pause one of them learns from the vendor holds them all.

A 429 is still handled by the retry policy; this only makes it rare. The clocks and the
sleep are parameters so that tests can drive the pacer without waiting.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

LOW_BUDGET = 5
MAX_PAUSE_SECONDS = 300.0
# A reset value this large is an epoch timestamp, not a number of seconds.
EPOCH_THRESHOLD = 1_000_000_000


class RequestBudget(Protocol):
    """Turns at a vendor's API, for everyone holding the same budget."""

    async def reserve(self, vendor: str, interval: float) -> float:
        """Take the vendor's next turn, ``interval`` seconds after the one before (or now,
        if that is later); how many seconds from now it is."""
        ...

    async def hold_off(self, vendor: str, seconds: float) -> None:
        """No turn at the vendor sooner than ``seconds`` from now."""
        ...


class LocalBudget:
    """This process's :class:`RequestBudget`."""

    def __init__(self, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._next_turn: dict[str, float] = {}

    async def reserve(self, vendor: str, interval: float) -> float:
        now = self._monotonic()
        turn = max(self._next_turn.get(vendor, now), now)
        self._next_turn[vendor] = turn + interval
        return turn - now

    async def hold_off(self, vendor: str, seconds: float) -> None:
        now = self._monotonic()
        self._next_turn[vendor] = max(self._next_turn.get(vendor, now), now + seconds)


class RateLimitPacer:
    def __init__(
        self,
        *,
        vendor: str = "",
        requests_per_second: float | None = None,
        budget: RequestBudget | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """``wall_clock`` turns an epoch reset into seconds; ``monotonic`` times the rest.
        With ``requests_per_second``, requests take turns in ``budget`` (this process's own
        unless another is given)."""
        self.vendor = vendor
        self.interval = 1 / requests_per_second if requests_per_second else 0.0
        self.budget: RequestBudget = budget or LocalBudget(monotonic=monotonic)
        self._monotonic = monotonic
        self._wall_clock = wall_clock
        self._sleep = sleep
        self._not_before = 0.0

    def observe(self, headers: Mapping[str, str], status: int = 200) -> float | None:
        """Learn from an answer's rate-limit headers (and a 429's ``Retry-After``); the
        pause it calls for, if any."""
        delay = self._pause_called_for(headers, status)
        if delay is None:
            return None
        delay = min(delay, MAX_PAUSE_SECONDS)
        self._not_before = max(self._not_before, self._monotonic() + delay)
        return delay

    async def learn(self, headers: Mapping[str, str], status: int) -> None:
        """:meth:`observe`, and a pause it calls for holds the whole budget off."""
        delay = self.observe(headers, status)
        if delay is not None and self.interval:
            await self.budget.hold_off(self.vendor, delay)

    async def wait_turn(self) -> None:
        delay = self._not_before - self._monotonic()
        if delay > 0:
            await self._sleep(delay)
        if self.interval:
            turn = await self.budget.reserve(self.vendor, self.interval)
            if turn > 0:
                await self._sleep(turn)

    def _pause_called_for(self, headers: Mapping[str, str], status: int) -> float | None:
        if status == 429:
            retry_after = retry_after_seconds(headers.get("Retry-After"), self._wall_clock())
            if retry_after is not None:
                return retry_after
        remaining = _number(headers.get("X-Ratelimit-Remaining"))
        reset = _reset_seconds(headers.get("X-Ratelimit-Reset"), self._wall_clock())
        if remaining is None or reset is None:
            return None
        if remaining <= 0:
            return reset
        if remaining <= LOW_BUDGET:
            return reset / (remaining + 1)
        return None


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


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` in seconds: given as delta-seconds or as an HTTP date (``now``: the
    epoch time it is measured from, the current time unless given)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))
