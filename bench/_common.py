"""Helpers shared by the gateway benchmarks: emulators with many people, gateways, figures.

Benchmarks build the gateway the way the service does (``UpstreamCaller`` with its limiter,
breaker and retry policy, behind a ``ProviderGateway``), but cache answers in memory so the
figures measure the gateway and the upstream, not a database.
"""

from __future__ import annotations

import math
import random
import statistics
import threading
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import httpx
from pydantic import SecretStr
from redis import Redis

from connectors.cache import StoredAnswer
from connectors.gateway import GatewaySettings, ProviderGateway, UpstreamCaller
from connectors.http_json import HttpJsonConfig, HttpJsonProvider, Step
from connectors.pacing import InProcessLimiter, Limiter, Rate, RedisLimiter
from emulators.klout import KloutFaults, KloutPerson, KloutSettings, KloutState, create_klout_app
from emulators.server import LoopbackServer

__all__ = [
    "BENCH_KEY",
    "MemoryStore",
    "bench_people",
    "build_caller",
    "build_limiter",
    "gateway_for",
    "klout_emulator",
    "one_call_provider",
    "percentile",
    "summary",
]

BENCH_KEY = "bench-klout-key"
SEED = 20261122


class MemoryStore:
    """An :class:`~connectors.cache.AnswerStore` in a dict, guarded by one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._answers: dict[tuple[str, str], StoredAnswer] = {}

    def get_many(
        self, namespace: str, keys: Sequence[str], now: datetime
    ) -> dict[str, StoredAnswer]:
        with self._lock:
            found = {key: self._answers.get((namespace, key)) for key in keys}
        return {key: answer for key, answer in found.items() if answer and answer.expires_at > now}

    def put(self, namespace: str, key: str, answer: StoredAnswer) -> bool:
        with self._lock:
            self._answers[(namespace, key)] = answer
        return True


def bench_people(count: int, first_id: int = 10_000_000) -> list[KloutPerson]:
    """``count`` scored people with Klout ids ``first_id`` upwards and seeded scores."""
    rng = random.Random(SEED)
    return [
        KloutPerson(
            screen_name=f"bench_{n:05d}",
            klout_id=str(first_id + n),
            twitter_id=str(70_000_000 + n),
            score=round(rng.uniform(1, 100), 1),
        )
        for n in range(count)
    ]


def klout_emulator(
    people: list[KloutPerson], *, rate_per_second: int, daily_quota: int = 10_000_000
) -> tuple[KloutState, LoopbackServer]:
    """A started Klout emulator on loopback holding ``people``; stop the server when done."""
    state = KloutState(
        people,
        api_key=BENCH_KEY,
        settings=KloutSettings(rate_per_second=rate_per_second, daily_quota=daily_quota),
        faults=KloutFaults(),
    )
    return state, LoopbackServer(create_klout_app(state)).start()


def one_call_provider(base_url: str, **settings: Any) -> HttpJsonConfig:
    """A provider of one call per identity: the Klout score of a ``klout`` identity."""
    return HttpJsonConfig(
        kind="http_json",
        identity_kinds=["klout"],
        secrets={"key": SecretStr(BENCH_KEY)},
        steps=[
            Step(
                url=f"{base_url}/v2/user.json/{{value}}/score",
                params={"key": "{secret:key}"},
                extract="score",
            )
        ],
        min_score=1,
        max_score=100,
        no_such_user=[{"status": [404, 596]}, {"body_contains": "No users"}],
        over_limit=[{"header": "X-Mashery-Error-Code", "header_contains": "OVER_QPS"}],
        quota_exhausted=[{"header": "X-Mashery-Error-Code", "header_contains": "OVER_RATE"}],
        **settings,
    )


def build_limiter(
    name: str, settings: GatewaySettings, redis: Redis | None, prefix: str
) -> Limiter:
    rate = Rate.parse(settings.rate)
    quota = Rate.parse(settings.quota) if settings.quota else None
    margin = settings.pacing_margin
    if redis is not None:
        return RedisLimiter(name, rate, quota, redis=redis, key_prefix=prefix, margin=margin)
    return InProcessLimiter(name, rate, quota, margin=margin)


def build_caller(
    name: str,
    settings: GatewaySettings,
    *,
    redis: Redis | None = None,
    prefix: str | None = None,
    max_connections: int = 64,
) -> UpstreamCaller:
    """An upstream caller as the service builds one; the caller's client must be closed."""
    timeout = settings.timeout.total_seconds()
    client = httpx.Client(
        timeout=httpx.Timeout(timeout, connect=min(timeout, 3.0)),
        limits=httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        ),
    )
    return UpstreamCaller(
        name,
        client=client,
        limiter=build_limiter(name, settings, redis, prefix or f"bench:{uuid.uuid4().hex}:"),
        breaker=settings.breaker(name),
        retry=settings.retry_policy(),
    )


def gateway_for(provider: HttpJsonProvider, caller: UpstreamCaller) -> ProviderGateway:
    """``provider`` behind the cache (in memory) and coalescing."""
    return ProviderGateway(
        provider,
        caller=caller,
        store=MemoryStore(),
        ttl=timedelta(days=7),
        negative_ttl=timedelta(days=1),
    )


def percentile(values: Sequence[float], share: float) -> float:
    """The ``share`` quantile (0-1) of ``values`` by the nearest-rank rule."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1))
    return ordered[rank]


def summary(latencies: Sequence[float]) -> str:
    """``p50 / p99 / mean`` of latencies given in seconds, printed in milliseconds."""
    return (
        f"p50 {percentile(latencies, 0.50) * 1000:.2f} ms, "
        f"p99 {percentile(latencies, 0.99) * 1000:.2f} ms, "
        f"mean {statistics.fmean(latencies) * 1000:.2f} ms"
    )
