"""The one retry policy for upstream calls: pace, then call, inside the retry.

Each attempt runs ``breaker.before_call()``, then ``limiter.acquire(budget)`` (capacity is acquired
again for every attempt, with the caller's one deadline, and the slot is held around the attempt),
then the call; its outcome is reported to the breaker. Outcomes:

- success: returned.
- ``TransientUpstreamError`` raised by the call: a breaker failure; retried with exponential
  backoff and jitter, or after the upstream's ``retry_after`` (capped at ``retry_after_cap``),
  while attempts remain and the wait ends before the deadline. When retrying stops, the last
  transient error is raised: the gateway answers ``unavailable``, never a number.
- ``CircuitOpenError`` / ``NoCapacityError`` from the breaker or the limiter: no call was made and
  waiting longer would break the caller's deadline, so they are raised at once.
- ``QuotaExhaustedError``: the limiter is told (``exhaust_until``) so every caller stops until the
  reset, then it is raised.
- ``PermanentUpstreamError``: raised at once, never retried (a breaker success: the upstream
  answered). Any other exception (a bug) is raised at once and reported to the breaker as a call
  not made.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exception,
    wait_exponential_jitter,
)
from tenacity.stop import stop_base

from connectors.base import CallBudget
from connectors.breaker import CircuitBreaker
from connectors.errors import (
    CircuitOpenError,
    NoCapacityError,
    PermanentUpstreamError,
    QuotaExhaustedError,
    TransientUpstreamError,
    UpstreamError,
)
from connectors.pacing import Limiter

__all__ = ["RetryPolicy", "call_with_retry", "is_retryable"]

T = TypeVar("T")

#: How long calls stop after an over-quota answer when neither the answer nor the limiter's own
#: quota window says when it resets.
_DEFAULT_QUOTA_PAUSE: Final = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently to retry a transient failure.

    The n-th retry waits ``min(initial_wait * 2**(n-1) + uniform(0, jitter), max_wait)`` seconds,
    unless the error carries ``retry_after``, which is waited instead, capped at
    ``retry_after_cap`` (an upstream asking for minutes must not hold a caller that long).
    """

    max_attempts: int = 4
    initial_wait: float = 0.2
    max_wait: float = 5.0
    jitter: float = 0.2
    retry_after_cap: float = 10.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        for field_name in ("initial_wait", "max_wait", "jitter", "retry_after_cap"):
            if getattr(self, field_name) < 0:
                raise ValueError(f"{field_name} must not be negative")


def is_retryable(exc: BaseException) -> bool:
    """A transient failure of a call that was made (not a refusal by the breaker or limiter)."""
    return isinstance(exc, TransientUpstreamError) and not isinstance(
        exc, CircuitOpenError | NoCapacityError
    )


class _WaitHintOrBackoff:
    """Tenacity wait: the error's capped ``retry_after`` if it has one, else the backoff."""

    def __init__(self, policy: RetryPolicy) -> None:
        self._cap = policy.retry_after_cap
        self._hinted = wait_exception(self._hint)
        self._backoff = wait_exponential_jitter(
            multiplier=policy.initial_wait, max=policy.max_wait, jitter=policy.jitter
        )

    def _hint(self, exc: BaseException) -> float:
        retry_after = exc.retry_after if isinstance(exc, TransientUpstreamError) else None
        return min(max(retry_after or 0.0, 0.0), self._cap)

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        if isinstance(exc, TransientUpstreamError) and exc.retry_after is not None:
            return self._hinted(retry_state)
        return self._backoff(retry_state)


class _StopAtDeadline(stop_base):
    """Tenacity stop: give up when the coming wait would end at or after the caller's deadline."""

    def __init__(self, deadline: float | None) -> None:
        self._deadline = deadline

    def __call__(self, retry_state: RetryCallState) -> bool:
        if self._deadline is None:
            return False
        return time.monotonic() + retry_state.upcoming_sleep >= self._deadline


def call_with_retry(
    attempt: Callable[[], T],
    *,
    limiter: Limiter,
    breaker: CircuitBreaker,
    budget: CallBudget,
    policy: RetryPolicy,
    on_retry: Callable[[BaseException, float], None] | None = None,
    on_wait: Callable[[float], None] | None = None,
) -> T:
    """Run ``attempt`` under ``policy`` (see the module docstring for every outcome).

    ``on_retry(error, wait_seconds)`` is called before each backoff wait, e.g. to count retries;
    ``on_wait(seconds)`` after each granted limiter slot with the time spent acquiring it.
    """

    def paced_attempt() -> T:
        breaker.before_call()
        try:
            slot = limiter.acquire(budget)
        except BaseException:
            breaker.record_skipped()
            raise
        with slot:
            if on_wait is not None:
                on_wait(slot.waited)
            try:
                result = attempt()
            except TransientUpstreamError:
                breaker.record_failure()
                raise
            except QuotaExhaustedError as exc:
                breaker.record_success()
                _stop_until_reset(limiter, exc)
                raise
            except PermanentUpstreamError:
                breaker.record_success()
                raise
            except BaseException:
                breaker.record_skipped()
                raise
        breaker.record_success()
        return result

    def before_sleep(retry_state: RetryCallState) -> None:
        if on_retry is None or retry_state.outcome is None:
            return
        exc = retry_state.outcome.exception()
        if exc is not None:
            on_retry(exc, retry_state.upcoming_sleep)

    retrying = Retrying(
        retry=retry_if_exception(is_retryable),
        stop=stop_after_attempt(policy.max_attempts) | _StopAtDeadline(budget.deadline),
        wait=_WaitHintOrBackoff(policy),
        before_sleep=before_sleep,
        reraise=True,
    )
    return retrying(paced_attempt)


def _stop_until_reset(limiter: Limiter, exc: QuotaExhaustedError) -> None:
    """Block the limiter until the quota resets; fill in ``exc.reset_at`` when the upstream did not
    say (from the limiter's own quota window, else a default pause)."""
    if exc.reset_at is None:
        try:
            window_end = limiter.usage().quota_resets_at
        except UpstreamError:
            window_end = None
        exc.reset_at = window_end or datetime.now(UTC) + _DEFAULT_QUOTA_PAUSE
    limiter.exhaust_until(exc.reset_at)
