"""Rate-limit pacing and error-body parsing (DevRev's retry_after and reference_id)."""

from __future__ import annotations

import asyncio
import json

import pytest

from archiver.http import parse_error_body
from archiver.pacing import MAX_PAUSE_SECONDS, LocalBudget, RateLimitPacer

EPOCH_NOW = 1_800_000_000.0


class FakeClock:
    """Both clocks of a pacer; its sleeps are noted and move them on, without waiting."""

    def __init__(self) -> None:
        self.monotonic_now = 500.0
        self.wall_now = EPOCH_NOW
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.monotonic_now

    def wall(self) -> float:
        return self.wall_now

    def advance(self, seconds: float) -> None:
        self.monotonic_now += seconds
        self.wall_now += seconds

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(seconds)

    def pacer(self, requests_per_second: float | None = None) -> RateLimitPacer:
        return RateLimitPacer(
            vendor="devrev",
            requests_per_second=requests_per_second,
            monotonic=self.monotonic,
            wall_clock=self.wall,
            sleep=self.sleep,
        )


async def test_spent_budget_waits_for_the_reset() -> None:
    clock = FakeClock()
    pacer = clock.pacer()
    pacer.observe({"X-Ratelimit-Remaining": "0", "X-Ratelimit-Reset": "0.2"})
    clock.advance(0.05)  # the answer took a while to be handled
    await pacer.wait_turn()
    assert clock.sleeps == [pytest.approx(0.15)]
    await pacer.wait_turn()  # the window has reset: the next request goes at once
    assert len(clock.sleeps) == 1


async def test_low_budget_spreads_the_rest_over_the_window() -> None:
    clock = FakeClock()
    pacer = clock.pacer()
    pacer.observe({"X-Ratelimit-Remaining": "3", "X-Ratelimit-Reset": "8"})
    await pacer.wait_turn()
    assert clock.sleeps == [pytest.approx(2.0)]  # 8 s for 3 requests: one every 2 s


async def test_ample_budget_does_not_wait() -> None:
    clock = FakeClock()
    pacer = clock.pacer()
    pacer.observe({"X-Ratelimit-Remaining": "500", "X-Ratelimit-Reset": "60"})
    pacer.observe({"Content-Type": "application/json"})
    pacer.observe({"X-Ratelimit-Remaining": "soon", "X-Ratelimit-Reset": "60"})
    await pacer.wait_turn()
    assert clock.sleeps == []


async def test_a_later_ample_budget_does_not_cut_a_wait_short() -> None:
    clock = FakeClock()
    pacer = clock.pacer()
    pacer.observe({"X-Ratelimit-Remaining": "0", "X-Ratelimit-Reset": "10"})
    pacer.observe({"X-Ratelimit-Remaining": "500", "X-Ratelimit-Reset": "60"})
    await pacer.wait_turn()
    assert clock.sleeps == [pytest.approx(10.0)]


async def test_epoch_reset_is_understood() -> None:
    clock = FakeClock()
    pacer = clock.pacer()
    pacer.observe({"X-Ratelimit-Remaining": "0", "X-Ratelimit-Reset": str(EPOCH_NOW + 0.2)})
    await pacer.wait_turn()
    assert clock.sleeps == [pytest.approx(0.2)]


async def test_a_reset_in_the_past_or_far_away_is_bounded() -> None:
    clock = FakeClock()
    pacer = clock.pacer()
    pacer.observe({"X-Ratelimit-Remaining": "0", "X-Ratelimit-Reset": str(EPOCH_NOW - 30)})
    await pacer.wait_turn()
    assert clock.sleeps == []
    pacer.observe({"X-Ratelimit-Remaining": "0", "X-Ratelimit-Reset": "86400"})
    await pacer.wait_turn()
    assert clock.sleeps == [MAX_PAUSE_SECONDS]


async def test_the_default_clocks_really_wait() -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    pacer = RateLimitPacer()
    pacer.observe({"X-Ratelimit-Remaining": "0", "X-Ratelimit-Reset": "0.05"})
    await pacer.wait_turn()
    # A lower bound only (the loop may wake a timer a little early): a busy machine only
    # makes the wait longer.
    assert loop.time() - started >= 0.04


def test_error_bodies() -> None:
    devrev = parse_error_body(
        b'{"type": "internal_error", "message": "boom", "reference_id": "ref-42"}'
    )
    assert devrev.describe() == "boom (reference_id ref-42)"
    limited = parse_error_body(
        b'{"type": "too_many_requests", "message": "slow", "retry_after": 3}'
    )
    assert limited.retry_after == 3.0
    perfecto = parse_error_body(b'[{"userMessage": "Time period is not in supported range"}]')
    assert perfecto.detail == "Time period is not in supported range"
    problem = parse_error_body(
        json.dumps(
            {
                "title": "One or more validation errors occurred.",
                "status": 400,
                "errors": {"start": ["Bad  value.", "Too early."], "End": "x" * 500},
            }
        ).encode()
    )
    assert problem.detail.startswith(
        "One or more validation errors occurred.: start: Bad value. Too early.: End: xxx"
    )
    assert len(problem.detail) == 300 and problem.detail.endswith("x...")
    html = parse_error_body(b"<html><body>Bad   gateway</body></html>")
    assert html.detail == "<html><body>Bad gateway</body></html>"


async def test_a_configured_rate_spaces_the_requests_evenly() -> None:
    clock = FakeClock()
    pacer = clock.pacer(requests_per_second=4)
    for _ in range(5):
        await pacer.wait_turn()
    # The first goes at once; each of the others waits for its turn, a quarter second on.
    assert clock.sleeps == [pytest.approx(0.25)] * 4
    clock.advance(10)  # idle time is not saved up for a burst
    await pacer.wait_turn()
    await pacer.wait_turn()
    assert clock.sleeps[4:] == [pytest.approx(0.25)]


async def test_without_a_rate_requests_do_not_wait() -> None:
    clock = FakeClock()
    pacer = clock.pacer()
    for _ in range(5):
        await pacer.wait_turn()
    assert clock.sleeps == []


async def test_a_429s_retry_after_holds_every_request_off() -> None:
    clock = FakeClock()
    pacer = clock.pacer()
    assert pacer.observe({"Retry-After": "3"}, status=429) == 3.0
    assert pacer.observe({"Retry-After": "3"}, status=503) is None  # only a 429 paces
    await pacer.wait_turn()
    assert clock.sleeps == [pytest.approx(3.0)]


async def test_a_pause_learned_is_shared_through_the_budget() -> None:
    clock = FakeClock()
    shared = LocalBudget(monotonic=clock.monotonic)
    one = RateLimitPacer(
        vendor="devrev",
        requests_per_second=10,
        budget=shared,
        monotonic=clock.monotonic,
        sleep=clock.sleep,
    )
    other = RateLimitPacer(
        vendor="devrev",
        requests_per_second=10,
        budget=shared,
        monotonic=clock.monotonic,
        sleep=clock.sleep,
    )
    await one.learn({"Retry-After": "2"}, 429)
    await other.wait_turn()  # never saw the 429, still waits for the vendor
    assert clock.sleeps == [pytest.approx(2.0)]
    await one.wait_turn()
    await other.wait_turn()
    assert clock.sleeps[1:] == [pytest.approx(0.1), pytest.approx(0.1)]


async def test_budgets_keep_vendors_apart() -> None:
    clock = FakeClock()
    budget = LocalBudget(monotonic=clock.monotonic)
    assert [await budget.reserve("devrev", 0.5) for _ in range(3)] == [0.0, 0.5, 1.0]
    assert await budget.reserve("perfecto", 0.5) == 0.0
    await budget.hold_off("perfecto", 4)
    assert await budget.reserve("perfecto", 0.5) == 4.0
    clock.advance(20)
    assert await budget.reserve("devrev", 0.5) == 0.0
