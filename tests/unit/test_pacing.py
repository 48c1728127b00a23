"""Rate-limit pacing and error-body parsing (DevRev's retry_after and reference_id)."""

from __future__ import annotations

import time

from archiver.http import parse_error_body
from archiver.pacing import RateLimitPacer


async def test_spent_budget_waits_for_the_reset() -> None:
    pacer = RateLimitPacer()
    pacer.observe({"X-Ratelimit-Remaining": "0", "X-Ratelimit-Reset": "0.2"})
    started = time.monotonic()
    await pacer.wait_turn()
    assert time.monotonic() - started >= 0.15


async def test_ample_budget_does_not_wait() -> None:
    pacer = RateLimitPacer()
    pacer.observe({"X-Ratelimit-Remaining": "500", "X-Ratelimit-Reset": "60"})
    pacer.observe({"Content-Type": "application/json"})
    started = time.monotonic()
    await pacer.wait_turn()
    assert time.monotonic() - started < 0.05


async def test_epoch_reset_is_understood() -> None:
    pacer = RateLimitPacer()
    pacer.observe({"X-Ratelimit-Remaining": "0", "X-Ratelimit-Reset": str(time.time() + 0.2)})
    started = time.monotonic()
    await pacer.wait_turn()
    assert 0.1 <= time.monotonic() - started < 2


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
    html = parse_error_body(b"<html><body>Bad   gateway</body></html>")
    assert html.detail == "<html><body>Bad gateway</body></html>"
