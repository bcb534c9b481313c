"""MailchimpConnector through the real mailchimp-marketing client against the loopback emulator."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from connectors.downstream import CrmRecord, DownstreamConnector, ScoreWrite
from connectors.errors import (
    BadCredentialsError,
    ComplianceStateError,
    RecordRejectedError,
    TransientUpstreamError,
)
from connectors.mailchimp import (
    MailchimpConfig,
    MailchimpConnector,
    MailchimpFieldMapping,
    MailchimpMemberStatus,
    subscriber_hash,
)
from emulators.mailchimp import (
    Fault,
    MailchimpEndpoint,
    MailchimpState,
    MemberStatus,
    MergeFieldType,
    SeedMember,
    create_mailchimp_app,
)
from emulators.server import LoopbackServer

API_KEY = "test-key-us1"
LIST_ID = "L1"
BASE = datetime(2024, 1, 1, tzinfo=UTC)
EVALUATED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture
def state() -> MailchimpState:
    state = MailchimpState(API_KEY)
    state.add_list(LIST_ID)
    for tag in ("SCORE", "FAIRSCORE"):
        state.add_merge_field(LIST_ID, tag, MergeFieldType.NUMBER)
    for tag in ("SCORESTAT", "SCORESEG", "NOSCORE", "TWITTER"):
        state.add_merge_field(LIST_ID, tag, MergeFieldType.TEXT)
    return state


@pytest.fixture
def server(state: MailchimpState) -> Iterator[LoopbackServer]:
    with LoopbackServer(create_mailchimp_app(state)) as server:
        yield server


def make_connector(server: LoopbackServer, **overrides: object) -> MailchimpConnector:
    settings: dict[str, object] = {
        "api_key": API_KEY,
        "list_id": LIST_ID,
        "base_url": f"{server.url}/3.0",
    }
    settings.update(overrides)
    return MailchimpConnector(MailchimpConfig.model_validate(settings))


@pytest.fixture
def connector(server: LoopbackServer) -> MailchimpConnector:
    return make_connector(server)


def seed(
    state: MailchimpState,
    count: int,
    *,
    status: MemberStatus = MemberStatus.SUBSCRIBED,
    step: float = 1.0,
    start: int = 0,
) -> None:
    """Members p<start>..@example.com, changed ``step`` seconds apart from BASE."""
    state.seed_members(
        LIST_ID,
        (
            SeedMember(
                f"p{i}@example.com", status, last_changed=BASE + timedelta(seconds=int(i * step))
            )
            for i in range(start, start + count)
        ),
    )


def write_for(
    record_id: str,
    status: str = "scored",
    score: float | None = 71.5,
    effective: float | None = 71.5,
    segment: str | None = "high",
) -> ScoreWrite:
    return ScoreWrite(
        record_id=record_id,
        status=status,
        score=score,
        effective_score=effective,
        segment=segment,
        explanation="Scored 71.5 by klout under policy support-queue v3.",
        policy="support-queue v3",
        evaluated_at=EVALUATED,
    )


def read_all(connector: MailchimpConnector, since: datetime | None = None) -> list[CrmRecord]:
    return [record for page in connector.read_changed(since) for record in page]


def merge_fields(state: MailchimpState, email: str) -> dict[str, Any]:
    member = state.member(LIST_ID, email)
    assert member is not None
    fields: dict[str, Any] = member["merge_fields"]
    return fields


class TestConfig:
    def test_default_url_comes_from_the_key_data_centre(self):
        config = MailchimpConfig(api_key="abc-us6", list_id="L")
        assert config.api_url == "https://us6.api.mailchimp.com/3.0"

    def test_key_without_data_centre_needs_a_base_url(self):
        with pytest.raises(ValidationError):
            MailchimpConfig(api_key="abc", list_id="L")

    def test_unknown_settings_are_refused(self):
        with pytest.raises(ValidationError):
            MailchimpConfig.model_validate({"api_key": "a-us1", "list_id": "L", "colour": "red"})

    def test_merge_tags_must_be_valid(self):
        with pytest.raises(ValidationError):
            MailchimpFieldMapping(score="TOO_LONG_TAG")

    def test_is_a_downstream_connector(self, server):
        connector: DownstreamConnector = make_connector(server, batch_size=200)
        assert (connector.name, connector.max_batch) == ("mailchimp", 200)

    def test_key_is_secret(self):
        assert "abc-us6" not in repr(MailchimpConfig(api_key="abc-us6", list_id="L"))


class TestPing:
    def test_good_key(self, state, connector):
        connector.ping()
        assert state.call_count(MailchimpEndpoint.PING) == 1
        assert connector.api_calls == 1

    def test_bad_key_is_bad_credentials(self, state, server):
        with pytest.raises(BadCredentialsError) as caught:
            make_connector(server, api_key="wrong-us1").ping()
        assert caught.value.upstream == "mailchimp"

    def test_network_error_is_transient(self):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        config = MailchimpConfig(
            api_key=API_KEY, list_id=LIST_ID, base_url=f"http://127.0.0.1:{port}/3.0"
        )
        with pytest.raises(TransientUpstreamError):
            MailchimpConnector(config).ping()


class TestReadChanged:
    def test_pages_of_1000_oldest_first(self, state, connector):
        seed(state, 2500)
        pages = list(connector.read_changed(None))
        assert [len(page) for page in pages] == [1000, 1000, 500]
        stamps = [record.modified_at for page in pages for record in page]
        assert stamps == sorted(stamps)
        assert state.call_count(MailchimpEndpoint.LIST_MEMBERS) == 3

    def test_record_id_is_the_subscriber_hash_and_identities_are_mapped(self, state, server):
        state.seed_members(
            LIST_ID,
            [
                SeedMember(
                    "Ann@Example.com",
                    merge_fields={"TWITTER": "@ann", "NOSCORE": ""},
                    last_changed=BASE,
                )
            ],
        )
        mapping = {"identities": {"email": "email_address", "twitter": "TWITTER"}}
        (record,) = read_all(make_connector(server, fields=mapping))
        assert record.id == subscriber_hash("ann@example.com")
        assert record.identities == {"email": "Ann@Example.com", "twitter": "@ann"}
        assert record.do_not_score is False

    @pytest.mark.parametrize("flag", ["yes", "Y", "1", "TRUE"])
    def test_do_not_score_flag(self, state, connector, flag):
        state.seed_members(
            LIST_ID,
            [SeedMember("a@example.com", merge_fields={"NOSCORE": flag}, last_changed=BASE)],
        )
        assert read_all(connector)[0].do_not_score is True

    def test_since_reads_later_changes_and_the_watermark_second(self, state, connector):
        seed(state, 10)
        records = read_all(connector, BASE + timedelta(seconds=6))
        assert [r.identities["email"] for r in records] == [
            f"p{i}@example.com" for i in (6, 7, 8, 9)
        ]

    def test_members_sharing_one_second_are_each_read_once(self, state, server):
        seed(state, 2500, step=0)
        connector = make_connector(server, page_size=1000)
        records = read_all(connector)
        assert len(records) == len({r.id for r in records}) == 2500

    def test_writing_each_page_before_the_next_skips_nobody(self, state, connector):
        seed(state, 3000, step=0.25)
        read_ids: list[str] = []
        for page in connector.read_changed(None):
            read_ids.extend(record.id for record in page)
            report = connector.write_results([write_for(r.id) for r in page])
            assert not report.errors
        assert len(read_ids) == len(set(read_ids)) == 3000

    def test_changes_after_the_read_started_are_left_for_the_next_run(self, state, connector):
        seed(state, 1500)
        pages = connector.read_changed(None)
        first = next(pages)
        state.seed_members(LIST_ID, [SeedMember("late@example.com")])
        rest = [record for page in pages for record in page]
        emails = {r.identities["email"] for r in first + rest}
        assert len(emails) == 1500
        assert "late@example.com" not in emails

    def test_empty_list_yields_nothing(self, state, connector):
        assert read_all(connector) == []
        assert connector.api_calls == 1


class TestWriteResults:
    def test_writes_score_fields_and_blanks(self, state, connector):
        seed(state, 2)
        read_all(connector)
        first, second = (subscriber_hash(f"p{i}@example.com") for i in range(2))
        report = connector.write_results(
            [
                write_for(first),
                write_for(second, status="unscored", score=None, effective=54.0, segment="mid"),
            ]
        )
        assert report.written == [first, second]
        assert report.errors == []
        assert report.api_calls == 1
        assert merge_fields(state, "p0@example.com") == {
            "SCORE": 71.5,
            "SCORESTAT": "scored",
            "FAIRSCORE": 71.5,
            "SCORESEG": "high",
        }
        blank = merge_fields(state, "p1@example.com")
        assert blank["SCORE"] == ""
        assert blank["SCORE"] != 0
        assert blank["FAIRSCORE"] == 54.0

    def test_a_raw_score_is_never_written_for_a_non_scored_status(self, state, connector):
        seed(state, 1)
        read_all(connector)
        member = subscriber_hash("p0@example.com")
        connector.write_results([write_for(member, status="unavailable", score=12.0)])
        assert merge_fields(state, "p0@example.com")["SCORE"] == ""

    def test_opted_out_is_the_erasure(self, state, connector):
        seed(state, 1)
        read_all(connector)
        member = subscriber_hash("p0@example.com")
        connector.write_results([write_for(member)])
        erasure = write_for(member, status="opted_out", score=None, effective=None, segment=None)
        report = connector.write_results([erasure])
        assert report.written == [member]
        assert merge_fields(state, "p0@example.com") == {
            "SCORE": "",
            "SCORESTAT": "opted_out",
            "FAIRSCORE": "",
            "SCORESEG": "",
        }

    def test_optional_fields_when_configured(self, state, server):
        for tag in ("SCOREWHY", "SCOREPOL", "SCOREAT"):
            state.add_merge_field(LIST_ID, tag, MergeFieldType.TEXT)
        seed(state, 1)
        mapping = {"explanation": "SCOREWHY", "policy": "SCOREPOL", "evaluated_at": "SCOREAT"}
        connector = make_connector(server, fields=mapping)
        read_all(connector)
        connector.write_results([write_for(subscriber_hash("p0@example.com"))])
        fields = merge_fields(state, "p0@example.com")
        assert fields["SCOREPOL"] == "support-queue v3"
        assert fields["SCOREAT"] == "2026-01-02T03:04:05+00:00"
        assert fields["SCOREWHY"].startswith("Scored 71.5")

    def test_per_member_errors_go_in_the_report(self, state, connector):
        seed(state, 500)
        read_all(connector)
        state.reject_member("p7@example.com", "p7@example.com was refused", "ERROR_BLOCKED")
        report = connector.write_results(
            [write_for(subscriber_hash(f"p{i}@example.com")) for i in range(500)]
        )
        assert len(report.written) == 499
        (error,) = report.errors
        assert error.record_id == subscriber_hash("p7@example.com")
        assert error.code == "ERROR_BLOCKED"
        assert "p7@example.com" not in error.message
        assert report.api_calls == 1

    def test_member_not_on_the_list_is_an_error_and_not_created(self, state, connector):
        report = connector.write_results([write_for(subscriber_hash("ghost@example.com"))])
        assert report.written == []
        assert report.errors[0].code == "not_on_list"
        assert state.member_count(LIST_ID) == 0
        assert state.call_count(MailchimpEndpoint.BATCH_MEMBERS) == 0

    def test_member_not_read_yet_is_looked_up_first(self, state, connector):
        seed(state, 1)
        report = connector.write_results([write_for(subscriber_hash("p0@example.com"))])
        assert report.written == [subscriber_hash("p0@example.com")]
        assert report.api_calls == 2

    def test_member_removed_since_the_read_is_an_error_not_a_new_member(self, state, connector):
        seed(state, 2)
        read_all(connector)
        state.remove_member(LIST_ID, "p0@example.com")
        report = connector.write_results(
            [write_for(subscriber_hash(f"p{i}@example.com")) for i in range(2)]
        )
        assert report.written == [subscriber_hash("p1@example.com")]
        assert [e.record_id for e in report.errors] == [subscriber_hash("p0@example.com")]
        assert state.member(LIST_ID, "p0@example.com") is None

    def test_more_than_one_batch_is_split_into_calls_of_500(self, state, connector):
        seed(state, 1200)
        records = read_all(connector)
        report = connector.write_results([write_for(r.id) for r in records])
        assert len(report.written) == 1200
        assert report.api_calls == 3

    def test_10000_records_cost_10_reads_and_20_writes(self, state, connector):
        seed(state, 10_000, step=0.1)
        written = 0
        for page in connector.read_changed(None):
            for start in range(0, len(page), connector.max_batch):
                batch = page[start : start + connector.max_batch]
                written += len(connector.write_results([write_for(r.id) for r in batch]).written)
        assert written == 10_000
        assert state.call_count(MailchimpEndpoint.LIST_MEMBERS) == 10
        assert state.call_count(MailchimpEndpoint.BATCH_MEMBERS) == 20
        assert connector.api_calls == state.call_count() == 30

    def test_whole_call_failure_raises(self, state, connector):
        seed(state, 1)
        read_all(connector)
        state.inject_fault(Fault(503, endpoint=MailchimpEndpoint.BATCH_MEMBERS))
        with pytest.raises(TransientUpstreamError):
            connector.write_results([write_for(subscriber_hash("p0@example.com"))])


class TestNeverResubscribe:
    def test_no_write_ever_tries_to_subscribe(self, state, connector):
        seed(state, 3, status=MemberStatus.UNSUBSCRIBED)
        seed(state, 3, status=MemberStatus.CLEANED, start=3)
        seed(state, 3, start=6)
        records = read_all(connector)
        connector.write_results([write_for(r.id) for r in records])
        connector.write_results(
            [write_for(r.id, "opted_out", None, None, None) for r in records[:4]]
        )
        connector.upsert_member_fields("p0@example.com", {"SCORE": ""})
        connector.set_tags("p3@example.com", active=["scored"])
        assert state.subscribe_attempts == 0
        assert state.member(LIST_ID, "p0@example.com")["status"] == "unsubscribed"
        assert state.member(LIST_ID, "p3@example.com")["status"] == "cleaned"


class TestErrorTranslation:
    def test_compliance_state_answer(self, state, connector):
        seed(state, 1)
        state.inject_fault(
            Fault(400, endpoint=MailchimpEndpoint.PUT_MEMBER, title="Member In Compliance State")
        )
        with pytest.raises(ComplianceStateError) as caught:
            connector.upsert_member_fields("p0@example.com", {"SCORE": 1})
        assert caught.value.record_id == subscriber_hash("p0@example.com")
        assert caught.value.code == "compliance_state"

    def test_empty_body_429_is_transient_with_retry_after(self, state, connector):
        state.inject_fault(Fault(429, retry_after=7))
        with pytest.raises(TransientUpstreamError) as caught:
            connector.get_member("p0@example.com")
        assert caught.value.retry_after == 7.0

    def test_empty_body_503_is_transient(self, state, connector):
        state.inject_fault(Fault(503, endpoint=MailchimpEndpoint.LIST_MEMBERS))
        with pytest.raises(TransientUpstreamError):
            read_all(connector)

    def test_empty_body_403_is_transient(self, state, connector):
        state.inject_fault(Fault(403))
        with pytest.raises(TransientUpstreamError):
            connector.ping()

    def test_problem_429_is_transient(self, state, connector):
        state.inject_fault(Fault(429, title="Too Many Requests", detail="slow down"))
        with pytest.raises(TransientUpstreamError) as caught:
            connector.ping()
        assert "Too Many Requests" in caught.value.message

    def test_rejected_member_is_record_rejected_without_the_address(self, state, connector):
        seed(state, 1)
        state.reject_member("p0@example.com", "p0@example.com looks fake")
        with pytest.raises(RecordRejectedError) as caught:
            connector.upsert_member_fields("p0@example.com", {"SCORE": 1})
        assert "p0@example.com" not in caught.value.message
        assert caught.value.record_id == subscriber_hash("p0@example.com")


class TestGetMember:
    def test_found(self, state, connector):
        state.seed_members(LIST_ID, [SeedMember("a@example.com", merge_fields={"SCORE": 3})])
        member = connector.get_member("A@example.com")
        assert member is not None
        assert member.id == subscriber_hash("a@example.com")
        assert member.status is MailchimpMemberStatus.SUBSCRIBED
        assert member.merge_fields["SCORE"] == 3

    def test_not_on_the_list_is_none(self, state, connector):
        assert connector.get_member("nobody@example.com") is None


class TestUpsertMemberFields:
    def test_updates_an_existing_member(self, state, connector):
        seed(state, 1)
        member = connector.upsert_member_fields("p0@example.com", {"SCORESTAT": "opted_out"})
        assert member.merge_fields["SCORESTAT"] == "opted_out"
        assert merge_fields(state, "p0@example.com")["SCORESTAT"] == "opted_out"

    def test_never_creates_a_member(self, state, connector):
        with pytest.raises(RecordRejectedError):
            connector.upsert_member_fields("new@example.com", {"SCORE": ""})
        assert state.member_count(LIST_ID) == 0


class TestSetTags:
    def test_adds_and_removes_tags_while_syncing(self, state, connector):
        seed(state, 1)
        connector.set_tags("p0@example.com", active=["scored", "high"])
        connector.set_tags("p0@example.com", active=["mid"], inactive=["high"])
        member = connector.get_member("p0@example.com")
        assert member is not None
        assert set(member.tags) == {"scored", "mid"}
        assert state.tag_syncing_flags == [True, True]

    def test_member_not_on_the_list(self, state, connector):
        with pytest.raises(RecordRejectedError) as caught:
            connector.set_tags("nobody@example.com", active=["x"])
        assert caught.value.code == "not_found"


class TestEnsureMergeFields:
    def test_creates_only_the_missing_fields(self, server):
        fresh = MailchimpState(API_KEY)
        fresh.add_list(LIST_ID)
        fresh.add_merge_field(LIST_ID, "SCORE", MergeFieldType.NUMBER)
        with LoopbackServer(create_mailchimp_app(fresh)) as other:
            connector = make_connector(other)
            assert connector.ensure_merge_fields() == ["SCORESTAT", "FAIRSCORE", "SCORESEG"]
            assert connector.ensure_merge_fields() == []
        assert fresh.merge_field_tags(LIST_ID)[-3:] == ["SCORESTAT", "FAIRSCORE", "SCORESEG"]


class TestConcurrency:
    def test_threads_never_exceed_ten_connections(self, state, connector):
        seed(state, 30)
        state.latency = 0.1
        barrier = threading.Barrier(30)
        failures: list[BaseException] = []

        def lookup(index: int) -> None:
            barrier.wait()
            try:
                assert connector.get_member(f"p{index}@example.com") is not None
            except BaseException as exc:  # collected and asserted on below
                failures.append(exc)

        threads = [threading.Thread(target=lookup, args=(i,)) for i in range(30)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failures == []
        assert state.rejected_over_limit == 0
        assert 1 < state.max_in_flight <= 10
        assert connector.api_calls == 30
