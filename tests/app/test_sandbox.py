"""The embedded default: with no provider configured, the sandbox shows every status."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from app.api_keys import service as api_keys
from app.config import Settings
from app.main import create_app
from app.models import Role
from app.runtime import Runtime
from emulators.sandbox import SANDBOX_PEOPLE
from tests.conftest import REDIS_URL, TEST_SECRET


@pytest.fixture
def sandbox_client(clean_db, database_url) -> Iterator[tuple[TestClient, dict[str, str]]]:
    settings = Settings(
        database_url=database_url,
        secret_key=SecretStr(TEST_SECRET),
        redis_url=REDIS_URL,
        redis_prefix="sgtest:sandbox:" + TEST_SECRET[:6],
    )
    assert settings.uses_sandbox
    runtime = Runtime(settings, engine=clean_db)
    runtime.start(run_migrations=False)
    try:
        with runtime.sessions() as session:
            key = api_keys.create_key(session, role=Role.READ, name="newcomer", actor="tests")
        with TestClient(create_app(runtime=runtime)) as client:
            yield client, {"Authorization": f"Bearer {key.secret}"}
    finally:
        runtime.close()


class TestSandbox:
    def test_every_sample_person_gets_their_status(self, sandbox_client):
        client, headers = sandbox_client
        contacts = [{"id": p.handle, "identities": {"twitter": p.handle}} for p in SANDBOX_PEOPLE]
        body = {"contacts": contacts, "deadline_ms": 10_000}
        results = client.post("/v1/lookups", json=body, headers=headers).json()["results"]
        statuses = {r["id"]: r["status"] for r in results}
        assert statuses == {p.handle: str(p.expected_status) for p in SANDBOX_PEOPLE}
        assert set(statuses.values()) == {
            "scored",
            "opted_out",
            "unscored",
            "not_found",
            "unavailable",
        }

    def test_the_sample_opt_out_is_in_the_registry(self, sandbox_client):
        client, headers = sandbox_client
        body = {"contacts": [{"id": "o", "identities": {"twitter": "olga_optout"}}]}
        result = client.post("/v1/lookups", json=body, headers=headers).json()["results"][0]
        assert result["status"] == "opted_out"
        assert result["evidence"][0]["source"] == "registry"
