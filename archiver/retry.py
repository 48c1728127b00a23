"""Retry policy: exponential backoff with full jitter, honouring ``retry_after`` hints.

Only :class:`~archiver.errors.TransientError` is retried. A hint longer than
``max_retry_after`` is not slept through inside a pass: the error propagates, the session
is recorded as failed and a later pass tries again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tenacity import AsyncRetrying, RetryCallState, stop_after_attempt, wait_random_exponential

from archiver.errors import TransientError
from archiver.log import get_logger

log = get_logger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    attempts: int = 6
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    max_retry_after: float = 300.0


def _should_retry(policy: RetryPolicy) -> Callable[[RetryCallState], bool]:
    def should_retry(state: RetryCallState) -> bool:
        error = state.outcome.exception() if state.outcome else None
        if not isinstance(error, TransientError):
            return False
        return error.retry_after is None or error.retry_after <= policy.max_retry_after

    return should_retry


def _wait(policy: RetryPolicy) -> Callable[[RetryCallState], float]:
    jittered = wait_random_exponential(multiplier=policy.backoff_initial, max=policy.backoff_max)

    def wait(state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        hint = getattr(error, "retry_after", None) or 0.0
        return max(float(hint), jittered(state))

    return wait


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    log.warning(
        "retrying",
        attempt=state.attempt_number,
        wait_seconds=round(state.upcoming_sleep, 2),
        error=str(error),
    )


def retrying(policy: RetryPolicy) -> AsyncRetrying:
    """``async for attempt in retrying(policy): with attempt: ...``"""
    return AsyncRetrying(
        retry=_should_retry(policy),
        stop=stop_after_attempt(policy.attempts),
        wait=_wait(policy),
        before_sleep=_log_retry,
        reraise=True,
    )
