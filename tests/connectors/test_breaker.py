"""Circuit breaker transitions, driven by an injected clock."""

from __future__ import annotations

import threading

import pytest

from connectors.breaker import BreakerState, CircuitBreaker
from connectors.errors import CircuitOpenError


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def breaker(clock: FakeClock) -> CircuitBreaker:
    return CircuitBreaker("klout", failure_threshold=3, reset_timeout=30.0, clock=clock)


def fail(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        breaker.before_call()
        breaker.record_failure()


class TestBeforeCall:
    def test_closed_lets_calls_through(self, breaker: CircuitBreaker) -> None:
        breaker.before_call()
        assert breaker.state is BreakerState.CLOSED

    def test_open_refuses_at_once_with_time_left(
        self, breaker: CircuitBreaker, clock: FakeClock
    ) -> None:
        fail(breaker, 3)
        clock.now += 10
        with pytest.raises(CircuitOpenError) as caught:
            breaker.before_call()
        assert caught.value.retry_after == pytest.approx(20.0)
        assert caught.value.upstream == "klout"

    def test_half_open_lets_exactly_one_probe_through(
        self, breaker: CircuitBreaker, clock: FakeClock
    ) -> None:
        fail(breaker, 3)
        clock.now += 30
        breaker.before_call()
        assert breaker.state is BreakerState.HALF_OPEN
        with pytest.raises(CircuitOpenError):
            breaker.before_call()

    def test_one_probe_among_concurrent_callers(
        self, breaker: CircuitBreaker, clock: FakeClock
    ) -> None:
        fail(breaker, 3)
        clock.now += 31
        allowed: list[bool] = []
        lock = threading.Lock()

        def call() -> None:
            try:
                breaker.before_call()
            except CircuitOpenError:
                outcome = False
            else:
                outcome = True
            with lock:
                allowed.append(outcome)

        threads = [threading.Thread(target=call) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert allowed.count(True) == 1

    def test_lost_probe_is_replaced_after_reset_timeout(
        self, breaker: CircuitBreaker, clock: FakeClock
    ) -> None:
        fail(breaker, 3)
        clock.now += 30
        breaker.before_call()
        clock.now += 30
        breaker.before_call()
        assert breaker.snapshot().probe_in_flight


class TestRecordFailure:
    def test_opens_after_threshold_consecutive_failures(self, breaker: CircuitBreaker) -> None:
        fail(breaker, 2)
        assert breaker.snapshot().state is BreakerState.CLOSED
        fail(breaker, 1)
        assert breaker.state is BreakerState.OPEN

    def test_failed_probe_reopens_for_a_full_timeout(
        self, breaker: CircuitBreaker, clock: FakeClock
    ) -> None:
        fail(breaker, 3)
        clock.now += 30
        breaker.before_call()
        breaker.record_failure()
        assert breaker.state is BreakerState.OPEN
        assert breaker.snapshot().retry_after == pytest.approx(30.0)


class TestRecordSuccess:
    def test_resets_the_failure_count(self, breaker: CircuitBreaker) -> None:
        fail(breaker, 2)
        breaker.record_success()
        fail(breaker, 2)
        assert breaker.state is BreakerState.CLOSED
        assert breaker.snapshot().consecutive_failures == 2

    def test_probe_success_closes(self, breaker: CircuitBreaker, clock: FakeClock) -> None:
        fail(breaker, 3)
        clock.now += 30
        breaker.before_call()
        breaker.record_success()
        assert breaker.state is BreakerState.CLOSED
        breaker.before_call()
        breaker.before_call()


class TestRecordSkipped:
    def test_frees_the_probe_without_verdict(
        self, breaker: CircuitBreaker, clock: FakeClock
    ) -> None:
        fail(breaker, 3)
        clock.now += 30
        breaker.before_call()
        breaker.record_skipped()
        assert breaker.state is BreakerState.HALF_OPEN
        breaker.before_call()
        assert breaker.snapshot().probe_in_flight


class TestSnapshot:
    def test_describes_an_open_breaker(self, breaker: CircuitBreaker, clock: FakeClock) -> None:
        fail(breaker, 3)
        clock.now += 5
        snapshot = breaker.snapshot()
        assert snapshot.name == "klout"
        assert snapshot.state == "open"
        assert snapshot.consecutive_failures == 3
        assert snapshot.failure_threshold == 3
        assert snapshot.retry_after == pytest.approx(25.0)
        assert not snapshot.probe_in_flight


class TestConstruction:
    @pytest.mark.parametrize(("threshold", "timeout"), [(0, 30.0), (3, 0.0)])
    def test_rejects_non_positive_settings(self, threshold: int, timeout: float) -> None:
        with pytest.raises(ValueError, match="must be positive"):
            CircuitBreaker("klout", failure_threshold=threshold, reset_timeout=timeout)
