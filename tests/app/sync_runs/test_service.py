"""Sync runs end to end: each CRM emulator over loopback, through the real client libraries."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from app.models import ContactLink, OptOut, SyncRecordError, SyncRunState
from app.runtime import Runtime
from app.sync_runs import service
from emulators.mailchimp import SeedMember
from emulators.salesforce import Endpoint, Fault
from tests.app.sync_runs.crm import LIST_ID, MIX, Crms, crm_settings, person, running_crms

pytestmark = pytest.mark.usefixtures("clean_db")


@pytest.fixture
def crms() -> Iterator[Crms]:
    with running_crms() as running:
        yield running


@pytest.fixture
def sync_runtime(crms, database_url, emulators, engine) -> Iterator[Runtime]:
    running = Runtime(crm_settings(database_url, emulators, crms), engine=engine)
    running.start(run_migrations=False)
    yield running
    running.close()


def seed_salesforce(crms: Crms, handles=MIX, *, flagged=("bob_support",)) -> dict[str, str]:
    """One Contact per handle; returns handle -> record id."""
    rows = [
        {
            "LastName": handle,
            "Email": person(handle).email or f"{handle}@example.com",
            "Twitter_Handle__c": handle,
            "Do_Not_Score__c": handle in flagged,
        }
        for handle in handles
    ]
    return dict(zip(handles, crms.salesforce.seed("Contact", rows), strict=True))


def run(runtime: Runtime, connector: str, *, dry_run: bool = False):
    return service.run_now(runtime, connector, dry_run=dry_run, actor="tests")


def sf(crms: Crms, record_id: str) -> dict[str, Any]:
    return crms.salesforce.record("Contact", record_id)


class FailNthWrite:
    """An ASGI wrapper answering the ``n``-th write request (PATCH/POST) with a bare 500."""

    def __init__(self, app: Any, n: int) -> None:
        self.app, self.n, self.writes = app, n, 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] in ("PATCH", "POST"):
            self.writes += 1
            if self.writes == self.n:
                body = b'[{"message":"boom","errorCode":"UNKNOWN_EXCEPTION"}]'
                await send(
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [(b"content-type", b"application/json")],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


class TestSalesforceRun:
    def test_every_status_is_written_honestly(self, sync_runtime, crms):
        ids = seed_salesforce(crms)
        finished = run(sync_runtime, "salesforce")
        assert finished.state == SyncRunState.SUCCEEDED
        assert finished.read == len(MIX)
        assert finished.written == len(MIX)
        scored = sf(crms, ids["carla_dev"])
        assert scored["Influence_Status__c"] == "scored"
        assert scored["Influence_Score__c"] == pytest.approx(73.2)
        assert scored["Influence_Policy__c"] == "klout-default v0"
        unscored = sf(crms, ids["quiet_quinn"])
        assert unscored["Influence_Status__c"] == "unscored"
        assert unscored["Influence_Score__c"] is None
        assert unscored["Influence_Effective_Score__c"] is not None
        assert sf(crms, ids["nobody_here_42"])["Influence_Status__c"] == "not_found"
        flagged = sf(crms, ids["bob_support"])
        assert flagged["Influence_Status__c"] == "opted_out"
        assert flagged["Influence_Score__c"] is None
        assert flagged["Influence_Effective_Score__c"] is None
        assert flagged["Influence_Segment__c"] is None
        assert finished.counts == {"scored": 3, "unscored": 1, "not_found": 1, "opted_out": 1}

    def test_a_do_not_score_flag_is_recorded_as_an_opt_out(self, sync_runtime, crms):
        seed_salesforce(crms)
        run(sync_runtime, "salesforce")
        key = sync_runtime.keyer.identity("twitter", "bob_support").key
        with sync_runtime.sessions() as session:
            entry = session.get(OptOut, key)
        assert entry is not None
        assert entry.source == "salesforce"

    def test_links_hold_identity_keys_only(self, sync_runtime, crms):
        ids = seed_salesforce(crms)
        run(sync_runtime, "salesforce")
        with sync_runtime.sessions() as session:
            links = session.scalars(
                select(ContactLink).where(ContactLink.record_id == ids["carla_dev"])
            ).all()
        keys = {link.identity_key for link in links}
        assert keys == {
            sync_runtime.keyer.identity("twitter", "carla_dev").key,
            sync_runtime.keyer.identity("email", "carla@example.com").key,
        }
        assert all("carla" not in link.identity_key for link in links)

    def test_a_second_run_skips_what_it_wrote(self, sync_runtime, crms):
        seed_salesforce(crms)
        run(sync_runtime, "salesforce")
        crms.salesforce.reset_calls()
        second = run(sync_runtime, "salesforce")
        assert second.state == SyncRunState.SUCCEEDED
        assert second.written == 0
        assert second.skipped == second.read
        assert crms.salesforce.calls(Endpoint.COLLECTIONS_UPDATE) == 0

    def test_a_dry_run_writes_nothing(self, sync_runtime, crms):
        ids = seed_salesforce(crms)
        finished = run(sync_runtime, "salesforce", dry_run=True)
        assert finished.state == SyncRunState.SUCCEEDED
        assert finished.written == 0
        assert sum(finished.counts.values()) == len(MIX)
        assert sf(crms, ids["carla_dev"])["Influence_Status__c"] is None
        assert crms.salesforce.calls(Endpoint.COLLECTIONS_UPDATE) == 0
        with sync_runtime.sessions() as session:
            assert (
                session.get(OptOut, sync_runtime.keyer.identity("twitter", "bob_support").key)
                is None
            )

    def test_refused_records_are_kept_and_retried_next_run(self, sync_runtime, crms):
        ids = seed_salesforce(crms)
        crms.salesforce.reject_record(
            ids["ann_marketing"], "FIELD_CUSTOM_VALIDATION_EXCEPTION", "no"
        )
        first = run(sync_runtime, "salesforce")
        assert first.errors == 1
        with sync_runtime.sessions() as session:
            error = session.scalars(select(SyncRecordError)).one()
        assert (error.record_id, error.code) == (
            ids["ann_marketing"],
            "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        )
        crms.salesforce.clear_rejections()
        second = run(sync_runtime, "salesforce")
        assert second.retried == 1
        assert sf(crms, ids["ann_marketing"])["Influence_Status__c"] == "scored"
        with sync_runtime.sessions() as session:
            assert session.scalars(select(SyncRecordError)).all() == []

    def test_a_concurrency_refusal_fails_the_run_and_the_next_run_finishes(
        self, sync_runtime, crms
    ):
        ids = seed_salesforce(crms)
        crms.salesforce.inject_fault(Fault.CONCURRENT_LIMIT, count=1)
        first = run(sync_runtime, "salesforce")
        assert first.state == SyncRunState.FAILED
        assert "ConcurrentRequests" in (first.message or "")
        second = run(sync_runtime, "salesforce")
        assert second.state == SyncRunState.SUCCEEDED
        assert sf(crms, ids["carla_dev"])["Influence_Status__c"] == "scored"


class TestResume:
    def test_a_run_that_fails_on_batch_three_resumes_there(self, database_url, emulators, engine):
        failing: list[FailNthWrite] = []

        def wrap(app):
            failing.append(FailNthWrite(app, 3))
            return failing[0]

        handles = [f"carla_dev{i}"[:15] for i in range(4)] + list(MIX) * 2
        with running_crms(salesforce_app=wrap) as crms:
            runtime = Runtime(crm_settings(database_url, emulators, crms), engine=engine)
            runtime.start(run_migrations=False)
            try:
                rows = [
                    {"LastName": f"p{i}", "Email": f"p{i}@example.com", "Twitter_Handle__c": h}
                    for i, h in enumerate(handles)
                ]
                ids = crms.salesforce.seed("Contact", rows)
                first = run(runtime, "salesforce")
                assert first.state == SyncRunState.FAILED
                assert first.batches == 2
                written_first = [i for i in ids if sf(crms, i)["Influence_Status__c"]]
                assert len(written_first) == 10
                second = run(runtime, "salesforce")
                assert second.state == SyncRunState.SUCCEEDED
                assert all(sf(crms, i)["Influence_Status__c"] for i in ids)
                # batches one and two are not written again
                assert second.written == len(ids) - 10
            finally:
                runtime.close()


class TestZohoRun:
    def test_leads_are_scored_and_a_rate_limit_is_waited_out(self, sync_runtime, crms):
        rows = [
            {
                "Last_Name": h,
                "Email": person(h).email,
                "Twitter": h,
                "Do_Not_Score": h == "bob_support",
            }
            for h in MIX
        ]
        ids = dict(zip(MIX, crms.zoho.seed("Leads", rows), strict=True))
        crms.zoho.inject_rate_limit(2)
        finished = run(sync_runtime, "zoho")
        assert finished.state == SyncRunState.SUCCEEDED
        assert finished.written == len(MIX)
        assert crms.zoho.rate_limited >= 2
        assert crms.zoho.get("Leads", ids["carla_dev"])["Score_Status"] == "scored"
        quinn = crms.zoho.get("Leads", ids["quiet_quinn"])
        assert (quinn["Score_Status"], quinn["Influence_Score"]) == ("unscored", None)
        bob = crms.zoho.get("Leads", ids["bob_support"])
        assert (bob["Score_Status"], bob["Influence_Score"], bob["Effective_Score"]) == (
            "opted_out",
            None,
            None,
        )


class TestMailchimpRun:
    def test_members_are_scored_and_nobody_is_subscribed(self, sync_runtime, crms):
        crms.mailchimp.seed_members(
            LIST_ID,
            [
                SeedMember(
                    person(h).email or f"{h}@example.com",
                    merge_fields={"TWITTER": h, "NOSCORE": "yes" if h == "bob_support" else ""},
                    # a read covers changes up to the second it starts
                    last_changed=datetime.now(UTC) - timedelta(seconds=10),
                )
                for h in MIX
            ],
        )
        finished = run(sync_runtime, "mailchimp")
        assert finished.state == SyncRunState.SUCCEEDED
        assert finished.written == len(MIX)
        carla = crms.mailchimp.member(LIST_ID, "carla@example.com")
        assert carla["merge_fields"]["SCORESTAT"] == "scored"
        assert carla["merge_fields"]["SCORE"] == pytest.approx(73.2)
        quinn = crms.mailchimp.member(LIST_ID, "quinn@example.com")
        assert quinn["merge_fields"]["SCORE"] == ""
        bob = crms.mailchimp.member(LIST_ID, "bob@example.org")
        assert (bob["merge_fields"]["SCORESTAT"], bob["merge_fields"]["FAIRSCORE"]) == (
            "opted_out",
            "",
        )
        assert crms.mailchimp.subscribe_attempts == 0
