"""Retry policy: exponential backoff with full jitter, honouring ``retry_after`` hints.

Only :class:`~archiver.errors.TransientError` is retried. A hint longer than
``max_retry_after`` is not slept through inside a pass: the error propagates, the session
is recorded as failed and a later pass tries again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, stop_after_attempt, wait_random_exponential

from archiver.errors import TransientError
from archiver.log import get_logger

log = get_logger(__name__)
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    attempts: int = 6
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    max_retry_after: float = 300.0
    # Told of each retry before its wait (an observer counting them).
    on_retry: Callable[[], None] | None = field(default=None, compare=False)


async def call_with_retries(policy: RetryPolicy, operation: Callable[[], Awaitable[_T]]) -> _T:
    """``await operation()``, tried again as ``policy`` says while it fails transiently.

    Almost every call succeeds at once, so the first attempt runs on its own; tenacity
    takes over only once it has failed with an error worth retrying, and counts that
    failure as its first attempt (same waits, same log lines, same number of attempts).
    """
    try:
        return await operation()
    except TransientError as error:
        if not _worth_retrying(error, policy):
            raise
        first_failure: TransientError | None = error
    async for attempt in _retrying(policy):
        with attempt:
            if first_failure is not None:
                failure, first_failure = first_failure, None
                raise failure
            return await operation()
    raise AssertionError("unreachable: tenacity re-raises the last error")


def _worth_retrying(error: BaseException | None, policy: RetryPolicy) -> bool:
    if not isinstance(error, TransientError):
        return False
    return error.retry_after is None or error.retry_after <= policy.max_retry_after


def _should_retry(policy: RetryPolicy) -> Callable[[RetryCallState], bool]:
    def should_retry(state: RetryCallState) -> bool:
        return _worth_retrying(state.outcome.exception() if state.outcome else None, policy)

    return should_retry


def _wait(policy: RetryPolicy) -> Callable[[RetryCallState], float]:
    jittered = wait_random_exponential(multiplier=policy.backoff_initial, max=policy.backoff_max)

    def wait(state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        hint = getattr(error, "retry_after", None) or 0.0
        return max(float(hint), jittered(state))

    return wait


def _before_retry(policy: RetryPolicy) -> Callable[[RetryCallState], None]:
    def before_retry(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning(
            "retrying",
            attempt=state.attempt_number,
            wait_seconds=round(state.upcoming_sleep, 2),
            error=str(error),
        )
        if policy.on_retry is not None:
            policy.on_retry()

    return before_retry


def _retrying(policy: RetryPolicy) -> AsyncRetrying:
    """``async for attempt in _retrying(policy): with attempt: ...``"""
    return AsyncRetrying(
        retry=_should_retry(policy),
        stop=stop_after_attempt(policy.attempts),
        wait=_wait(policy),
        before_sleep=_before_retry(policy),
        reraise=True,
    )
