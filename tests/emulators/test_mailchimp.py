"""The Mailchimp emulator over real HTTP on loopback (httpx), one class per endpoint."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from emulators.mailchimp import (
    Fault,
    MailchimpEndpoint,
    MailchimpState,
    MemberStatus,
    MergeFieldType,
    SeedMember,
    create_mailchimp_app,
    subscriber_hash,
)
from emulators.server import LoopbackServer

API_KEY = "test-key-us1"
LIST_ID = "L1"
BASE = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture
def state() -> MailchimpState:
    state = MailchimpState(API_KEY)
    state.add_list(LIST_ID)
    state.add_merge_field(LIST_ID, "SCORE", MergeFieldType.NUMBER)
    state.add_merge_field(LIST_ID, "SCORESTAT", MergeFieldType.TEXT)
    return state


@pytest.fixture
def client(state: MailchimpState) -> Iterator[httpx.Client]:
    with (
        LoopbackServer(create_mailchimp_app(state)) as server,
        httpx.Client(base_url=f"{server.url}/3.0", auth=("anyone", API_KEY)) as http,
    ):
        yield http


def seed(state: MailchimpState, count: int, status: MemberStatus = MemberStatus.SUBSCRIBED) -> None:
    """Members p0..p<count-1>@example.com, changed one second apart from BASE."""
    state.seed_members(
        LIST_ID,
        (
            SeedMember(f"p{i}@example.com", status, last_changed=BASE + timedelta(seconds=i))
            for i in range(count)
        ),
    )


def member_path(email: str) -> str:
    return f"/lists/{LIST_ID}/members/{subscriber_hash(email)}"


class TestAuth:
    def test_wrong_key_is_401_problem_json(self, state, client):
        answer = client.get("/ping", auth=("anyone", "wrong-us1"))
        assert answer.status_code == 401
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["title"] == "API Key Invalid"
        assert set(answer.json()) == {"type", "title", "status", "detail", "instance"}

    def test_missing_auth_is_401(self, state, client):
        answer = client.get("/ping", auth=None, headers={"Authorization": ""})
        assert answer.status_code == 401

    def test_any_user_name_is_accepted(self, state, client):
        assert client.get("/ping", auth=("someone-else", API_KEY)).status_code == 200


class TestPing:
    def test_answers_health_status(self, state, client):
        answer = client.get("/ping")
        assert answer.json() == {"health_status": "Everything's Chimpy!"}
        assert state.call_count(MailchimpEndpoint.PING) == 1


class TestListMembers:
    def test_pages_with_count_and_offset_oldest_first(self, state, client):
        seed(state, 25)
        answer = client.get(f"/lists/{LIST_ID}/members", params={"count": 10, "offset": 20})
        body = answer.json()
        assert body["total_items"] == 25
        assert [m["email_address"] for m in body["members"]] == [
            f"p{i}@example.com" for i in range(20, 25)
        ]

    def test_default_count_is_ten(self, state, client):
        seed(state, 25)
        assert len(client.get(f"/lists/{LIST_ID}/members").json()["members"]) == 10

    def test_count_over_1000_is_refused(self, state, client):
        answer = client.get(f"/lists/{LIST_ID}/members", params={"count": 1001})
        assert answer.status_code == 400

    def test_since_and_before_last_changed_are_strict(self, state, client):
        seed(state, 10)
        params = {
            "since_last_changed": (BASE + timedelta(seconds=3)).isoformat(),
            "before_last_changed": (BASE + timedelta(seconds=7)).isoformat(),
        }
        body = client.get(f"/lists/{LIST_ID}/members", params=params).json()
        assert [m["email_address"] for m in body["members"]] == [
            f"p{i}@example.com" for i in (4, 5, 6)
        ]
        assert body["total_items"] == 3

    def test_descending_order(self, state, client):
        seed(state, 5)
        body = client.get(f"/lists/{LIST_ID}/members", params={"sort_dir": "DESC"}).json()
        assert body["members"][0]["email_address"] == "p4@example.com"

    def test_fields_projects_the_answer(self, state, client):
        seed(state, 2)
        params = {"fields": "members.id,members.last_changed,total_items"}
        body = client.get(f"/lists/{LIST_ID}/members", params=params).json()
        assert set(body) == {"members", "total_items"}
        assert set(body["members"][0]) == {"id", "last_changed"}

    def test_write_moves_member_to_the_end(self, state, client):
        seed(state, 3)
        client.patch(member_path("p0@example.com"), json={"merge_fields": {"SCORE": 5}})
        body = client.get(f"/lists/{LIST_ID}/members").json()
        assert body["members"][-1]["email_address"] == "p0@example.com"
        assert body["members"][-1]["last_changed"] > body["members"][0]["last_changed"]

    def test_unknown_list_is_404(self, state, client):
        answer = client.get("/lists/nope/members")
        assert answer.status_code == 404
        assert answer.json()["title"] == "Resource Not Found"

    def test_seeding_100k_members_serves_a_middle_page(self, state, client):
        seed(state, 100_000)
        params = {"count": 1000, "offset": 50_000, "fields": "members.email_address"}
        body = client.get(f"/lists/{LIST_ID}/members", params=params).json()
        assert body["members"][0]["email_address"] == "p50000@example.com"
        assert len(body["members"]) == 1000


class TestGetMember:
    def test_by_hash_and_by_address(self, state, client):
        seed(state, 1)
        by_hash = client.get(member_path("p0@example.com")).json()
        by_address = client.get(f"/lists/{LIST_ID}/members/P0@Example.com").json()
        assert by_hash["id"] == by_address["id"] == subscriber_hash("p0@example.com")

    def test_missing_member_is_404_problem(self, state, client):
        answer = client.get(member_path("nobody@example.com"))
        assert answer.status_code == 404
        assert answer.headers["content-type"] == "application/problem+json"


class TestPutMember:
    def test_creates_a_new_member_with_status_if_new(self, state, client):
        answer = client.put(
            member_path("new@example.com"),
            json={"email_address": "new@example.com", "status_if_new": "pending"},
        )
        assert answer.status_code == 200
        assert answer.json()["status"] == "pending"

    def test_new_member_without_status_if_new_is_refused(self, state, client):
        answer = client.put(
            member_path("new@example.com"), json={"email_address": "new@example.com"}
        )
        assert answer.status_code == 400
        assert state.member(LIST_ID, "new@example.com") is None

    def test_updates_merge_fields_of_an_existing_member(self, state, client):
        seed(state, 1)
        body = {"email_address": "p0@example.com", "merge_fields": {"SCORE": ""}}
        answer = client.put(member_path("p0@example.com"), json=body)
        assert answer.json()["merge_fields"]["SCORE"] == ""
        assert answer.json()["last_changed"] > BASE.isoformat()

    def test_resubscribing_an_unsubscribed_member_is_a_compliance_error(self, state, client):
        seed(state, 1, status=MemberStatus.UNSUBSCRIBED)
        body = {"email_address": "p0@example.com", "status": "subscribed"}
        answer = client.put(member_path("p0@example.com"), json=body)
        assert answer.status_code == 400
        assert answer.json()["title"] == "Member In Compliance State"
        assert state.subscribe_attempts == 1
        assert state.member(LIST_ID, "p0@example.com")["status"] == "unsubscribed"

    def test_every_subscribe_attempt_on_an_existing_member_is_counted(self, state, client):
        seed(state, 1)
        body = {"email_address": "p0@example.com", "status": "subscribed"}
        assert client.put(member_path("p0@example.com"), json=body).status_code == 200
        assert state.subscribe_attempts == 1

    def test_unknown_merge_field_is_refused(self, state, client):
        seed(state, 1)
        body = {"email_address": "p0@example.com", "merge_fields": {"NOPE": "x"}}
        assert client.put(member_path("p0@example.com"), json=body).status_code == 400

    def test_text_in_a_number_field_is_refused(self, state, client):
        seed(state, 1)
        body = {"email_address": "p0@example.com", "merge_fields": {"SCORE": "high"}}
        assert client.put(member_path("p0@example.com"), json=body).status_code == 400


class TestPatchMember:
    def test_missing_member_is_404_and_not_created(self, state, client):
        answer = client.patch(member_path("x@example.com"), json={"merge_fields": {}})
        assert answer.status_code == 404
        assert state.member_count(LIST_ID) == 0

    def test_cleaned_member_cannot_be_subscribed(self, state, client):
        seed(state, 1, status=MemberStatus.CLEANED)
        answer = client.patch(member_path("p0@example.com"), json={"status": "subscribed"})
        assert answer.json()["title"] == "Member In Compliance State"
        assert state.subscribe_attempts == 1


class TestMemberTags:
    def test_sets_and_removes_tags_with_204(self, state, client):
        seed(state, 1)
        path = member_path("p0@example.com") + "/tags"
        first = {"tags": [{"name": "vip", "status": "active"}], "is_syncing": True}
        assert client.post(path, json=first).status_code == 204
        client.post(path, json={"tags": [{"name": "vip", "status": "inactive"}]})
        assert state.member(LIST_ID, "p0@example.com")["tags"] == []
        assert state.tag_syncing_flags == [True, False]

    def test_missing_member_is_404(self, state, client):
        path = member_path("x@example.com") + "/tags"
        assert client.post(path, json={"tags": []}).status_code == 404


class TestBatchMembers:
    def test_updates_existing_and_reports_errors_per_member(self, state, client):
        seed(state, 3)
        state.reject_member("p2@example.com", "p2@example.com is blocked", "ERROR_BLOCKED")
        members = [
            {"email_address": f"p{i}@example.com", "merge_fields": {"SCORE": i}} for i in range(3)
        ]
        body = client.post(
            f"/lists/{LIST_ID}", json={"members": members, "update_existing": True}
        ).json()
        assert body["total_updated"] == 2
        assert body["error_count"] == 1
        assert body["errors"][0]["email_address"] == "p2@example.com"
        assert body["errors"][0]["error_code"] == "ERROR_BLOCKED"

    def test_member_without_status_is_not_created(self, state, client):
        members = [{"email_address": "new@example.com", "merge_fields": {}}]
        body = client.post(
            f"/lists/{LIST_ID}", json={"members": members, "update_existing": True}
        ).json()
        assert body["error_count"] == 1
        assert state.member_count(LIST_ID) == 0

    def test_creates_a_member_with_status(self, state, client):
        members = [{"email_address": "new@example.com", "status": "subscribed"}]
        body = client.post(f"/lists/{LIST_ID}", json={"members": members}).json()
        assert body["total_created"] == 1

    def test_existing_member_without_update_existing_is_an_error(self, state, client):
        seed(state, 1)
        members = [{"email_address": "p0@example.com", "status": "subscribed"}]
        body = client.post(f"/lists/{LIST_ID}", json={"members": members}).json()
        assert body["errors"][0]["error_code"] == "ERROR_CONTACT_EXISTS"

    def test_compliance_state_is_a_member_error_and_counted(self, state, client):
        seed(state, 1, status=MemberStatus.UNSUBSCRIBED)
        members = [{"email_address": "p0@example.com", "status": "subscribed"}]
        body = client.post(
            f"/lists/{LIST_ID}", json={"members": members, "update_existing": True}
        ).json()
        assert "compliance state" in body["errors"][0]["error"]
        assert state.subscribe_attempts == 1

    def test_more_than_500_members_is_400(self, state, client):
        members = [{"email_address": f"n{i}@example.com", "status": "pending"} for i in range(501)]
        answer = client.post(f"/lists/{LIST_ID}", json={"members": members})
        assert answer.status_code == 400
        assert state.member_count(LIST_ID) == 0

    def test_not_json_is_400(self, state, client):
        answer = client.post(f"/lists/{LIST_ID}", content=b"{nope")
        assert answer.json()["title"] == "JSON Parse Error"


class TestMergeFields:
    def test_lists_the_defaults_and_the_added_ones(self, state, client):
        body = client.get(f"/lists/{LIST_ID}/merge-fields").json()
        assert [f["tag"] for f in body["merge_fields"]] == ["FNAME", "LNAME", "SCORE", "SCORESTAT"]

    def test_adds_a_field(self, state, client):
        answer = client.post(
            f"/lists/{LIST_ID}/merge-fields",
            json={"tag": "scoreseg", "name": "Segment", "type": "text"},
        )
        assert answer.json()["tag"] == "SCORESEG"
        assert "SCORESEG" in state.merge_field_tags(LIST_ID)

    def test_duplicate_tag_is_400(self, state, client):
        answer = client.post(
            f"/lists/{LIST_ID}/merge-fields", json={"tag": "SCORE", "name": "S", "type": "number"}
        )
        assert answer.status_code == 400


class TestConnectionLimit:
    def test_over_ten_in_flight_is_429_problem(self, state, client):
        state.latency = 0.5
        barrier = threading.Barrier(20)
        statuses: list[int] = []

        def call() -> None:
            barrier.wait()
            statuses.append(client.get("/ping").status_code)

        threads = [threading.Thread(target=call) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert state.max_in_flight == 10
        assert statuses.count(429) == state.rejected_over_limit > 0
        assert statuses.count(200) + statuses.count(429) == 20


class TestFaults:
    def test_empty_body_429_with_retry_after(self, state, client):
        state.inject_fault(Fault(429, retry_after=3))
        answer = client.get("/ping")
        assert answer.status_code == 429
        assert answer.content == b""
        assert answer.headers["retry-after"] == "3"
        assert client.get("/ping").status_code == 200

    def test_fault_for_one_endpoint_only_and_several_times(self, state, client):
        state.inject_fault(Fault(503, times=2, endpoint=MailchimpEndpoint.GET_MERGE_FIELDS))
        assert client.get("/ping").status_code == 200
        path = f"/lists/{LIST_ID}/merge-fields"
        assert [client.get(path).status_code for _ in range(3)] == [503, 503, 200]

    def test_problem_fault(self, state, client):
        state.inject_fault(Fault(400, title="Member In Compliance State", detail="no"))
        answer = client.get("/ping")
        assert answer.json()["title"] == "Member In Compliance State"


class TestCallCounting:
    def test_counts_every_call_per_endpoint_refused_ones_included(self, state, client):
        client.get("/ping")
        client.get("/ping", auth=("u", "bad"))
        client.get(f"/lists/{LIST_ID}/members")
        client.get("/nothing-here")
        assert state.call_count(MailchimpEndpoint.PING) == 2
        assert state.call_count(MailchimpEndpoint.LIST_MEMBERS) == 1
        assert state.call_count(MailchimpEndpoint.OTHER) == 1
        assert state.call_count() == 4
        state.reset_counters()
        assert state.call_count() == 0
