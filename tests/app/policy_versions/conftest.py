"""Helpers for the policy tests: documents, a filled scored population, the policy worker."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.models import Role
from app.policy_versions import tasks
from app.policy_versions.tasks import DeliveryRetry, PolicyWorker
from app.runtime import Runtime

#: the sandbox's scored people; their median is 54.0
SCORED = {
    "jtimberlake": 92.8,
    "femi_founder": 86.4,
    "carla_dev": 73.2,
    "ann_marketing": 54.0,
    "bob_support": 41.5,
    "gus_gardener": 33.3,
    "dmitri_ops": 21.7,
}
SCORED_MEDIAN = 54.0


def document(name: str = "support-queue", **changes: Any) -> dict[str, Any]:
    """A valid policy document for the klout provider, with top-level fields replaced."""
    doc: dict[str, Any] = {
        "name": name,
        "use_case": "priority_queue",
        "provider": "klout",
        "missing": {
            "opted_out": {"strategy": "neutral"},
            "unscored": {"strategy": "neutral"},
            "not_found": {"strategy": "neutral"},
            "unavailable": {"strategy": "neutral"},
        },
        "segments": [
            {"name": "high", "min": 60},
            {"name": "mid", "min": 30},
            {"name": "standard", "min": 0},
        ],
        "ranking": {"method": "score"},
        "forbidden_use_cases": ["hiring"],
    }
    doc.update(changes)
    return doc


def create_policy(client: TestClient, admin: dict[str, str], doc: dict[str, Any]) -> None:
    response = client.post("/v1/policies", json={"document": doc}, headers=admin)
    assert response.status_code == 201, response.text


def add_version(client: TestClient, admin: dict[str, str], doc: dict[str, Any]) -> int:
    response = client.post(
        f"/v1/policies/{doc['name']}/versions", json={"document": doc}, headers=admin
    )
    assert response.status_code == 201, response.text
    version: int = response.json()["version"]
    return version


def activate(
    client: TestClient,
    admin: dict[str, str],
    name: str,
    version: int,
    reason: str = "reviewed by the fairness board",
    **extra: Any,
) -> Any:
    return client.post(
        f"/v1/policies/{name}/versions/{version}/activate",
        json={"reason": reason, **extra},
        headers=admin,
    )


def contact(handle: str) -> dict[str, Any]:
    return {"id": handle, "identities": {"twitter": handle}}


def wait_until(predicate: Callable[[], bool], timeout: float = 15.0) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` passes; returns its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.fixture
def population(client: TestClient, keys: dict[Role, dict[str, str]]) -> dict[str, float]:
    """The scored population filled by looking up every scored sandbox person."""
    response = client.post(
        "/v1/lookups",
        json={"contacts": [contact(handle) for handle in SCORED]},
        headers=keys[Role.READ],
    )
    assert response.status_code == 200, response.text
    assert all(r["status"] == "scored" for r in response.json()["results"])
    return SCORED


@pytest.fixture
def worker(runtime: Runtime) -> PolicyWorker:
    """The runtime's policy worker, polling fast and retrying with short waits."""
    found = tasks.worker_for(runtime)
    assert found is not None
    found.poll_seconds = 0.1
    found.retry = DeliveryRetry(attempts=3, initial_wait=0.05, max_wait=0.2, timeout=5.0)
    return found
