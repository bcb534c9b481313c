"""The Salesforce connector against the loopback emulator, through real simple-salesforce."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests
from pydantic import ValidationError

from connectors.downstream import ScoreWrite
from connectors.errors import (
    BadCredentialsError,
    PermanentUpstreamError,
    QuotaExhaustedError,
    TransientUpstreamError,
)
from connectors.salesforce import (
    ApiUsage,
    SalesforceConfig,
    SalesforceConnector,
    SalesforceFieldMap,
)
from emulators.salesforce import (
    DEFAULT_SESSION_ID,
    Endpoint,
    Fault,
    SalesforceState,
    create_salesforce_app,
    salesforce_id,
)
from emulators.server import LoopbackServer

EVALUATED = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
SCORE_FIELDS = (
    "Influence_Score__c",
    "Influence_Effective_Score__c",
    "Influence_Segment__c",
)


@pytest.fixture
def state() -> SalesforceState:
    return SalesforceState()


@pytest.fixture
def server(state: SalesforceState) -> Iterator[LoopbackServer]:
    with LoopbackServer(create_salesforce_app(state)) as running:
        yield running


def _config(server: LoopbackServer, **overrides) -> SalesforceConfig:
    values = {
        "instance_url": server.url,
        "session_id": DEFAULT_SESSION_ID,
        "bulk_poll_seconds": 0,
        **overrides,
    }
    return SalesforceConfig.model_validate(values)


@pytest.fixture
def connector(server: LoopbackServer) -> Iterator[SalesforceConnector]:
    with SalesforceConnector(_config(server)) as made:
        yield made


def _scored(record_id: str, score: float = 72.0) -> ScoreWrite:
    return ScoreWrite(
        record_id=record_id,
        status="scored",
        score=score,
        effective_score=score,
        segment="high",
        explanation="Scored 72 by klout.",
        policy="support-queue v3",
        evaluated_at=EVALUATED,
    )


def _unscored(record_id: str) -> ScoreWrite:
    return ScoreWrite(
        record_id=record_id,
        status="unscored",
        score=None,
        effective_score=54.0,
        segment="mid",
        explanation="No score; treated as the median (54) under policy support-queue v3.",
        policy="support-queue v3",
        evaluated_at=EVALUATED,
    )


def _erasure(record_id: str) -> ScoreWrite:
    return ScoreWrite(
        record_id=record_id,
        status="opted_out",
        score=None,
        effective_score=None,
        segment=None,
        explanation="This person has chosen not to be scored.",
        policy="support-queue v3",
        evaluated_at=EVALUATED,
    )


def _contacts(state: SalesforceState, count: int) -> list[str]:
    return state.seed(
        "Contact",
        (
            {
                "Email": f"p{i}@example.com",
                "Twitter_Handle__c": f"handle{i}",
                "Influence_Score__c": 1.0,
            }
            for i in range(count)
        ),
    )


class TestConfig:
    def test_http_is_refused_for_a_non_loopback_host(self):
        with pytest.raises(ValidationError, match="loopback"):
            SalesforceConfig(instance_url="http://acme.my.salesforce.com", session_id="x")

    @pytest.mark.parametrize(
        "url", ["http://localhost:8080", "http://127.0.0.1:9", "http://[::1]:9"]
    )
    def test_http_is_allowed_for_loopback_hosts(self, url):
        assert SalesforceConfig(instance_url=url, session_id="x").instance_url == url

    def test_url_with_a_path_is_refused(self):
        with pytest.raises(ValidationError, match="path"):
            SalesforceConfig(instance_url="https://acme.my.salesforce.com/x", session_id="x")

    def test_unknown_keys_and_unsafe_field_names_are_refused(self):
        with pytest.raises(ValidationError):
            SalesforceConfig.model_validate(
                {"instance_url": "https://a.example", "session_id": "x", "color": "red"}
            )
        with pytest.raises(ValidationError):
            SalesforceFieldMap(score="Score__c FROM User --")

    def test_session_id_is_secret(self):
        config = SalesforceConfig(instance_url="https://a.example", session_id="00Dsecret")
        assert "00Dsecret" not in repr(config)


class TestLoopbackScheme:
    def test_library_https_urls_reach_the_http_emulator(self, state, connector):
        connector.query("SELECT Id FROM Contact")
        assert state.calls(Endpoint.QUERY) == 1

    def test_localhost_name_works_too(self, state, server):
        config = _config(server, instance_url=f"http://localhost:{server.port}")
        with SalesforceConnector(config) as connector:
            assert connector.query("SELECT Id FROM Lead").total_size == 0
        assert state.total_calls == 1

    def test_caller_session_is_used_and_left_open(self, state, server):
        session = requests.Session()
        connector = SalesforceConnector(_config(server), session=session)
        connector.query("SELECT Id FROM Contact")
        connector.close()
        instance_adapter = session.get_adapter(f"https://127.0.0.1:{server.port}/x")
        assert instance_adapter is not session.get_adapter("https://example.com/")
        assert connector.query("SELECT Id FROM Contact").total_size == 0
        session.close()


class TestQuery:
    def test_pages_chain_through_next_records_url(self, state, connector):
        _contacts(state, 2100)
        first = connector.query("SELECT Id FROM Contact ORDER BY SystemModstamp, Id")
        second = connector.query_more(first.next_records_url)
        assert (len(first.records), first.total_size) == (2000, 2100)
        assert (len(second.records), second.next_records_url) == (100, None)


class TestReadChanged:
    def test_reads_all_pages_of_both_objects_oldest_first(self, state, connector):
        contacts = _contacts(state, 4500)
        leads = state.seed("Lead", ({"Email": f"l{i}@example.com"} for i in range(300)))
        pages = list(connector.read_changed(None))
        records = [record for page in pages for record in page]
        keys = [(record.modified_at, record.id) for record in records]
        assert [len(page) for page in pages] == [2000, 2000, 800]
        assert keys == sorted(keys)
        assert {record.id for record in records} == set(contacts) | set(leads)
        assert state.calls(Endpoint.QUERY) == 2
        assert state.calls(Endpoint.QUERY_MORE) == 2

    def test_maps_identities_and_skips_blank_ones(self, state, connector):
        state.add_record("Contact", {"Email": " Ann@Example.com ", "Twitter_Handle__c": ""})
        (record,) = next(connector.read_changed(None))
        assert record.identities == {"email": "Ann@Example.com"}
        assert record.do_not_score is False

    def test_do_not_score_ors_checkbox_and_individual_profiling(self, state, server):
        profiling = state.add_record("Individual", {"HasOptedOutProfiling": True})
        checked = state.add_record("Contact", {"Do_Not_Score__c": True})
        linked = state.add_record("Lead", {"IndividualId": profiling})
        plain = state.add_record("Contact", {"Email": "c@example.com"})
        fields = SalesforceFieldMap(
            do_not_score=("Do_Not_Score__c", "Individual.HasOptedOutProfiling")
        )
        with SalesforceConnector(_config(server, fields=fields)) as connector:
            flags = {r.id: r.do_not_score for page in connector.read_changed(None) for r in page}
        assert flags == {checked: True, linked: True, plain: False}

    def test_incremental_read_returns_only_records_changed_since_watermark(self, state, connector):
        old = datetime(2026, 1, 1, tzinfo=UTC)
        first, second = state.seed(
            "Contact", [{"Email": "a@x.io"}, {"Email": "b@x.io"}], modstamp=old
        )
        watermark = next(connector.read_changed(None))[-1].modified_at
        report = connector.write_results([_scored(second)])
        changed = [
            record
            for page in connector.read_changed(watermark + timedelta(seconds=1))
            for record in page
        ]
        assert report.written == [second]
        assert [record.id for record in changed] == [second]
        assert changed[0].modified_at > watermark
        assert first not in [record.id for record in changed]

    def test_records_at_the_watermark_instant_are_read_again(self, state, connector):
        stamp = datetime(2026, 3, 1, 12, 0, 0, 250_000, tzinfo=UTC)
        ids = state.seed("Contact", [{}, {}], modstamp=stamp)
        state.add_record("Contact", {}, modstamp=stamp - timedelta(milliseconds=1))
        again = [record.id for page in connector.read_changed(stamp) for record in page]
        assert again == ids

    def test_naive_since_is_refused(self, connector):
        with pytest.raises(ValueError, match="timezone"):
            next(connector.read_changed(datetime(2026, 1, 1)))


class TestWriteResultsCollections:
    def test_writes_every_result_field(self, state, connector):
        (record_id,) = _contacts(state, 1)
        report = connector.write_results([_scored(record_id)])
        record = state.record("Contact", record_id)
        assert report.written == [record_id]
        assert report.errors == []
        assert record["Influence_Score__c"] == 72.0
        assert record["Influence_Status__c"] == "scored"
        assert record["Influence_Effective_Score__c"] == 72.0
        assert record["Influence_Segment__c"] == "high"
        assert record["Influence_Policy__c"] == "support-queue v3"
        assert record["Influence_Evaluated_At__c"] == EVALUATED
        assert state.calls(Endpoint.COLLECTIONS_UPDATE) == 1

    def test_unscored_leaves_score_blank_never_zero(self, state, connector):
        (record_id,) = _contacts(state, 1)
        connector.write_results([_unscored(record_id)])
        record = state.record("Contact", record_id)
        assert record["Influence_Score__c"] is None
        assert (record["Influence_Effective_Score__c"], record["Influence_Segment__c"]) == (
            54.0,
            "mid",
        )

    def test_erasure_blanks_score_fields_and_sets_opted_out(self, state, connector):
        (record_id,) = _contacts(state, 1)
        connector.write_results([_scored(record_id)])
        connector.write_results([_erasure(record_id)])
        record = state.record("Contact", record_id)
        assert [record[name] for name in SCORE_FIELDS] == [None, None, None]
        assert record["Influence_Status__c"] == "opted_out"

    def test_opted_out_write_carrying_a_score_is_still_blanked(self, state, connector):
        (record_id,) = _contacts(state, 1)
        careless = ScoreWrite(record_id, "opted_out", 90.0, 90.0, "high", "x", "p v1", EVALUATED)
        connector.write_results([careless])
        assert [state.record("Contact", record_id)[name] for name in SCORE_FIELDS] == [None] * 3

    def test_long_explanation_is_cut_to_the_field_length(self, state, connector):
        (record_id,) = _contacts(state, 1)
        long_write = ScoreWrite(record_id, "scored", 1.0, 1.0, "low", "x" * 400, "p v1", EVALUATED)
        report = connector.write_results([long_write])
        assert report.errors == []
        assert len(str(state.record("Contact", record_id)["Influence_Explanation__c"])) == 255

    def test_per_record_errors_are_reported_not_raised(self, state, connector):
        good, locked, rejected = _contacts(state, 3)
        state.reject_record(locked, "UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access")
        state.reject_record(rejected, "FIELD_CUSTOM_VALIDATION_EXCEPTION", "no scores here")
        missing = salesforce_id("00Q", 77)
        report = connector.write_results([_scored(i) for i in (good, locked, rejected, missing)])
        errors = {error.record_id: (error.code, error.transient) for error in report.errors}
        assert report.written == [good]
        assert errors == {
            locked: ("UNABLE_TO_LOCK_ROW", True),
            rejected: ("FIELD_CUSTOM_VALIDATION_EXCEPTION", False),
            missing: ("INVALID_CROSS_REFERENCE_KEY", False),
        }

    def test_id_of_another_object_is_reported_without_a_call(self, state, connector):
        report = connector.write_results([_scored("001000000000001AAA")])
        assert [error.code for error in report.errors] == ["MALFORMED_ID"]
        assert (report.api_calls, state.total_calls) == (0, 0)

    def test_contacts_and_leads_share_collection_calls(self, state, connector):
        contacts = _contacts(state, 150)
        leads = state.seed("Lead", ({} for _ in range(150)))
        report = connector.write_results([_scored(i) for i in contacts + leads])
        assert len(report.written) == 300
        assert report.api_calls == 2
        assert state.record("Lead", leads[-1])["Influence_Score__c"] == 72.0

    def test_10000_records_take_50_collection_calls(self, state, server):
        ids = _contacts(state, 10_000)
        with SalesforceConnector(_config(server, bulk_threshold=10_000)) as connector:
            report = connector.write_results([_unscored(i) for i in ids])
        assert len(report.written) == 10_000
        assert report.api_calls == 50
        assert state.calls(Endpoint.COLLECTIONS_UPDATE) == 50


class TestWriteResultsBulk:
    def test_large_batch_goes_through_bulk_with_per_record_failures(self, state, connector):
        ids = _contacts(state, 2500)
        state.reject_record(ids[7], "FIELD_CUSTOM_VALIDATION_EXCEPTION", "no scores here")
        writes = [_unscored(i) for i in ids[:1000]] + [_erasure(i) for i in ids[1000:]]
        report = connector.write_results(writes)
        assert state.calls(Endpoint.COLLECTIONS_UPDATE) == 0
        assert state.calls(Endpoint.BULK_CREATE_JOB) == 1
        assert len(report.written) == 2499
        assert [(e.record_id, e.code) for e in report.errors] == [
            (ids[7], "FIELD_CUSTOM_VALIDATION_EXCEPTION")
        ]
        unscored, erased = state.record("Contact", ids[0]), state.record("Contact", ids[2000])
        assert (unscored["Influence_Score__c"], unscored["Influence_Effective_Score__c"]) == (
            None,
            54.0,
        )
        assert [erased[name] for name in SCORE_FIELDS] == [None, None, None]
        assert erased["Influence_Status__c"] == "opted_out"
        assert erased["Influence_Evaluated_At__c"] == EVALUATED

    def test_10000_records_take_a_handful_of_calls(self, state, connector):
        ids = _contacts(state, 10_000)
        report = connector.write_results(
            [_scored(i, score=float(n % 100)) for n, i in enumerate(ids)]
        )
        assert len(report.written) == 10_000
        assert report.api_calls <= 8
        assert state.total_calls == report.api_calls
        assert state.record("Contact", ids[9999])["Influence_Score__c"] == 99.0

    def test_one_job_per_object(self, state, connector):
        contacts = _contacts(state, 1500)
        leads = state.seed("Lead", ({} for _ in range(1500)))
        report = connector.write_results([_scored(i) for i in contacts + leads])
        assert len(report.written) == 3000
        assert state.calls(Endpoint.BULK_CREATE_JOB) == 2

    def test_bad_field_mapping_fails_the_job_as_permanent(self, state, server):
        ids = _contacts(state, 5)
        fields = SalesforceFieldMap(segment="Missing_Segment__c")
        with (
            SalesforceConnector(_config(server, fields=fields, bulk_threshold=1)) as connector,
            pytest.raises(PermanentUpstreamError, match="Field name not found"),
        ):
            connector.write_results([_scored(i) for i in ids])


class TestErrorTranslation:
    def test_bad_session_is_bad_credentials(self, state, server):
        with (
            SalesforceConnector(_config(server, session_id="expired")) as connector,
            pytest.raises(BadCredentialsError, match="INVALID_SESSION_ID"),
        ):
            connector.query("SELECT Id FROM Contact")

    def test_request_limit_exceeded_is_quota_not_permission(self, state, connector):
        state.api_limit, state.api_used = 10, 10
        with pytest.raises(QuotaExhaustedError) as caught:
            connector.query("SELECT Id FROM Contact")
        assert caught.value.reset_at is not None
        assert caught.value.upstream == "salesforce"

    def test_concurrent_request_limit_is_transient(self, state, connector):
        state.inject_fault(Fault.CONCURRENT_LIMIT)
        with pytest.raises(TransientUpstreamError):
            connector.query("SELECT Id FROM Contact")

    @pytest.mark.parametrize("fault", [Fault.SERVER_ERROR, Fault.SERVICE_UNAVAILABLE])
    def test_5xx_is_transient(self, state, connector, fault):
        state.inject_fault(fault)
        with pytest.raises(TransientUpstreamError):
            connector.write_results([_scored(salesforce_id("003", 1))])

    def test_refused_connection_is_transient(self, server, state):
        config = _config(server)
        server.stop()
        with SalesforceConnector(config) as connector, pytest.raises(TransientUpstreamError):
            connector.query("SELECT Id FROM Contact")

    def test_invalid_query_is_permanent(self, connector):
        with pytest.raises(PermanentUpstreamError, match="INVALID_FIELD"):
            connector.query("SELECT Nope__c FROM Contact")

    def test_unknown_identity_field_fails_the_read_as_permanent(self, server):
        fields = SalesforceFieldMap(identities={"twitter": "Twitter__c"})
        with (
            SalesforceConnector(_config(server, fields=fields)) as connector,
            pytest.raises(PermanentUpstreamError),
        ):
            list(connector.read_changed(None))


class TestQuotaGuard:
    def test_last_usage_is_exposed(self, state, connector):
        state.api_limit = 5000
        connector.query("SELECT Id FROM Contact")
        assert connector.api_usage == ApiUsage(used=1, total=5000)
        assert connector.api_usage.remaining == 4999

    def test_stops_before_calling_once_the_allocation_is_spent(self, state, connector):
        state.api_limit = 2
        connector.query("SELECT Id FROM Contact")
        connector.query("SELECT Id FROM Contact")
        with pytest.raises(QuotaExhaustedError):
            connector.query("SELECT Id FROM Contact")
        assert state.total_calls == 2
        assert connector.api_calls == 2

    def test_reserve_is_left_for_other_integrations(self, state, server):
        state.api_limit = 10
        with SalesforceConnector(_config(server, api_reserve=8)) as connector:
            connector.query("SELECT Id FROM Contact")
            connector.query("SELECT Id FROM Contact")
            with pytest.raises(QuotaExhaustedError):
                connector.query("SELECT Id FROM Contact")
        assert state.api_used == 2

    def test_probes_again_after_the_recheck_interval(self, state, server):
        state.api_limit = 1
        with SalesforceConnector(_config(server, quota_recheck=timedelta(0))) as connector:
            connector.query("SELECT Id FROM Contact")
            state.api_limit = 100
            assert connector.query("SELECT Id FROM Contact").total_size == 0
        assert state.total_calls == 2


class TestLimits:
    def test_reads_daily_api_requests(self, state, connector):
        state.api_limit, state.api_used = 15_000, 100
        assert connector.limits() == ApiUsage(used=101, total=15_000)
        assert state.calls(Endpoint.LIMITS) == 1


class TestApiCalls:
    def test_counts_every_call_since_creation(self, state, connector):
        _contacts(state, 2500)
        list(connector.read_changed(None))
        connector.limits()
        assert connector.api_calls == state.total_calls == 4
