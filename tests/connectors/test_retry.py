"""The retry policy, against a scripted upstream over loopback HTTP."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connectors.base import CallBudget
from connectors.breaker import BreakerState, CircuitBreaker
from connectors.errors import (
    BadCredentialsError,
    CircuitOpenError,
    NoCapacityError,
    QuotaExhaustedError,
    TransientUpstreamError,
)
from connectors.pacing import InProcessLimiter, LimiterUsage, Rate, Slot
from connectors.retry import RetryPolicy, call_with_retry
from emulators.server import LoopbackServer

QUICK = RetryPolicy(max_attempts=4, initial_wait=0.01, max_wait=0.05, jitter=0.01)


@dataclass
class Reply:
    status: int
    body: str = "{}"
    headers: dict[str, str] = field(default_factory=dict)


class ScriptedUpstream:
    """Answers requests with a script of replies; the last reply repeats."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.script: list[Reply] = [Reply(200)]
        self.requests = 0

    def play(self, *replies: Reply) -> None:
        with self._lock:
            self.script = list(replies)
            self.requests = 0

    def answer(self, request: Request) -> Response:
        with self._lock:
            reply = self.script[min(self.requests, len(self.script) - 1)]
            self.requests += 1
        return Response(reply.body, status_code=reply.status, headers=reply.headers)


@pytest.fixture(scope="module")
def scripted() -> Iterator[tuple[ScriptedUpstream, str]]:
    upstream = ScriptedUpstream()
    app = Starlette(routes=[Route("/score", upstream.answer)])
    with LoopbackServer(app) as server:
        yield upstream, server.url


@pytest.fixture
def upstream(scripted: tuple[ScriptedUpstream, str]) -> ScriptedUpstream:
    scripted[0].play(Reply(200))
    return scripted[0]


@pytest.fixture
def client(scripted: tuple[ScriptedUpstream, str]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=scripted[1], timeout=5.0) as http:
        yield http


def fetch(client: httpx.Client) -> str:
    """A small adapter: classify the scripted upstream's answer like a provider would."""
    response = client.get("/score")
    if response.status_code == 200:
        return response.text
    if response.status_code == 401:
        raise BadCredentialsError("key refused", upstream="klout")
    if response.status_code == 403 and "Over Rate" in response.text:
        reset = response.headers.get("x-reset")
        reset_at = datetime.fromisoformat(reset) if reset else None
        raise QuotaExhaustedError("over rate", upstream="klout", reset_at=reset_at)
    retry_after = response.headers.get("retry-after")
    raise TransientUpstreamError(
        f"status {response.status_code}",
        upstream="klout",
        retry_after=float(retry_after) if retry_after else None,
    )


class CountingLimiter:
    """A real in-process limiter that counts acquisitions."""

    def __init__(self, rate: str = "1000/second", quota: str | None = "1000/day") -> None:
        self.name = "klout"
        self.inner = InProcessLimiter(
            "klout", Rate.parse(rate), Rate.parse(quota) if quota else None
        )
        self.acquired = 0

    def acquire(self, budget: CallBudget) -> Slot:
        slot = self.inner.acquire(budget)
        self.acquired += 1
        return slot

    def exhaust_until(self, reset_at: datetime) -> None:
        self.inner.exhaust_until(reset_at)

    def usage(self) -> LimiterUsage:
        return self.inner.usage()


@pytest.fixture
def limiter() -> CountingLimiter:
    return CountingLimiter()


@pytest.fixture
def breaker() -> CircuitBreaker:
    return CircuitBreaker("klout", failure_threshold=5, reset_timeout=30.0)


class TestCallWithRetry:
    def test_transient_errors_are_retried_with_backoff_then_succeed(
        self,
        upstream: ScriptedUpstream,
        client: httpx.Client,
        limiter: CountingLimiter,
        breaker: CircuitBreaker,
    ) -> None:
        upstream.play(Reply(503), Reply(502), Reply(200, '{"score": 54}'))
        waits: list[float] = []
        result = call_with_retry(
            lambda: fetch(client),
            limiter=limiter,
            breaker=breaker,
            budget=CallBudget(),
            policy=QUICK,
            on_retry=lambda exc, wait: waits.append(wait),
        )
        assert result == '{"score": 54}'
        assert upstream.requests == 3
        assert len(waits) == 2
        assert 0.01 <= waits[0] <= 0.02
        assert 0.02 <= waits[1] <= 0.03
        assert breaker.snapshot().consecutive_failures == 0

    def test_limiter_is_acquired_before_every_attempt(
        self,
        upstream: ScriptedUpstream,
        client: httpx.Client,
        limiter: CountingLimiter,
        breaker: CircuitBreaker,
    ) -> None:
        upstream.play(Reply(503), Reply(503), Reply(200))
        waited: list[float] = []
        call_with_retry(
            lambda: fetch(client),
            limiter=limiter,
            breaker=breaker,
            budget=CallBudget(),
            policy=QUICK,
            on_wait=waited.append,
        )
        assert limiter.acquired == 3
        assert len(waited) == 3
        assert limiter.usage().used_in_quota_window == 3

    def test_retry_after_is_honoured(
        self,
        upstream: ScriptedUpstream,
        client: httpx.Client,
        limiter: CountingLimiter,
        breaker: CircuitBreaker,
    ) -> None:
        upstream.play(Reply(403, "<h1>Developer Over Qps</h1>", {"Retry-After": "0.3"}), Reply(200))
        waits: list[float] = []
        started = time.monotonic()
        call_with_retry(
            lambda: fetch(client),
            limiter=limiter,
            breaker=breaker,
            budget=CallBudget(),
            policy=QUICK,
            on_retry=lambda exc, wait: waits.append(wait),
        )
        assert waits == [0.3]
        assert time.monotonic() - started >= 0.3

    def test_retry_after_is_capped(
        self,
        upstream: ScriptedUpstream,
        client: httpx.Client,
        limiter: CountingLimiter,
        breaker: CircuitBreaker,
    ) -> None:
        upstream.play(Reply(429, headers={"Retry-After": "120"}), Reply(200))
        waits: list[float] = []
        policy = RetryPolicy(initial_wait=0.01, retry_after_cap=0.05)
        call_with_retry(
            lambda: fetch(client),
            limiter=limiter,
            breaker=breaker,
            budget=CallBudget(),
            policy=policy,
            on_retry=lambda exc, wait: waits.append(wait),
        )
        assert waits == [0.05]

    def test_permanent_error_is_not_retried(
        self,
        upstream: ScriptedUpstream,
        client: httpx.Client,
        limiter: CountingLimiter,
        breaker: CircuitBreaker,
    ) -> None:
        upstream.play(Reply(401, '{"error": "inactive key"}'))
        with pytest.raises(BadCredentialsError):
            call_with_retry(
                lambda: fetch(client),
                limiter=limiter,
                breaker=breaker,
                budget=CallBudget(),
                policy=QUICK,
            )
        assert upstream.requests == 1
        assert breaker.snapshot().consecutive_failures == 0

    def test_exhausted_retries_raise_the_last_transient_error(
        self,
        upstream: ScriptedUpstream,
        client: httpx.Client,
        limiter: CountingLimiter,
        breaker: CircuitBreaker,
    ) -> None:
        upstream.play(Reply(503), Reply(503), Reply(504))
        with pytest.raises(TransientUpstreamError, match="status 504"):
            call_with_retry(
                lambda: fetch(client),
                limiter=limiter,
                breaker=breaker,
                budget=CallBudget(),
                policy=RetryPolicy(max_attempts=3, initial_wait=0.01, jitter=0.0),
            )
        assert upstream.requests == 3
        assert breaker.snapshot().consecutive_failures == 3

    def test_wait_past_the_deadline_stops_retrying(
        self,
        upstream: ScriptedUpstream,
        client: httpx.Client,
        limiter: CountingLimiter,
        breaker: CircuitBreaker,
    ) -> None:
        upstream.play(Reply(503, headers={"Retry-After": "2"}))
        started = time.monotonic()
        with pytest.raises(TransientUpstreamError, match="status 503"):
            call_with_retry(
                lambda: fetch(client),
                limiter=limiter,
                breaker=breaker,
                budget=CallBudget(deadline=started + 0.5),
                policy=RetryPolicy(initial_wait=0.01, retry_after_cap=5.0),
            )
        assert upstream.requests == 1
        assert time.monotonic() - started < 1.5

    def test_quota_error_stops_the_limiter_until_reset(
        self,
        upstream: ScriptedUpstream,
        client: httpx.Client,
        limiter: CountingLimiter,
        breaker: CircuitBreaker,
    ) -> None:
        reset_at = datetime(2030, 1, 2, tzinfo=UTC)
        upstream.play(Reply(403, "<h1>Developer Over Rate</h1>", {"X-Reset": reset_at.isoformat()}))
        with pytest.raises(QuotaExhaustedError) as caught:
            call_with_retry(
                lambda: fetch(client),
                limiter=limiter,
                breaker=breaker,
                budget=CallBudget(),
                policy=QUICK,
            )
        assert caught.value.reset_at == reset_at
        assert upstream.requests == 1
        assert limiter.usage().blocked_until == reset_at
        with pytest.raises(QuotaExhaustedError):
            limiter.acquire(CallBudget())

    def test_quota_error_without_reset_uses_the_quota_window(
        self,
        upstream: ScriptedUpstream,
        client: httpx.Client,
        limiter: CountingLimiter,
        breaker: CircuitBreaker,
    ) -> None:
        upstream.play(Reply(403, "<h1>Developer Over Rate</h1>"))
        with pytest.raises(QuotaExhaustedError) as caught:
            call_with_retry(
                lambda: fetch(client),
                limiter=limiter,
                breaker=breaker,
                budget=CallBudget(),
                policy=QUICK,
            )
        midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        assert caught.value.reset_at == midnight + timedelta(days=1)
        assert limiter.usage().blocked_until == caught.value.reset_at

    def test_open_circuit_ends_the_call_without_retrying(
        self,
        upstream: ScriptedUpstream,
        client: httpx.Client,
        limiter: CountingLimiter,
    ) -> None:
        upstream.play(Reply(503))
        breaker = CircuitBreaker("klout", failure_threshold=2, reset_timeout=30.0)
        with pytest.raises(CircuitOpenError):
            call_with_retry(
                lambda: fetch(client),
                limiter=limiter,
                breaker=breaker,
                budget=CallBudget(),
                policy=QUICK,
            )
        assert upstream.requests == 2
        assert breaker.state is BreakerState.OPEN

    def test_no_capacity_ends_the_call_without_calling(
        self,
        upstream: ScriptedUpstream,
        client: httpx.Client,
        breaker: CircuitBreaker,
    ) -> None:
        limiter = CountingLimiter(rate="1/second", quota=None)
        limiter.acquire(CallBudget()).release()
        with pytest.raises(NoCapacityError):
            call_with_retry(
                lambda: fetch(client),
                limiter=limiter,
                breaker=breaker,
                budget=CallBudget(deadline=time.monotonic() + 0.1),
                policy=QUICK,
            )
        assert upstream.requests == 0
        assert breaker.snapshot().consecutive_failures == 0


class TestRetryPolicy:
    def test_defaults(self) -> None:
        policy = RetryPolicy()
        assert (policy.max_attempts, policy.initial_wait, policy.max_wait) == (4, 0.2, 5.0)
        assert policy.retry_after_cap == 10.0

    @pytest.mark.parametrize("settings", [{"max_attempts": 0}, {"max_wait": -1.0}])
    def test_rejects_nonsense(self, settings: dict[str, float]) -> None:
        with pytest.raises(ValueError, match="max_"):
            RetryPolicy(**settings)  # type: ignore[arg-type]
