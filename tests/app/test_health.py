"""/healthz, /readyz and /metrics."""

from __future__ import annotations

from sqlalchemy import create_engine

from app.models import Role


class TestHealth:
    def test_healthz(self, client):
        assert client.get("/healthz").json() == {"status": "ok"}

    def test_readyz_checks_database_and_limiter_store(self, client):
        response = client.get("/readyz")
        assert response.status_code == 200
        assert response.json()["checks"] == {"database": "ok", "limiter_store": "ok"}

    def test_readyz_fails_when_the_database_is_gone(self, client, runtime):
        good = runtime.engine
        runtime.engine = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
        try:
            response = client.get("/readyz")
            assert response.status_code == 503
            assert response.json()["checks"]["database"].startswith("error")
        finally:
            runtime.engine.dispose()
            runtime.engine = good

    def test_metrics_count_upstream_calls_and_cache(self, client, keys):
        body = {"contacts": [{"id": "1", "identities": {"twitter": "carla_dev"}}]}
        client.post("/v1/lookups", json=body, headers=keys[Role.READ])
        client.post("/v1/lookups", json=body, headers=keys[Role.READ])
        metrics = client.get("/metrics")
        assert metrics.status_code == 200
        assert 'scoregate_upstream_calls_total{outcome="ok",provider="klout"}' in metrics.text
        assert 'scoregate_cache_lookups_total{provider="klout",result="hit"}' in metrics.text
        assert "scoregate_limiter_wait_seconds_bucket" in metrics.text
