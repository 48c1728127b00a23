"""The retry policy: which failures are tried again, how often, and what is logged."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from structlog.testing import capture_logs

from archiver.errors import TransientError, VendorError
from archiver.retry import RetryPolicy, call_with_retries

FAST = RetryPolicy(attempts=4, backoff_initial=0.001, backoff_max=0.002, max_retry_after=1.0)


class Flaky:
    """Fails with the given errors, one per call, then answers ``"done"``."""

    def __init__(self, *errors: Exception) -> None:
        self.errors: Iterator[Exception] = iter(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        error = next(self.errors, None)
        if error is not None:
            raise error
        return "done"


async def test_a_call_that_succeeds_at_once_is_made_once_and_logs_nothing() -> None:
    operation = Flaky()
    with capture_logs() as logs:
        assert await call_with_retries(FAST, operation) == "done"
    assert operation.calls == 1
    assert logs == []


async def test_transient_failures_are_tried_again_and_each_retry_is_logged() -> None:
    operation = Flaky(TransientError("first"), TransientError("second"))
    with capture_logs() as logs:
        assert await call_with_retries(FAST, operation) == "done"
    assert operation.calls == 3
    retries = [entry for entry in logs if entry["event"] == "retrying"]
    assert [(entry["attempt"], entry["error"]) for entry in retries] == [
        (1, "first"),
        (2, "second"),
    ]


async def test_after_the_last_attempt_the_last_error_is_raised() -> None:
    errors = [TransientError(f"failure {number}") for number in range(1, 10)]
    operation = Flaky(*errors)
    with pytest.raises(TransientError, match="failure 4"):
        await call_with_retries(FAST, operation)
    assert operation.calls == FAST.attempts


async def test_a_single_attempt_policy_never_retries() -> None:
    operation = Flaky(TransientError("once"))
    with pytest.raises(TransientError, match="once"):
        await call_with_retries(RetryPolicy(attempts=1), operation)
    assert operation.calls == 1


async def test_errors_retrying_cannot_fix_are_raised_at_once() -> None:
    refused = Flaky(VendorError("HTTP 403", vendor="perfecto", status=403))
    with pytest.raises(VendorError):
        await call_with_retries(FAST, refused)
    assert refused.calls == 1
    later = Flaky(TransientError("busy", retry_after=FAST.max_retry_after + 1))
    with pytest.raises(TransientError, match="busy"):
        await call_with_retries(FAST, later)
    assert later.calls == 1


async def test_a_later_error_retrying_cannot_fix_ends_the_retries() -> None:
    gone = VendorError("HTTP 404", vendor="perfecto", status=404)
    operation = Flaky(TransientError("busy"), gone)
    with pytest.raises(VendorError):
        await call_with_retries(FAST, operation)
    assert operation.calls == 2
