"""ZohoConnector against the Zoho CRM emulator over loopback HTTP."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from connectors.downstream import DownstreamConnector, ScoreWrite
from connectors.errors import (
    BadCredentialsError,
    NoCapacityError,
    PermanentUpstreamError,
    QuotaExhaustedError,
    TransientUpstreamError,
    UpstreamProtocolError,
)
from connectors.zoho import ZohoConfig, ZohoConnector, ZohoFieldMapping
from emulators.server import LoopbackServer
from emulators.zoho import ZohoState, create_zoho_app

START = 1_790_000_000.0
EVALUATED = datetime(2026, 11, 2, 10, 15, 30, 123456, tzinfo=UTC)


class FakeClock:
    """Seconds that move only when told to; shared by the emulator and the connector."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class CountingApp:
    """An ASGI wrapper that counts the HTTP requests reaching the app it wraps."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.requests = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.requests += 1
        await self.app(scope, receive, send)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def state(clock: FakeClock) -> ZohoState:
    return ZohoState(clock=clock)


@pytest.fixture
def server(state: ZohoState) -> Iterator[LoopbackServer]:
    with LoopbackServer(create_zoho_app(state)) as running:
        yield running


def make_config(accounts_url: str, **changes: Any) -> ZohoConfig:
    settings: dict[str, Any] = {
        "client_id": "zoho-client-id",
        "client_secret": "zoho-client-secret",
        "refresh_token": "1000.zoho-refresh-token",
        "accounts_url": accounts_url,
        "backoff_initial": timedelta(milliseconds=10),
        "backoff_max": timedelta(milliseconds=50),
        "timeout": timedelta(seconds=10),
    }
    settings.update(changes)
    return ZohoConfig.model_validate(settings)


@pytest.fixture
def connect(server: LoopbackServer, clock: FakeClock) -> Iterator[Callable[..., ZohoConnector]]:
    made: list[ZohoConnector] = []

    def build(**changes: Any) -> ZohoConnector:
        connector = ZohoConnector(make_config(server.url, **changes), clock=clock)
        made.append(connector)
        return connector

    yield build
    for connector in made:
        connector.close()


@pytest.fixture
def connector(connect: Callable[..., ZohoConnector]) -> ZohoConnector:
    return connect()


def seed_people(state: ZohoState, count: int, **extra: object) -> list[str]:
    return state.seed(
        "Leads",
        ({"Last_Name": f"Person {i}", "Email": f"p{i}@example.org", **extra} for i in range(count)),
    )


def scored(record_id: str, score: float = 72.0) -> ScoreWrite:
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


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


class TestAccessToken:
    def test_many_calls_share_one_cached_token(
        self, connector: ZohoConnector, state: ZohoState
    ) -> None:
        for _ in range(20):
            connector.get_records()

        assert state.tokens_issued == 1
        assert connector.token_calls == 1
        assert connector.api_calls == 20

    def test_token_is_refreshed_shortly_before_it_expires(
        self, connector: ZohoConnector, state: ZohoState, clock: FakeClock
    ) -> None:
        connector.get_records()
        clock.advance(3600 - 6 * 60)
        connector.get_records()
        clock.advance(2 * 60)
        connector.get_records()

        assert state.tokens_issued == 2
        assert state.crm_calls == 3

    def test_invalid_token_is_refreshed_once_and_the_call_repeated(
        self, connector: ZohoConnector, state: ZohoState
    ) -> None:
        seed_people(state, 2)
        connector.get_records()
        state.revoke_tokens()

        page = connector.get_records()

        assert len(page.records) == 2
        assert state.tokens_issued == 2
        assert state.crm_calls == 3

    def test_token_still_refused_after_a_refresh_is_bad_credentials(
        self, state: ZohoState, clock: FakeClock
    ) -> None:
        other = ZohoState(clock=clock)
        with (
            LoopbackServer(create_zoho_app(state)) as accounts,
            LoopbackServer(create_zoho_app(other)) as api,
            ZohoConnector(make_config(accounts.url, api_domain=api.url), clock=clock) as zoho,
            pytest.raises(BadCredentialsError),
        ):
            zoho.get_records()

        assert state.tokens_issued == 2
        assert other.crm_calls == 2

    def test_the_api_domain_named_by_the_token_answer_is_called(
        self, state: ZohoState, clock: FakeClock
    ) -> None:
        accounts_app = CountingApp(create_zoho_app(state))
        api_app = CountingApp(create_zoho_app(state))
        with (
            LoopbackServer(accounts_app) as accounts,
            LoopbackServer(api_app) as api,
        ):
            state.api_domain = api.url
            with ZohoConnector(make_config(accounts.url), clock=clock) as zoho:
                zoho.get_records()
                zoho.get_records()

        assert accounts_app.requests == 1
        assert api_app.requests == 2

    def test_no_more_than_ten_tokens_are_asked_for_in_ten_minutes(
        self, connector: ZohoConnector, state: ZohoState, clock: FakeClock
    ) -> None:
        for _ in range(10):
            state.revoke_tokens()
            connector.get_records()
            clock.advance(10)
        state.revoke_tokens()

        with pytest.raises(NoCapacityError) as refused:
            connector.get_records()
        token_calls_when_refused = state.token_calls
        clock.advance(600)
        connector.get_records()

        assert token_calls_when_refused == 10
        assert refused.value.retry_after == pytest.approx(600 - 100)
        assert state.tokens_issued == 11

    def test_accounts_server_throttling_is_transient_and_not_repeated(
        self, connector: ZohoConnector, state: ZohoState, server: LoopbackServer
    ) -> None:
        with httpx.Client(base_url=server.url) as other_process:
            for _ in range(10):
                other_process.post(
                    "/oauth/v2/token",
                    data={
                        "grant_type": "refresh_token",
                        "client_id": "zoho-client-id",
                        "client_secret": "zoho-client-secret",
                        "refresh_token": "1000.zoho-refresh-token",
                    },
                )

        with pytest.raises(TransientUpstreamError) as throttled:
            connector.get_records()
        with pytest.raises(NoCapacityError):
            connector.get_records()

        assert throttled.value.retry_after == 600
        assert state.token_calls == 11

    def test_wrong_client_secret_is_bad_credentials(
        self, connect: Callable[..., ZohoConnector], state: ZohoState
    ) -> None:
        zoho = connect(client_secret="wrong")

        with pytest.raises(BadCredentialsError, match="invalid_client"):
            zoho.get_records()
        assert state.crm_calls == 0

    def test_threads_starting_together_share_one_token(
        self, connector: ZohoConnector, state: ZohoState
    ) -> None:
        barrier = threading.Barrier(8)

        def call() -> None:
            barrier.wait()
            connector.get_records()

        threads = [threading.Thread(target=call) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert state.tokens_issued == 1
        assert state.crm_calls == 8


class TestReadChanged:
    def test_reads_everything_in_pages_oldest_first(
        self, connect: Callable[..., ZohoConnector], state: ZohoState, clock: FakeClock
    ) -> None:
        first = seed_people(state, 250)
        clock.advance(30)
        second = seed_people(state, 200)
        zoho = connect()

        pages = list(zoho.read_changed(None))

        records = [record for page in pages for record in page]
        stamps = [record.modified_at for record in records]
        assert [len(page) for page in pages] == [200, 200, 50]
        assert [record.id for record in records] == [*first, *second]
        assert stamps == sorted(stamps)
        assert zoho.api_calls == 3

    def test_maps_identities_and_the_do_not_score_flag(
        self, connector: ZohoConnector, state: ZohoState
    ) -> None:
        flagged, plain, opted_out_of_email = state.seed(
            "Leads",
            [
                {
                    "Last_Name": "A",
                    "Email": "a@example.org",
                    "Twitter": "@ann",
                    "Do_Not_Score": True,
                },
                {"Last_Name": "B", "Email": " b@example.org ", "Twitter": ""},
                {"Last_Name": "C", "Email_Opt_Out": True},
            ],
        )

        (page,) = connector.read_changed(None)

        by_id = {record.id: record for record in page}
        assert by_id[flagged].identities == {"email": "a@example.org", "twitter": "@ann"}
        assert by_id[flagged].do_not_score is True
        assert by_id[plain].identities == {"email": "b@example.org"}
        assert by_id[plain].do_not_score is False
        assert by_id[opted_out_of_email].identities == {}
        assert by_id[opted_out_of_email].do_not_score is False
        assert by_id[plain].modified_at == datetime.fromtimestamp(START, UTC)

    def test_email_opt_out_counts_when_mapped_as_a_flag(
        self, connect: Callable[..., ZohoConnector], state: ZohoState
    ) -> None:
        (rid,) = state.seed("Leads", [{"Last_Name": "C", "Email_Opt_Out": True}])
        zoho = connect(fields=ZohoFieldMapping(do_not_score=("Do_Not_Score", "Email_Opt_Out")))

        ((record,),) = zoho.read_changed(None)

        assert record.id == rid
        assert record.do_not_score is True

    def test_incremental_read_skips_records_older_than_the_watermark_second(
        self, connector: ZohoConnector, state: ZohoState, clock: FakeClock
    ) -> None:
        old = seed_people(state, 5)
        clock.advance(60)
        recent = seed_people(state, 2)
        watermark = [record for page in connector.read_changed(None) for record in page][-1]
        clock.advance(60)
        state.edit("Leads", old[1], {"Twitter": "edited"})

        changed = [
            record for page in connector.read_changed(watermark.modified_at) for record in page
        ]

        assert [record.id for record in changed] == [*recent, old[1]]
        assert changed[-1].identities["twitter"] == "edited"

    def test_a_record_changed_later_in_the_watermarks_second_is_not_lost(
        self, connector: ZohoConnector, state: ZohoState, clock: FakeClock
    ) -> None:
        seed_people(state, 3)
        clock.advance(0.4)
        (late,) = seed_people(state, 1, Twitter="late")
        watermark = datetime.fromtimestamp(START + 0.2, UTC)

        changed = [record.id for page in connector.read_changed(watermark) for record in page]

        assert late in changed

    def test_nothing_changed_yields_no_page(
        self, connector: ZohoConnector, state: ZohoState, clock: FakeClock
    ) -> None:
        seed_people(state, 3)
        clock.advance(3600)

        pages = list(connector.read_changed(datetime.fromtimestamp(clock.now, UTC)))

        assert pages == []
        assert state.calls_by_endpoint["GET /crm/v8/Leads"] == 1

    def test_writing_back_between_pages_skips_no_record(
        self, connect: Callable[..., ZohoConnector], state: ZohoState, clock: FakeClock
    ) -> None:
        ids = seed_people(state, 450)
        zoho = connect(page_size=100)
        seen: list[str] = []

        for page in zoho.read_changed(None):
            seen.extend(record.id for record in page)
            clock.advance(1)
            report = zoho.write_results([scored(record.id) for record in page])
            assert report.errors == []

        assert sorted(seen) == sorted(ids)
        assert len(seen) == len(set(seen))


class TestWriteResults:
    def test_is_a_downstream_connector_writing_100_per_batch(
        self, connector: ZohoConnector
    ) -> None:
        downstream: DownstreamConnector = connector

        assert downstream.name == "zoho"
        assert downstream.max_batch == 100

    def test_a_hundred_records_take_one_call_and_keep_per_record_errors(
        self, connector: ZohoConnector, state: ZohoState
    ) -> None:
        ids = seed_people(state, 100)
        state.inject_record_error("Leads", ids[3], code="INVALID_DATA", message="bad value")
        state.inject_record_error("Leads", ids[50], code="RECORD_LOCKED", message="locked")

        report = connector.write_results([scored(rid) for rid in ids])

        errors = {error.record_id: error for error in report.errors}
        assert report.api_calls == 1
        assert len(report.written) == 98
        assert set(errors) == {ids[3], ids[50]}
        assert (errors[ids[3]].code, errors[ids[3]].transient) == ("INVALID_DATA", False)
        assert (errors[ids[50]].code, errors[ids[50]].transient) == ("RECORD_LOCKED", True)
        assert state.get("Leads", ids[0])["Influence_Score"] == 72.0
        assert "Influence_Score" not in state.get("Leads", ids[3])

    def test_writes_every_mapped_field_in_zoho_form(
        self, connector: ZohoConnector, state: ZohoState
    ) -> None:
        (rid,) = seed_people(state, 1)

        connector.write_results([scored(rid)])

        record = state.get("Leads", rid)
        assert record["Score_Status"] == "scored"
        assert record["Effective_Score"] == 72.0
        assert record["Score_Segment"] == "high"
        assert record["Score_Explanation"] == "Scored 72 by klout."
        assert record["Score_Policy"] == "support-queue v3"
        assert record["Score_Evaluated_At"] == "2026-11-02T10:15:30+00:00"

    def test_blank_scores_are_written_as_null_never_zero(
        self, connector: ZohoConnector, state: ZohoState
    ) -> None:
        (rid,) = seed_people(state, 1, Influence_Score=80.0, Effective_Score=80.0)
        unscored = ScoreWrite(
            record_id=rid,
            status="unscored",
            score=None,
            effective_score=54.0,
            segment="mid",
            explanation="No score from klout; treated as the median (54).",
            policy="support-queue v3",
            evaluated_at=EVALUATED,
        )

        report = connector.write_results([unscored])

        record = state.get("Leads", rid)
        assert report.written == [rid]
        assert record["Influence_Score"] is None
        assert record["Effective_Score"] == 54.0
        assert record["Score_Status"] == "unscored"

    def test_opted_out_write_erases_the_score_fields(
        self, connector: ZohoConnector, state: ZohoState
    ) -> None:
        (rid,) = seed_people(
            state, 1, Influence_Score=80.0, Effective_Score=80.0, Score_Segment="high"
        )
        erasure = ScoreWrite(
            record_id=rid,
            status="opted_out",
            score=None,
            effective_score=None,
            segment=None,
            explanation="This person has chosen not to be scored.",
            policy="support-queue v3",
            evaluated_at=EVALUATED,
        )

        report = connector.write_results([erasure])

        record = state.get("Leads", rid)
        assert report.written == [rid]
        assert record["Score_Status"] == "opted_out"
        assert record["Influence_Score"] is None
        assert record["Effective_Score"] is None
        assert record["Score_Segment"] is None

    def test_opted_out_write_never_carries_a_number(
        self, connector: ZohoConnector, state: ZohoState
    ) -> None:
        (rid,) = seed_people(state, 1)
        careless = ScoreWrite(
            record_id=rid,
            status="opted_out",
            score=61.0,
            effective_score=61.0,
            segment="high",
            explanation="This person has chosen not to be scored.",
            policy="support-queue v3",
            evaluated_at=EVALUATED,
        )

        connector.write_results([careless])

        record = state.get("Leads", rid)
        assert (record["Influence_Score"], record["Effective_Score"]) == (None, None)
        assert record["Score_Segment"] is None

    def test_unknown_record_id_is_a_record_error(
        self, connector: ZohoConnector, state: ZohoState
    ) -> None:
        (rid,) = seed_people(state, 1)

        report = connector.write_results([scored(rid), scored("4150868000099999999")])

        assert report.written == [rid]
        assert [(error.record_id, error.code) for error in report.errors] == [
            ("4150868000099999999", "INVALID_DATA")
        ]
        assert len(state.records("Leads")) == 1

    def test_ten_thousand_records_take_a_hundred_upsert_calls(
        self, connector: ZohoConnector, state: ZohoState
    ) -> None:
        ids = seed_people(state, 10_000)

        report = connector.write_results(
            [scored(rid, score=float(i % 100)) for i, rid in enumerate(ids)]
        )

        assert report.api_calls == 100
        assert len(report.written) == 10_000
        assert report.errors == []
        assert connector.api_calls == 100
        assert state.calls_by_endpoint["POST /crm/v8/Leads/upsert"] == 100
        assert state.get("Leads", ids[-1])["Influence_Score"] == 99.0

    def test_upsert_records_without_id_match_on_email(
        self, connector: ZohoConnector, state: ZohoState
    ) -> None:
        (rid,) = seed_people(state, 1)

        (result,) = connector.upsert_records([{"Email": "p0@example.org", "Twitter": "pzero"}])

        assert result.ok is True
        assert result.action == "update"
        assert result.record_id == rid
        assert state.get("Leads", rid)["Twitter"] == "pzero"


class TestRateLimits:
    def test_too_many_requests_is_retried_with_backoff(
        self, connector: ZohoConnector, state: ZohoState
    ) -> None:
        ids = seed_people(state, 3)
        state.inject_rate_limit(2)

        report = connector.write_results([scored(rid) for rid in ids])

        assert report.written == ids
        assert report.api_calls == 3
        assert state.rate_limited == 2

    def test_persistent_too_many_requests_becomes_a_transient_error(
        self, connect: Callable[..., ZohoConnector], state: ZohoState
    ) -> None:
        zoho = connect(max_attempts=3)
        state.inject_rate_limit(10)

        with pytest.raises(TransientUpstreamError, match="TOO_MANY_REQUESTS"):
            zoho.get_records()

        assert zoho.api_calls == 3
        assert state.rate_limited == 3

    def test_spent_daily_credits_are_quota_exhausted_and_not_retried(
        self, connector: ZohoConnector, state: ZohoState
    ) -> None:
        state.daily_credits = 1
        connector.get_records()

        with pytest.raises(QuotaExhaustedError):
            connector.get_records()

        assert connector.api_calls == 2


class TestConcurrency:
    def test_cap_holds_for_calls_from_many_threads(
        self, connect: Callable[..., ZohoConnector], state: ZohoState
    ) -> None:
        ids = seed_people(state, 120)
        state.latency = 0.05
        zoho = connect(max_concurrency=3)
        reports = []
        lock = threading.Lock()

        def write(chunk: list[str]) -> None:
            report = zoho.write_results([scored(rid) for rid in chunk])
            with lock:
                reports.append(report)

        threads = [
            threading.Thread(target=write, args=(ids[start : start + 10],))
            for start in range(0, 120, 10)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert state.max_in_flight <= 3
        assert state.rate_limited == 0
        assert sum(len(report.written) for report in reports) == 120

    def test_default_cap_fits_the_orgs_limit_of_ten(
        self, connector: ZohoConnector, state: ZohoState
    ) -> None:
        state.latency = 0.05
        pages = []

        def read() -> None:
            pages.append(connector.get_records())

        threads = [threading.Thread(target=read) for _ in range(25)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert len(pages) == 25
        assert state.max_in_flight <= 10
        assert state.rate_limited == 0


class TestErrorTranslation:
    def test_server_errors_become_transient_after_retries(
        self, connect: Callable[..., ZohoConnector], state: ZohoState
    ) -> None:
        zoho = connect(max_attempts=2)
        state.inject_fault(5, status=500, code="INTERNAL_ERROR", message="Internal Server Error")

        with pytest.raises(TransientUpstreamError, match="INTERNAL_ERROR"):
            zoho.get_records()

        assert zoho.api_calls == 2

    def test_unreachable_accounts_server_is_transient(self, clock: FakeClock) -> None:
        config = make_config(f"http://127.0.0.1:{free_port()}", max_attempts=2)

        with ZohoConnector(config, clock=clock) as zoho:
            with pytest.raises(TransientUpstreamError, match="unreachable"):
                zoho.get_records()

            assert zoho.token_calls == 2
            assert zoho.api_calls == 0

    def test_unknown_module_is_permanent(
        self, connect: Callable[..., ZohoConnector], state: ZohoState
    ) -> None:
        zoho = connect(module="Deals")

        with pytest.raises(PermanentUpstreamError, match="INVALID_MODULE"):
            zoho.get_records()

        assert zoho.api_calls == 1

    def test_too_large_upsert_is_refused_before_any_call(self, connector: ZohoConnector) -> None:
        with pytest.raises(ValueError, match="1 to 100"):
            connector.upsert_records([{"id": str(i)} for i in range(101)])

        assert connector.api_calls == 0

    def test_an_answer_that_is_not_json_is_a_protocol_error(
        self, state: ZohoState, server: LoopbackServer, clock: FakeClock
    ) -> None:
        def html(request: Request) -> PlainTextResponse:
            return PlainTextResponse("<html>maintenance</html>")

        broken = Starlette(routes=[Route("/crm/v8/Leads", html)])
        with (
            LoopbackServer(broken) as api,
            ZohoConnector(make_config(server.url, api_domain=api.url), clock=clock) as zoho,
            pytest.raises(UpstreamProtocolError),
        ):
            zoho.get_records()

    def test_a_client_passed_in_is_used_and_left_open(
        self, server: LoopbackServer, state: ZohoState, clock: FakeClock
    ) -> None:
        seed_people(state, 1)
        with httpx.Client() as client:
            with ZohoConnector(make_config(server.url), client, clock=clock) as zoho:
                page = zoho.get_records()

            assert len(page.records) == 1
            assert client.is_closed is False
