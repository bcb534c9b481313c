"""Mailchimp webhooks: validation, the documented sample payloads, retries, and what each event
does to the member and the opt-out registry."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.main import create_app
from app.models import ContactLink, OptOut, WebhookEvent, WebhookEventState
from app.runtime import Runtime
from connectors.mailchimp import subscriber_hash
from emulators.mailchimp import SeedMember
from tests.app.sync_runs.crm import LIST_ID, WEBHOOK_TOKEN, Crms, crm_settings, running_crms

pytestmark = pytest.mark.usefixtures("clean_db")

URL = f"/v1/webhooks/mailchimp/{WEBHOOK_TOKEN}"
FIRED_AT = "2009-03-26 21:35:57"


def sample(
    event_type: str, email: str, merges: dict[str, str] | None = None, **data: str
) -> dict[str, str]:
    """Mailchimp's documented sample fields for ``event_type`` (list and ids as in its docs)."""
    fields = {"type": event_type, "fired_at": FIRED_AT, "data[list_id]": "a6b5da1054"}
    if event_type in ("subscribe", "profile", "unsubscribe"):
        fields |= {
            "data[id]": "8a25ff1d98",
            "data[email]": email,
            "data[email_type]": "html",
            "data[merges][EMAIL]": email,
            "data[merges][FNAME]": "Mailchimp",
            "data[merges][LNAME]": "API",
            "data[merges][INTERESTS]": "Group1,Group2",
            "data[ip_opt]": "10.20.10.30",
        }
    if event_type == "subscribe":
        fields["data[ip_signup]"] = "10.20.10.30"
    if event_type == "unsubscribe":
        fields |= {
            "data[action]": "unsub",
            "data[reason]": "manual",
            "data[campaign_id]": "cb398d21d2",
        }
    if event_type == "cleaned":
        fields |= {"data[campaign_id]": "4fjk2ma9xd", "data[reason]": "hard", "data[email]": email}
    fields |= {f"data[{key}]": value for key, value in data.items()}
    fields |= {f"data[merges][{tag}]": value for tag, value in (merges or {}).items()}
    return fields


@pytest.fixture
def crms() -> Iterator[Crms]:
    with running_crms() as running:
        past = datetime.now(UTC) - timedelta(seconds=10)
        running.mailchimp.seed_members(
            LIST_ID,
            [
                SeedMember("api@mailchimp.com", last_changed=past),
                SeedMember("carla@example.com", merge_fields={"TWITTER": "carla_dev"}),
                SeedMember("new@example.com"),
            ],
        )
        yield running


@pytest.fixture
def hook_runtime(crms, database_url, emulators, engine) -> Iterator[Runtime]:
    running = Runtime(crm_settings(database_url, emulators, crms, workers=True), engine=engine)
    running.start(run_migrations=False)
    yield running
    running.close()


@pytest.fixture
def client(hook_runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime=hook_runtime)) as test_client:
        yield test_client


def eventually(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def processed(runtime: Runtime) -> Callable[[], bool]:
    def check() -> bool:
        with runtime.sessions() as session:
            states = set(session.scalars(select(WebhookEvent.state)))
        return bool(states) and states <= {WebhookEventState.DONE, WebhookEventState.FAILED}

    return check


def events(runtime: Runtime) -> list[WebhookEvent]:
    with runtime.sessions() as session:
        return list(session.scalars(select(WebhookEvent)))


def opted_out(runtime: Runtime, kind: str, value: str) -> OptOut | None:
    with runtime.sessions() as session:
        return session.get(OptOut, runtime.keyer.identity(kind, value).key)


class TestValidation:
    def test_the_validators_get_is_answered(self, client):
        response = client.get(URL, headers={"User-Agent": "MailChimp.com WebHook Validator"})
        assert response.status_code == 200
        assert response.json()["outcome"] == "validation"

    def test_an_empty_post_is_answered_and_nothing_is_stored(self, client, hook_runtime):
        response = client.post(URL)
        assert response.status_code == 200
        assert events(hook_runtime) == []

    def test_a_wrong_token_is_404_and_changes_nothing(self, client, hook_runtime):
        wrong = "/v1/webhooks/mailchimp/not-the-token-at-all-0000"
        assert client.get(wrong).status_code == 404
        response = client.post(wrong, data=sample("subscribe", "api@mailchimp.com"))
        assert response.status_code == 404
        assert events(hook_runtime) == []

    def test_no_api_key_is_needed(self, client):
        assert client.post(URL, data=sample("subscribe", "api@mailchimp.com")).status_code == 200


class TestSubscribe:
    def test_the_documented_sample_scores_the_member_without_subscribing(
        self, client, hook_runtime, crms
    ):
        response = client.post(URL, data=sample("subscribe", "api@mailchimp.com"))
        assert response.json()["outcome"] == "stored"
        eventually(processed(hook_runtime))
        member = crms.mailchimp.member(LIST_ID, "api@mailchimp.com")
        # an e-mail address alone cannot be looked up at klout: unscored, blank, never 0
        assert member["merge_fields"]["SCORESTAT"] == "unscored"
        assert member["merge_fields"]["SCORE"] == ""
        assert crms.mailchimp.subscribe_attempts == 0
        stored = events(hook_runtime)[0]
        assert stored.state == WebhookEventState.DONE
        assert stored.sealed is None

    def test_a_profile_with_a_handle_is_scored_and_tagged(self, client, hook_runtime, crms):
        client.post(
            URL, data=sample("profile", "carla@example.com", merges={"TWITTER": "carla_dev"})
        )
        eventually(processed(hook_runtime))
        member = crms.mailchimp.member(LIST_ID, "carla@example.com")
        assert member["merge_fields"]["SCORESTAT"] == "scored"
        assert member["merge_fields"]["SCORE"] == pytest.approx(73.2)
        assert "score-high" in {tag["name"] for tag in member["tags"]}
        assert crms.mailchimp.subscribe_attempts == 0

    def test_a_retried_delivery_is_stored_once(self, client, hook_runtime):
        payload = sample("subscribe", "api@mailchimp.com")
        first = client.post(URL, data=payload).json()
        second = client.post(URL, data=payload).json()
        assert (first["outcome"], second["outcome"]) == ("stored", "duplicate")
        assert second["event_id"] == first["event_id"]
        with hook_runtime.sessions() as session:
            assert session.scalar(select(func.count()).select_from(WebhookEvent)) == 1

    def test_the_stored_event_holds_no_address_in_the_clear(self, client, hook_runtime):
        hook_runtime.stop_workers()
        client.post(URL, data=sample("subscribe", "api@mailchimp.com"))
        stored = events(hook_runtime)[0]
        assert stored.sealed is not None
        assert b"api@mailchimp.com" not in stored.sealed
        assert "mailchimp.com" not in stored.dedupe_key


class TestOptOutEvents:
    def test_a_do_not_score_merge_field_records_an_opt_out(self, client, hook_runtime, crms):
        client.post(URL, data=sample("profile", "carla@example.com", merges={"NOSCORE": "Yes"}))
        eventually(processed(hook_runtime))
        entry = opted_out(hook_runtime, "email", "carla@example.com")
        assert entry is not None
        assert entry.source == "mailchimp"
        member = crms.mailchimp.member(LIST_ID, "carla@example.com")
        assert member["merge_fields"]["SCORESTAT"] == "opted_out"
        assert member["merge_fields"]["FAIRSCORE"] == ""

    def test_unsubscribe_with_delete_records_an_opt_out(self, client, hook_runtime):
        client.post(URL, data=sample("unsubscribe", "api@mailchimp.com", action="delete"))
        eventually(processed(hook_runtime))
        assert opted_out(hook_runtime, "email", "api@mailchimp.com") is not None

    def test_a_plain_unsubscribe_is_about_mail_not_scoring(self, client, hook_runtime):
        client.post(URL, data=sample("unsubscribe", "api@mailchimp.com"))
        eventually(processed(hook_runtime))
        assert opted_out(hook_runtime, "email", "api@mailchimp.com") is None


class TestUpemail:
    def test_the_contact_link_moves_to_the_new_address(self, client, hook_runtime):
        client.post(URL, data=sample("subscribe", "api@mailchimp.com"))
        eventually(processed(hook_runtime))
        client.post(
            URL,
            data={
                "type": "upemail",
                "fired_at": "2009-03-26 22:15:09",
                "data[list_id]": "a6b5da1054",
                "data[new_id]": "51da8c3259",
                "data[new_email]": "new@example.com",
                "data[old_email]": "api@mailchimp.com",
            },
        )
        eventually(processed(hook_runtime))
        with hook_runtime.sessions() as session:
            links = session.scalars(select(ContactLink)).all()
        assert {link.record_id for link in links} == {subscriber_hash("new@example.com")}
        assert {link.identity_key for link in links} == {
            hook_runtime.keyer.identity("email", "new@example.com").key
        }


class TestCleaned:
    def test_a_cleaned_address_is_marked_not_found(self, client, hook_runtime, crms):
        client.post(URL, data=sample("cleaned", "api@mailchimp.com"))
        eventually(processed(hook_runtime))
        member = crms.mailchimp.member(LIST_ID, "api@mailchimp.com")
        assert member["merge_fields"]["SCORESTAT"] == "not_found"
        assert member["merge_fields"]["SCORE"] == ""
