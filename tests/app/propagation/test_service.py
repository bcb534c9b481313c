"""Opt-out propagation: erasures queued with the opt-out, delivered by the outbox worker to every
linked record, retried, visible at ``GET /v1/opt-outs/status``, and never lost to a restart."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.api_keys import service as api_keys
from app.main import create_app
from app.models import ErasureState, OptOutSource, OutboxErasure, Role
from app.opt_outs import service as opt_outs
from app.runtime import Runtime
from app.sync_runs import service as sync_runs
from emulators.mailchimp import SeedMember
from emulators.salesforce import Fault
from tests.app.sync_runs.crm import LIST_ID, Crms, crm_settings, person, running_crms

pytestmark = pytest.mark.usefixtures("clean_db")

HANDLES = ("carla_dev", "ann_marketing")


@pytest.fixture
def crms() -> Iterator[Crms]:
    with running_crms() as running:
        yield running


def make_runtime(crms, database_url, emulators, engine, *, workers: bool) -> Runtime:
    running = Runtime(crm_settings(database_url, emulators, crms, workers=workers), engine=engine)
    running.start(run_migrations=False)
    return running


@pytest.fixture
def runtime(crms, database_url, emulators, engine) -> Iterator[Runtime]:
    running = make_runtime(crms, database_url, emulators, engine, workers=True)
    yield running
    running.close()


def synced_salesforce(runtime: Runtime, crms: Crms) -> dict[str, str]:
    rows = [{"LastName": h, "Email": person(h).email, "Twitter_Handle__c": h} for h in HANDLES]
    ids = dict(zip(HANDLES, crms.salesforce.seed("Contact", rows), strict=True))
    assert sync_runs.run_now(runtime, "salesforce", dry_run=False, actor="tests").errors == 0
    return ids


def synced_mailchimp(runtime: Runtime, crms: Crms) -> None:
    past = datetime.now(UTC) - timedelta(seconds=10)
    crms.mailchimp.seed_members(
        LIST_ID,
        [
            SeedMember(person(h).email, merge_fields={"TWITTER": h}, last_changed=past)
            for h in HANDLES
        ],
    )
    assert sync_runs.run_now(runtime, "mailchimp", dry_run=False, actor="tests").errors == 0


def opt_out(runtime: Runtime, handle: str) -> list[str]:
    with runtime.sessions() as session:
        result = opt_outs.record(
            session,
            runtime.keyer,
            runtime.populations,
            {"twitter": handle},
            source=OptOutSource.API,
            actor="tests",
            note=None,
        )
    return result.keys


def erasures(runtime: Runtime) -> list[OutboxErasure]:
    with runtime.sessions() as session:
        return list(session.scalars(select(OutboxErasure).order_by(OutboxErasure.id)))


def eventually(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def all_delivered(runtime: Runtime) -> Callable[[], bool]:
    def check() -> bool:
        rows = erasures(runtime)
        return bool(rows) and all(row.state == ErasureState.DELIVERED for row in rows)

    return check


def sync_headers(runtime: Runtime) -> dict[str, str]:
    with runtime.sessions() as session:
        created = api_keys.create_key(session, role=Role.SYNC, name="t", actor="tests")
    return {"Authorization": f"Bearer {created.secret}"}


class TestQueue:
    def test_an_opt_out_queues_one_erasure_per_linked_record(
        self, crms, database_url, emulators, engine
    ):
        runtime = make_runtime(crms, database_url, emulators, engine, workers=False)
        try:
            ids = synced_salesforce(runtime, crms)
            synced_mailchimp(runtime, crms)
            opt_out(runtime, "carla_dev")
            rows = erasures(runtime)
        finally:
            runtime.close()
        assert {(row.connector, row.state) for row in rows} == {
            ("salesforce", ErasureState.PENDING),
            ("mailchimp", ErasureState.PENDING),
        }
        assert ids["carla_dev"] in {row.record_id for row in rows}

    def test_an_identity_never_synced_queues_nothing(self, runtime):
        opt_out(runtime, "nobody_here_42")
        assert erasures(runtime) == []


class TestDelivery:
    def test_an_api_opt_out_is_erased_in_every_system_within_a_minute(self, runtime, crms):
        ids = synced_salesforce(runtime, crms)
        synced_mailchimp(runtime, crms)
        with TestClient(create_app(runtime=runtime)) as client:
            started = time.monotonic()
            response = client.post(
                "/v1/opt-outs",
                json={"identities": {"twitter": "carla_dev"}},
                headers=sync_headers(runtime),
            )
            assert response.status_code == 201
            eventually(all_delivered(runtime), timeout=60)
            assert time.monotonic() - started < 60
        record = crms.salesforce.record("Contact", ids["carla_dev"])
        assert record["Influence_Status__c"] == "opted_out"
        assert record["Influence_Score__c"] is None
        assert record["Influence_Effective_Score__c"] is None
        member = crms.mailchimp.member(LIST_ID, "carla@example.com")
        assert (member["merge_fields"]["SCORESTAT"], member["merge_fields"]["SCORE"]) == (
            "opted_out",
            "",
        )
        assert crms.mailchimp.subscribe_attempts == 0
        untouched = crms.salesforce.record("Contact", ids["ann_marketing"])
        assert untouched["Influence_Status__c"] == "scored"

    def test_a_failed_call_is_retried_until_delivered(self, runtime, crms):
        synced_salesforce(runtime, crms)
        crms.salesforce.inject_fault(Fault.SERVER_ERROR, count=1)
        opt_out(runtime, "carla_dev")
        eventually(all_delivered(runtime))
        (row,) = erasures(runtime)
        assert row.attempts == 2

    def test_a_member_gone_from_the_list_is_failed_not_retried(self, runtime, crms):
        synced_mailchimp(runtime, crms)
        crms.mailchimp.remove_member(LIST_ID, "carla@example.com")
        opt_out(runtime, "carla_dev")
        eventually(lambda: erasures(runtime)[0].state == ErasureState.FAILED)
        assert erasures(runtime)[0].last_error
        # refused, and nobody was created or subscribed on the way
        assert crms.mailchimp.member(LIST_ID, "carla@example.com") is None
        assert crms.mailchimp.subscribe_attempts == 0


class TestRestart:
    def test_an_erasure_queued_before_a_stop_is_delivered_after_a_restart(
        self, crms, database_url, emulators, engine
    ):
        first = make_runtime(crms, database_url, emulators, engine, workers=False)
        try:
            ids = synced_salesforce(first, crms)
            opt_out(first, "carla_dev")
        finally:
            first.close()
        assert [row.state for row in erasures(first)] == [ErasureState.PENDING]
        second = make_runtime(crms, database_url, emulators, engine, workers=True)
        try:
            eventually(all_delivered(second))
        finally:
            second.close()
        assert (
            crms.salesforce.record("Contact", ids["carla_dev"])["Influence_Status__c"]
            == "opted_out"
        )


class TestStatusRoute:
    def test_by_identity_key_and_by_state(self, crms, database_url, emulators, engine):
        runtime = make_runtime(crms, database_url, emulators, engine, workers=False)
        try:
            synced_salesforce(runtime, crms)
            keys = opt_out(runtime, "carla_dev")
            with TestClient(create_app(runtime=runtime)) as client:
                headers = sync_headers(runtime)
                by_key = client.get(
                    "/v1/opt-outs/status", params={"identity_key": keys}, headers=headers
                ).json()
                pending = client.get("/v1/opt-outs/status", headers=headers).json()
                delivered = client.get(
                    "/v1/opt-outs/status", params={"state": "delivered"}, headers=headers
                ).json()
        finally:
            runtime.close()
        assert [(e["connector"], e["state"]) for e in by_key["erasures"]] == [
            ("salesforce", "pending")
        ]
        assert by_key["erasures"][0]["identity_key"] == keys[0]
        assert pending["systems"] == [
            {"connector": "salesforce", "pending": 1, "delivered": 0, "failed": 0}
        ]
        assert len(pending["erasures"]) == 1
        assert delivered["erasures"] == []

    def test_a_malformed_identity_key_is_refused(self, runtime):
        with TestClient(create_app(runtime=runtime)) as client:
            response = client.get(
                "/v1/opt-outs/status",
                params={"identity_key": "not-a-key"},
                headers=sync_headers(runtime),
            )
        assert response.status_code == 422
