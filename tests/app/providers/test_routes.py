"""GET /v1/providers and the gateway's Prometheus metrics, after lookups against the emulators."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from app.models import Role
from app.runtime import Runtime
from connectors.breaker import CircuitBreaker
from emulators.klout import KloutFaults, KloutSettings
from emulators.sandbox import Sandbox


def lookup(client: TestClient, headers: dict[str, str], *handles: str) -> dict[str, Any]:
    contacts = [{"id": handle, "identities": {"twitter": handle}} for handle in handles]
    response = client.post("/v1/lookups", json={"contacts": contacts}, headers=headers)
    assert response.status_code == 200, response.text
    return {result["id"]: result for result in response.json()["results"]}


def providers(client: TestClient, headers: dict[str, str]) -> dict[str, dict[str, Any]]:
    response = client.get("/v1/providers", headers=headers)
    assert response.status_code == 200, response.text
    return {entry["name"]: entry for entry in response.json()["providers"]}


def metric(client: TestClient, sample: str, **labels: str) -> float:
    """The value of one sample on /metrics (0 when it has not been recorded yet)."""
    response = client.get("/metrics")
    assert response.status_code == 200
    for family in text_string_to_metric_families(response.text):
        for found in family.samples:
            if found.name == sample and all(found.labels.get(k) == v for k, v in labels.items()):
                return float(found.value)
    return 0.0


def next_utc_midnight() -> datetime:
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    return tomorrow.replace(hour=0, minute=0, second=0, microsecond=0)


def open_breaker_after_one_failure(runtime: Runtime) -> None:
    """Give the klout caller a breaker that opens on the first failure and stays open."""
    runtime.providers.providers["klout"].caller.breaker = CircuitBreaker(
        "klout", failure_threshold=1, reset_timeout=600
    )


class TestListProviders:
    def test_needs_a_key(self, client):
        assert client.get("/v1/providers").status_code == 401

    def test_shows_limits_and_use(self, client, keys):
        lookup(client, keys[Role.READ], "jtimberlake", "nobody_here_42")
        shown = providers(client, keys[Role.READ])
        klout = shown["klout"]
        assert (klout["kind"], klout["role"]) == ("klout", "provider")
        assert (klout["rate"], klout["quota"]) == ("2000/second", "1000000/day")
        assert klout["used_today"] == 3  # identity + score, and one identity lookup
        assert klout["quota_left"] == 1_000_000 - 3
        assert datetime.fromisoformat(klout["quota_resets_at"]) == next_utc_midnight()
        assert klout["calls"] == 3
        assert klout["blocked_until"] is None
        assert klout["waiting"] == 0
        assert (klout["circuit"], klout["credentials_ok"]) == ("closed", True)
        assert klout["last_error"] is None
        twitter = shown["twitter"]
        assert (twitter["kind"], twitter["role"]) == ("twitter", "existence")
        assert (twitter["quota"], twitter["quota_left"]) == (None, None)
        assert twitter["calls"] == 1

    def test_shows_the_cache_hit_rate(self, client, keys):
        assert providers(client, keys[Role.READ])["klout"]["cache_hit_rate"] is None
        lookup(client, keys[Role.READ], "ann_marketing")
        lookup(client, keys[Role.READ], "ann_marketing", "carla_dev")
        assert providers(client, keys[Role.READ])["klout"]["cache_hit_rate"] == pytest.approx(1 / 3)

    def test_shows_the_last_error(self, client, keys):
        lookup(client, keys[Role.READ], "busy_bea")
        klout = providers(client, keys[Role.READ])["klout"]
        assert klout["last_error"].startswith("TransientUpstreamError")
        assert "Service too busy" in klout["last_error"]
        assert datetime.fromisoformat(klout["last_error_at"]) <= datetime.now(UTC)
        assert klout["credentials_ok"] is True

    def test_shows_an_open_circuit(self, client, keys, runtime):
        open_breaker_after_one_failure(runtime)
        results = lookup(client, keys[Role.READ], "busy_bea", "carla_dev")
        assert results["carla_dev"]["status"] in ("scored", "unavailable")
        assert providers(client, keys[Role.READ])["klout"]["circuit"] == "open"

    def test_shows_a_used_up_quota(self, client, keys, emulators: Sandbox):
        emulators.klout_state.configure(KloutSettings(rate_per_second=2000, daily_quota=0))
        result = lookup(client, keys[Role.READ], "carla_dev")["carla_dev"]
        assert result["status"] == "unavailable"
        assert "quota is used up" in result["evidence"][0]["fact"]
        klout = providers(client, keys[Role.READ])["klout"]
        assert datetime.fromisoformat(klout["blocked_until"]) == next_utc_midnight()
        assert klout["last_error"].startswith("QuotaExhaustedError")


class TestMetrics:
    def test_calls_by_provider_and_outcome(self, client, keys):
        before = metric(client, "scoregate_upstream_calls_total", provider="klout", outcome="ok")
        lookup(client, keys[Role.READ], "jtimberlake")
        after = metric(client, "scoregate_upstream_calls_total", provider="klout", outcome="ok")
        assert after - before == 2

    def test_failed_calls_and_retries(self, client, keys):
        labels = {"provider": "klout", "outcome": "TransientUpstreamError"}
        failed = metric(client, "scoregate_upstream_calls_total", **labels)
        retries = metric(client, "scoregate_upstream_retries_total", provider="klout")
        lookup(client, keys[Role.READ], "busy_bea")
        assert metric(client, "scoregate_upstream_calls_total", **labels) - failed == 2
        assert metric(client, "scoregate_upstream_retries_total", provider="klout") - retries == 1

    def test_dropped_connections_are_transport_errors(self, client, keys, emulators):
        labels = {"provider": "klout", "outcome": "transport_error"}
        before = metric(client, "scoregate_upstream_calls_total", **labels)
        emulators.klout_state.set_faults(KloutFaults(dropped_share=1.0))
        lookup(client, keys[Role.READ], "dmitri_ops")
        assert metric(client, "scoregate_upstream_calls_total", **labels) - before == 2

    def test_limiter_wait_histogram(self, client, keys):
        before = metric(client, "scoregate_limiter_wait_seconds_count", provider="klout")
        lookup(client, keys[Role.READ], "femi_founder")
        after = metric(client, "scoregate_limiter_wait_seconds_count", provider="klout")
        assert after - before == 2
        assert metric(client, "scoregate_limiter_wait_seconds_bucket", provider="klout", le="+Inf")

    def test_cache_hits_and_misses(self, client, keys):
        def lookups(result: str) -> float:
            return metric(client, "scoregate_cache_lookups_total", provider="klout", result=result)

        hits, misses = lookups("hit"), lookups("miss")
        lookup(client, keys[Role.READ], "gus_gardener")
        lookup(client, keys[Role.READ], "gus_gardener")
        assert lookups("miss") - misses == 1
        assert lookups("hit") - hits == 1

    def test_breaker_state(self, client, keys, runtime):
        lookup(client, keys[Role.READ], "bob_support")
        assert metric(client, "scoregate_breaker_open", provider="klout") == 0
        open_breaker_after_one_failure(runtime)
        lookup(client, keys[Role.READ], "busy_bea")
        assert metric(client, "scoregate_breaker_open", provider="klout") == 1
