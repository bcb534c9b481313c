"""A circuit breaker per provider: stop calling an upstream that keeps failing, then probe it.

States::

    closed --(failure_threshold consecutive failures)--> open
    open --(reset_timeout elapsed, next before_call)--> half_open (exactly one probe let through)
    half_open --(probe succeeds)--> closed
    half_open --(probe fails)--> open (the timeout starts again)

Only transient upstream failures (timeouts, 5xx, "too busy") are failures. An answer that proves
the upstream is reachable counts as a success, even when it is a refusal: "no such user", a bad
key (``PermanentUpstreamError``: an operator must act, but more calls do not hurt the upstream) or
an over-quota answer. A call that was allowed but never made (the limiter refused) is reported
with :meth:`CircuitBreaker.record_skipped`, which frees the half-open probe without a verdict.

State is per process: each replica learns on its own that an upstream is down, which costs at most
``failure_threshold`` failed calls per replica.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from connectors.errors import CircuitOpenError

__all__ = ["BreakerSnapshot", "BreakerState", "CircuitBreaker"]

#: ``retry_after`` hint while a half-open probe is in flight: its outcome decides, usually soon.
_PROBE_RETRY_HINT: Final = 1.0


class BreakerState(StrEnum):
    """Where the breaker stands."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerSnapshot:
    """The breaker's state for ``/v1/providers`` and metrics.

    ``retry_after``: seconds until an open breaker lets a probe through (``None`` unless open).
    """

    name: str
    state: BreakerState
    consecutive_failures: int
    failure_threshold: int
    reset_timeout: float
    retry_after: float | None
    probe_in_flight: bool


class CircuitBreaker:
    """Thread-safe circuit breaker. ``clock`` is a monotonic clock in seconds (injectable)."""

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        reset_timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold <= 0:
            raise ValueError(f"failure_threshold must be positive, got {failure_threshold}")
        if reset_timeout <= 0:
            raise ValueError(f"reset_timeout must be positive, got {reset_timeout}")
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe_started: float | None = None

    @property
    def state(self) -> BreakerState:
        """The stored state (an open breaker becomes half-open at the next ``before_call``)."""
        with self._lock:
            return self._state

    def before_call(self) -> None:
        """Allow a call or raise ``CircuitOpenError`` at once.

        In ``half_open`` exactly one caller (the probe) is allowed; a probe that reported nothing
        for ``reset_timeout`` is presumed lost and another caller becomes the probe.
        """
        with self._lock:
            now = self._clock()
            if self._state is BreakerState.CLOSED:
                return
            if self._state is BreakerState.OPEN:
                opens_in = self._opened_at + self.reset_timeout - now
                if opens_in > 0:
                    raise self._open_error(opens_in)
                self._state = BreakerState.HALF_OPEN
                self._probe_started = now
                return
            if self._probe_started is not None and now - self._probe_started < self.reset_timeout:
                raise self._open_error(min(_PROBE_RETRY_HINT, self.reset_timeout))
            self._probe_started = now

    def record_success(self) -> None:
        """The upstream answered: reset the failure count; a half-open probe closes the breaker."""
        with self._lock:
            if self._state is BreakerState.OPEN:
                return
            self._state = BreakerState.CLOSED
            self._failures = 0
            self._probe_started = None

    def record_failure(self) -> None:
        """A transient failure: count it; the threshold or a failed probe opens the breaker."""
        with self._lock:
            if self._state is BreakerState.OPEN:
                return
            self._failures += 1
            if self._state is BreakerState.HALF_OPEN or self._failures >= self.failure_threshold:
                self._state = BreakerState.OPEN
                self._opened_at = self._clock()
                self._probe_started = None

    def record_skipped(self) -> None:
        """An allowed call was not made: free the half-open probe, judge nothing."""
        with self._lock:
            if self._state is BreakerState.HALF_OPEN:
                self._probe_started = None

    def snapshot(self) -> BreakerSnapshot:
        """A consistent copy of the breaker's state."""
        with self._lock:
            retry_after = None
            if self._state is BreakerState.OPEN:
                retry_after = max(0.0, self._opened_at + self.reset_timeout - self._clock())
            return BreakerSnapshot(
                name=self.name,
                state=self._state,
                consecutive_failures=self._failures,
                failure_threshold=self.failure_threshold,
                reset_timeout=self.reset_timeout,
                retry_after=retry_after,
                probe_in_flight=self._probe_started is not None,
            )

    def _open_error(self, retry_after: float) -> CircuitOpenError:
        return CircuitOpenError(
            f"circuit open for {self.name}", upstream=self.name, retry_after=retry_after
        )
