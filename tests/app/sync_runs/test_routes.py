"""``/v1/sync-runs``: queued through the API, executed by the service's worker thread."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.api_keys import service as api_keys
from app.main import create_app
from app.models import Role
from app.runtime import Runtime
from tests.app.sync_runs.crm import MIX, Crms, crm_settings, person, running_crms

pytestmark = pytest.mark.usefixtures("clean_db")


@pytest.fixture
def crms() -> Iterator[Crms]:
    with running_crms() as running:
        rows = [{"LastName": h, "Email": person(h).email, "Twitter_Handle__c": h} for h in MIX]
        running.salesforce.seed("Contact", rows)
        yield running


@pytest.fixture
def client(crms, database_url, emulators, engine) -> Iterator[TestClient]:
    runtime = Runtime(crm_settings(database_url, emulators, crms, workers=True), engine=engine)
    runtime.start(run_migrations=False)
    with TestClient(create_app(runtime=runtime)) as test_client:
        with runtime.sessions() as session:
            created = api_keys.create_key(session, role=Role.SYNC, name="t", actor="tests")
        test_client.headers["Authorization"] = f"Bearer {created.secret}"
        yield test_client
    runtime.close()


def finished(client: TestClient, run_id: int, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(f"/v1/sync-runs/{run_id}").json()
        if body["state"] in ("succeeded", "failed"):
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.05)


class TestStart:
    def test_a_queued_run_is_executed_by_the_worker(self, client):
        response = client.post("/v1/sync-runs", json={"connector": "salesforce"})
        assert response.status_code == 202
        assert response.json()["state"] in ("queued", "running")
        body = finished(client, response.json()["id"])
        assert body["state"] == "succeeded"
        assert body["progress"]["read"] == len(MIX)
        assert body["progress"]["written"] == len(MIX)
        assert sum(body["counts"].values()) == len(MIX)
        assert body["record_errors"] == []

    def test_an_unknown_connector_is_refused(self, client):
        response = client.post("/v1/sync-runs", json={"connector": "hubspot"})
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "connector_not_found"

    def test_a_second_run_of_a_busy_connector_is_a_conflict(self, client):
        client.app.state.runtime.stop_workers()
        first = client.post("/v1/sync-runs", json={"connector": "zoho", "dry_run": True})
        second = client.post("/v1/sync-runs", json={"connector": "zoho"})
        assert first.status_code == 202
        assert second.status_code == 409
        assert second.json()["error"]["details"]["run_id"] == first.json()["id"]


class TestList:
    def test_runs_are_listed_newest_first(self, client):
        ids = []
        for connector in ("salesforce", "zoho"):
            ids.append(client.post("/v1/sync-runs", json={"connector": connector}).json()["id"])
            finished(client, ids[-1])
        listed = client.get("/v1/sync-runs").json()["runs"]
        assert [run["id"] for run in listed] == ids[::-1]
        only = client.get("/v1/sync-runs", params={"connector": "zoho"}).json()["runs"]
        assert [run["connector"] for run in only] == ["zoho"]


class TestDetail:
    def test_an_unknown_run_is_404(self, client):
        response = client.get("/v1/sync-runs/999")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "sync_run_not_found"
