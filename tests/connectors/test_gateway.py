"""The gateway against the Klout emulator over loopback: cache, coalescing, breaker, pacing.

Also home of the small kit the adapter tests share: :class:`Upstreams` builds callers on the
in-process limiter, or on Redis when ``SCOREGATE_TEST_REDIS_URL`` is set (under a key prefix of
its own, removed afterwards); :class:`ScriptedUpstream` answers with replies a test chooses, for
answers no emulator gives; :class:`MemoryStore` is an :class:`~connectors.cache.AnswerStore` in a
dict.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from redis import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connectors.base import AnswerKind, CallBudget
from connectors.breaker import BreakerState
from connectors.cache import StoredAnswer
from connectors.errors import (
    CircuitOpenError,
    NoCapacityError,
    QuotaExhaustedError,
    TransientUpstreamError,
)
from connectors.gateway import GatewaySettings, ProviderGateway, UpstreamCaller
from connectors.http_json import AnswerRule, HttpJsonConfig, HttpJsonProvider, Step
from connectors.klout import KloutConfig, KloutProvider
from connectors.pacing import InProcessLimiter, Limiter, Rate, RedisLimiter
from emulators.klout import KloutFaults, KloutSettings
from emulators.sandbox import Sandbox
from emulators.server import LoopbackServer
from tests.conftest import REDIS_URL

#: retry settings that keep tests quick: short backoff, few attempts
QUICK: dict[str, Any] = {
    "rate": "1000/second",
    "quota": None,
    "max_attempts": 3,
    "retry_initial_wait": timedelta(milliseconds=10),
    "retry_max_wait": timedelta(milliseconds=50),
    "retry_after_cap": timedelta(seconds=2),
    "breaker_threshold": 100,
}
NO_DEADLINE = CallBudget()


class Upstreams:
    """Builds :class:`UpstreamCaller` objects the way the service does, and cleans up after them."""

    def __init__(self) -> None:
        self.prefix = f"sgtest:{uuid.uuid4().hex}:"
        self.redis = Redis.from_url(REDIS_URL) if REDIS_URL else None
        self._clients: list[httpx.Client] = []

    def limiter(self, name: str, settings: GatewaySettings) -> Limiter:
        rate = Rate.parse(settings.rate)
        quota = Rate.parse(settings.quota) if settings.quota else None
        if self.redis is not None:
            return RedisLimiter(
                name,
                rate,
                quota,
                redis=self.redis,
                key_prefix=self.prefix,
                concurrency=settings.concurrency,
            )
        return InProcessLimiter(name, rate, quota, concurrency=settings.concurrency)

    def caller(self, name: str, settings: GatewaySettings) -> UpstreamCaller:
        timeout = settings.timeout.total_seconds()
        client = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 3.0)),
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
        )
        self._clients.append(client)
        return UpstreamCaller(
            name,
            client=client,
            limiter=self.limiter(name, settings),
            breaker=settings.breaker(name),
            retry=settings.retry_policy(),
        )

    def __enter__(self) -> Upstreams:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        for client in self._clients:
            client.close()
        if self.redis is not None:
            keys = list(self.redis.scan_iter(match=f"{self.prefix}*"))
            if keys:
                self.redis.delete(*keys)
            self.redis.close()


@dataclass
class Reply:
    """One scripted HTTP answer."""

    status: int = 200
    body: str = "{}"
    headers: dict[str, str] = field(default_factory=dict)
    media_type: str = "application/json"


class ScriptedUpstream:
    """Answers every GET with the scripted replies in turn (the last one repeats); counts them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._script: list[Reply] = [Reply()]
        self.requests: list[str] = []
        self.app = Starlette(routes=[Route("/{path:path}", self._answer)])

    def play(self, *replies: Reply) -> None:
        with self._lock:
            self._script = list(replies)
            self.requests = []

    def _answer(self, request: Request) -> Response:
        with self._lock:
            reply = self._script[min(len(self.requests), len(self._script) - 1)]
            self.requests.append(request.url.path)
        return Response(
            reply.body, status_code=reply.status, headers=reply.headers, media_type=reply.media_type
        )


class MemoryStore:
    """An answer store in a dict, so gateway tests need no database."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.answers: dict[tuple[str, str], StoredAnswer] = {}
        self.puts = 0

    def get_many(self, namespace: str, keys: Any, now: datetime) -> dict[str, StoredAnswer]:
        with self._lock:
            found = {key: self.answers.get((namespace, key)) for key in keys}
        return {key: answer for key, answer in found.items() if answer and answer.expires_at > now}

    def put(self, namespace: str, key: str, answer: StoredAnswer) -> bool:
        with self._lock:
            self.answers[(namespace, key)] = answer
            self.puts += 1
        return True


@pytest.fixture
def upstreams() -> Iterator[Upstreams]:
    with Upstreams() as kit:
        yield kit


@pytest.fixture(scope="module")
def scripted() -> Iterator[tuple[ScriptedUpstream, str]]:
    upstream = ScriptedUpstream()
    with LoopbackServer(upstream.app) as server:
        yield upstream, server.url


def klout_config(emulators: Sandbox, **overrides: Any) -> KloutConfig:
    values: dict[str, Any] = {
        "kind": "klout",
        "base_url": emulators.klout_url,
        "api_key": SecretStr(emulators.klout_api_key),
        **QUICK,
        **overrides,
    }
    return KloutConfig(**values)


def klout_gateway(
    upstreams: Upstreams,
    emulators: Sandbox,
    store: MemoryStore,
    *,
    ttl: timedelta = timedelta(days=7),
    negative_ttl: timedelta = timedelta(days=1),
    **overrides: Any,
) -> ProviderGateway:
    config = klout_config(emulators, **overrides)
    caller = upstreams.caller("klout", config)
    return ProviderGateway(
        KloutProvider("klout", config, caller),
        caller=caller,
        store=store,
        ttl=ttl,
        negative_ttl=negative_ttl,
    )


def calls(emulators: Sandbox) -> int:
    return int(emulators.klout_state.stats()["calls_total"])


class TestCache:
    def test_miss_then_hit(self, upstreams, emulators):
        gateway = klout_gateway(upstreams, emulators, MemoryStore())
        assert gateway.cached(["k-ann"]) == {}
        answer = gateway.fetch("k-ann", "twitter", "ann_marketing", NO_DEADLINE)
        assert answer.score == pytest.approx(54.0)
        hit = gateway.cached(["k-ann", "k-other"])
        assert list(hit) == ["k-ann"]
        assert hit["k-ann"].score == pytest.approx(54.0)
        assert gateway.caller.health.cache_hits == 1
        assert gateway.caller.health.cache_misses == 2
        assert gateway.caller.health.cache_hit_rate == pytest.approx(1 / 3)

    def test_fetch_of_a_cached_identity_makes_no_call(self, upstreams, emulators):
        gateway = klout_gateway(upstreams, emulators, MemoryStore())
        gateway.fetch("k-bob", "twitter", "bob_support", NO_DEADLINE)
        before = calls(emulators)
        again = gateway.fetch("k-bob", "twitter", "bob_support", NO_DEADLINE)
        assert again.score == pytest.approx(41.5)
        assert calls(emulators) == before == 2

    def test_scores_and_negative_answers_get_their_own_ttl(self, upstreams, emulators):
        ttl, negative = timedelta(hours=5), timedelta(minutes=3)
        gateway = klout_gateway(upstreams, emulators, MemoryStore(), ttl=ttl, negative_ttl=negative)
        scored = gateway.fetch("k-carla", "twitter", "carla_dev", NO_DEADLINE)
        unknown = gateway.fetch("k-quinn", "twitter", "quiet_quinn", NO_DEADLINE)
        assert scored.kind == AnswerKind.SCORE
        assert scored.expires_at - scored.fetched_at == ttl
        assert unknown.kind == AnswerKind.NO_SUCH_USER
        assert unknown.expires_at - unknown.fetched_at == negative

    def test_expired_answer_is_fetched_again(self, upstreams, emulators):
        short = timedelta(milliseconds=200)
        gateway = klout_gateway(upstreams, emulators, MemoryStore(), ttl=short, negative_ttl=short)
        gateway.fetch("k-gus", "klout", "903718245561022817", NO_DEADLINE)
        gateway.fetch("k-none", "klout", "1", NO_DEADLINE)
        assert set(gateway.cached(["k-gus", "k-none"])) == {"k-gus", "k-none"}
        time.sleep(0.25)
        assert gateway.cached(["k-gus", "k-none"]) == {}
        again = gateway.fetch("k-gus", "klout", "903718245561022817", NO_DEADLINE)
        assert again.score == pytest.approx(33.3)
        assert calls(emulators) == 3

    def test_unavailable_is_never_cached(self, upstreams, emulators):
        store = MemoryStore()
        gateway = klout_gateway(upstreams, emulators, store)
        emulators.klout_state.set_faults(KloutFaults(service_busy_share=1.0))
        with pytest.raises(TransientUpstreamError):
            gateway.fetch("k-jt", "twitter", "jtimberlake", NO_DEADLINE)
        assert store.answers == {}
        assert gateway.cached(["k-jt"]) == {}

    def test_opted_out_answer_is_returned_but_not_cached(self, upstreams, scripted):
        upstream, url = scripted
        upstream.play(Reply(body='{"error": "this person opted out"}'))
        config = HttpJsonConfig(
            kind="http_json",
            identity_kinds=["twitter"],
            steps=[Step(url=f"{url}/score/{{value}}", extract="score")],
            opted_out=[AnswerRule(body_contains="opted out")],
            **QUICK,
        )
        caller = upstreams.caller("optouts", config)
        store = MemoryStore()
        gateway = ProviderGateway(
            HttpJsonProvider("optouts", config, caller),
            caller=caller,
            store=store,
            ttl=timedelta(days=1),
            negative_ttl=timedelta(days=1),
        )
        answer = gateway.fetch("k-pat", "twitter", "pat", NO_DEADLINE)
        assert answer.kind == AnswerKind.OPTED_OUT
        assert answer.score is None
        assert store.puts == 0


class TestCoalescing:
    def test_concurrent_fetches_of_one_identity_make_one_lookup(self, upstreams, emulators):
        gateway = klout_gateway(upstreams, emulators, MemoryStore())
        # a slow upstream keeps the first lookup in flight while the others arrive
        emulators.klout_state.set_faults(KloutFaults(slow_share=1.0, slow_seconds=0.3))
        start = threading.Barrier(200)

        def fetch(_: int) -> StoredAnswer:
            start.wait()
            return gateway.fetch("k-jt", "twitter", "jtimberlake", NO_DEADLINE)

        with ThreadPoolExecutor(max_workers=200) as pool:
            answers = list(pool.map(fetch, range(200)))
        assert [answer.score for answer in answers] == [92.8] * 200
        by_path = emulators.klout_state.stats()["by_path"]
        assert by_path["identity.twitter"] == 1
        assert by_path["user.score"] == 1
        assert gateway.inflight() == 0

    def test_a_failure_reaches_every_waiting_caller(self, upstreams, emulators):
        gateway = klout_gateway(upstreams, emulators, MemoryStore(), max_attempts=1)
        emulators.klout_state.set_faults(
            KloutFaults(unavailable_screen_names=frozenset({"busy_bea"}))
        )
        start = threading.Barrier(20)

        def fetch(_: int) -> str:
            start.wait()
            try:
                gateway.fetch("k-bea", "twitter", "busy_bea", NO_DEADLINE)
            except TransientUpstreamError as exc:
                return type(exc).__name__
            return "answered"

        with ThreadPoolExecutor(max_workers=20) as pool:
            outcomes = set(pool.map(fetch, range(20)))
        assert outcomes == {"TransientUpstreamError"}
        assert calls(emulators) <= 20


class TestBreaker:
    def _failing(self, upstreams, emulators):
        gateway = klout_gateway(
            upstreams,
            emulators,
            MemoryStore(),
            max_attempts=1,
            breaker_threshold=3,
            breaker_reset=timedelta(milliseconds=300),
        )
        emulators.klout_state.set_faults(KloutFaults(service_busy_share=1.0))
        for n in range(3):
            with pytest.raises(TransientUpstreamError):
                gateway.fetch(f"k-{n}", "klout", "635263", NO_DEADLINE)
        return gateway

    def test_opens_after_repeated_failures_and_answers_at_once(self, upstreams, emulators):
        gateway = self._failing(upstreams, emulators)
        assert gateway.caller.breaker.state is BreakerState.OPEN
        with pytest.raises(CircuitOpenError) as raised:
            gateway.fetch("k-new", "klout", "391122", NO_DEADLINE)
        assert raised.value.retry_after is not None
        assert 0 < raised.value.retry_after <= 0.3
        assert calls(emulators) == 3

    def test_half_opens_and_closes_after_a_good_probe(self, upstreams, emulators):
        gateway = self._failing(upstreams, emulators)
        emulators.klout_state.set_faults(KloutFaults())
        time.sleep(0.35)
        answer = gateway.fetch("k-probe", "klout", "391122", NO_DEADLINE)
        assert answer.score == pytest.approx(73.2)
        assert gateway.caller.breaker.state is BreakerState.CLOSED
        assert gateway.fetch("k-next", "klout", "635263", NO_DEADLINE).score == pytest.approx(92.8)

    def test_a_failed_probe_opens_it_again(self, upstreams, emulators):
        gateway = self._failing(upstreams, emulators)
        time.sleep(0.35)
        with pytest.raises(TransientUpstreamError) as raised:
            gateway.fetch("k-probe", "klout", "391122", NO_DEADLINE)
        assert not isinstance(raised.value, CircuitOpenError)  # the probe was let through
        assert gateway.caller.breaker.state is BreakerState.OPEN
        with pytest.raises(CircuitOpenError):
            gateway.fetch("k-after", "klout", "391122", NO_DEADLINE)
        assert calls(emulators) == 4


class TestPacing:
    def test_every_retry_takes_a_quota_slot(self, upstreams, emulators):
        gateway = klout_gateway(upstreams, emulators, MemoryStore(), quota="2/day")
        emulators.klout_state.set_faults(KloutFaults(service_busy_share=1.0))
        with pytest.raises(QuotaExhaustedError):
            gateway.fetch("k-jt", "klout", "635263", NO_DEADLINE)
        assert emulators.klout_state.stats()["faults"]["service_busy"] == 2
        assert calls(emulators) == 2
        usage = gateway.caller.limiter.usage()
        assert usage.used_in_quota_window == 2
        assert usage.quota_left == 0

    def test_every_retry_waits_for_its_rate_slot(self, upstreams, emulators):
        gateway = klout_gateway(
            upstreams, emulators, MemoryStore(), rate="4/second", retry_initial_wait=timedelta(0)
        )
        emulators.klout_state.set_faults(KloutFaults(service_busy_share=1.0))
        started = time.monotonic()
        with pytest.raises(TransientUpstreamError):
            gateway.fetch("k-jt", "klout", "635263", NO_DEADLINE)
        # three attempts at 4/second are at least two spacing intervals (250 ms each) apart
        assert time.monotonic() - started >= 0.45
        assert calls(emulators) == 3

    def test_no_slot_before_the_deadline_makes_no_call(self, upstreams, emulators):
        gateway = klout_gateway(upstreams, emulators, MemoryStore(), rate="1/minute")
        gateway.fetch("k-first", "klout", "635263", NO_DEADLINE)
        budget = CallBudget(deadline=time.monotonic() + 0.1)
        with pytest.raises(NoCapacityError) as raised:
            gateway.fetch("k-second", "klout", "391122", budget)
        assert raised.value.retry_after is not None
        assert raised.value.retry_after > 1
        assert calls(emulators) == 1

    def test_paced_calls_stay_within_the_upstream_limit(self, upstreams, emulators):
        emulators.klout_state.configure(KloutSettings(rate_per_second=20, daily_quota=10_000))
        gateway = klout_gateway(upstreams, emulators, MemoryStore(), rate="18/second")
        ids = ["635263", "391122", "771204", "118472", "250981"]
        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(
                pool.map(
                    lambda n: gateway.fetch(f"k-{n}", "klout", ids[n % 5], NO_DEADLINE),
                    range(30),
                )
            )
        stats = emulators.klout_state.stats()
        assert all(answer.kind == AnswerKind.SCORE for answer in answers)
        assert stats["over_limit_calls"] == 0
        assert stats["max_accepted_in_any_window"] <= 20
        assert stats["accepted"] == 30
