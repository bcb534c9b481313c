"""Prometheus metrics of the upstream gateway (served by the app at ``/metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "BREAKER_STATE",
    "CACHE_LOOKUPS",
    "LIMITER_WAIT",
    "UPSTREAM_CALLS",
    "UPSTREAM_RETRIES",
]

UPSTREAM_CALLS = Counter(
    "scoregate_upstream_calls_total",
    "HTTP calls made to upstream providers, by classified outcome.",
    ["provider", "outcome"],
)
UPSTREAM_RETRIES = Counter(
    "scoregate_upstream_retries_total",
    "Attempts repeated after a transient upstream failure.",
    ["provider"],
)
LIMITER_WAIT = Histogram(
    "scoregate_limiter_wait_seconds",
    "Time a call waited for a pacing slot.",
    ["provider"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0),
)
CACHE_LOOKUPS = Counter(
    "scoregate_cache_lookups_total",
    "Answer cache lookups, by result (hit or miss).",
    ["provider", "result"],
)
BREAKER_STATE = Gauge(
    "scoregate_breaker_open",
    "1 while the provider's circuit breaker is open or half-open, else 0.",
    ["provider"],
)
