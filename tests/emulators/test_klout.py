"""The Klout v2 emulator over real HTTP on loopback: shapes, key check, limits, faults, counters."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import httpx
import pytest
from pydantic import ValidationError

from emulators.klout import (
    KloutFaults,
    KloutPerson,
    KloutSettings,
    KloutState,
    UnknownStyle,
    create_klout_app,
    max_in_window,
)
from emulators.server import LoopbackServer

API_KEY = "test-klout-key"
BAD_KEY_BODY = {
    "error": 403,
    "description": "Invalid or unprovided API key. All calls must have a key.",
}
#: limits that functional tests never reach
ROOMY = KloutSettings(rate_per_second=1000, daily_quota=100_000)
#: 2027-01-15 23:59:50 UTC: ten seconds before a quota day ends
START = datetime(2027, 1, 15, 23, 59, 50, tzinfo=UTC).timestamp()

PEOPLE = (
    KloutPerson(
        "jtimberlake",
        "635263",
        "26565946",
        92.8064108888354,
        day_change=0.11,
        week_change=0.07,
        month_change=0.19,
    ),
    KloutPerson("long_id_lena", "54887627490056592", "1188345023", 47.25),
    KloutPerson("quiet_quinn", "640017", "70112233", None),
    KloutPerson("private_pat", "712345", "55500121", 62.0, opted_out=True),
    KloutPerson("low_lou", "118472", "61290004", 4.5),
)


class FakeClock:
    """Epoch seconds that move only when a test says so."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="module")
def module_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="module")
def module_state(module_clock: FakeClock) -> KloutState:
    return KloutState(PEOPLE, api_key=API_KEY, settings=ROOMY, clock=module_clock)


@pytest.fixture(scope="module")
def module_server(module_state: KloutState) -> Iterator[LoopbackServer]:
    with LoopbackServer(create_klout_app(module_state)) as running:
        yield running


@pytest.fixture
def clock(module_clock: FakeClock) -> FakeClock:
    module_clock.now = START
    return module_clock


@pytest.fixture
def state(module_state: KloutState, clock: FakeClock) -> KloutState:
    """The module's emulator state, back to roomy limits, no faults and zero counters."""
    module_state.configure(ROOMY)
    module_state.set_faults(KloutFaults())
    module_state.reset_counters()
    return module_state


@pytest.fixture
def server(module_server: LoopbackServer, state: KloutState) -> LoopbackServer:
    return module_server


@pytest.fixture
def client(server: LoopbackServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, params={"key": API_KEY}, timeout=10) as http:
        yield http


def over_qps(response: httpx.Response) -> bool:
    return (
        response.status_code == 403
        and response.headers.get("x-mashery-error-code") == "ERR_403_DEVELOPER_OVER_QPS"
    )


def score_path(klout_id: str = "635263") -> str:
    return f"/v2/user.json/{klout_id}/score"


class TestKeyCheck:
    def test_missing_key_is_refused_with_the_json_403(self, server):
        with httpx.Client(base_url=server.url) as http:
            response = http.get("/v2/identity.json/twitter", params={"screenName": "jtimberlake"})
        assert response.status_code == 403
        assert response.headers["content-type"] == "application/json"
        assert response.json() == BAD_KEY_BODY

    def test_wrong_key_is_refused_with_the_json_403(self, client):
        response = client.get(score_path(), params={"key": "not-the-key"})
        assert response.status_code == 403
        assert response.json() == BAD_KEY_BODY
        assert "x-mashery-error-code" not in response.headers

    def test_refused_keys_are_counted_and_use_no_quota(self, client, state):
        for _ in range(3):
            client.get(score_path(), params={"key": "wrong"})
        stats = state.stats()
        assert stats["bad_key"] == 3
        assert stats["calls_total"] == 3
        assert stats["accepted"] == 0
        assert stats["quota_used"] == 0

    def test_key_is_checked_before_faults(self, client, state):
        state.set_faults(KloutFaults(service_busy_share=1.0))
        response = client.get(score_path(), params={"key": "wrong"})
        assert response.status_code == 403
        assert response.json() == BAD_KEY_BODY
        assert state.stats()["faults"]["service_busy"] == 0


class TestIdentityByScreenName:
    def test_known_person_gives_the_klout_id(self, client):
        response = client.get("/v2/identity.json/twitter", params={"screenName": "jtimberlake"})
        assert response.status_code == 200
        assert response.json() == {"id": "635263", "network": "ks"}

    def test_screen_name_is_case_insensitive(self, client):
        response = client.get("/v2/identity.json/twitter", params={"screenName": "JTimberLake"})
        assert response.json() == {"id": "635263", "network": "ks"}

    def test_long_klout_id_stays_an_exact_string(self, client):
        response = client.get("/v2/identity.json/twitter", params={"screenName": "long_id_lena"})
        assert response.json()["id"] == "54887627490056592"
        assert '"54887627490056592"' in response.text


class TestIdentityByTwitterId:
    def test_known_twitter_id_gives_the_klout_id(self, client):
        response = client.get("/v2/identity.json/tw/26565946")
        assert response.status_code == 200
        assert response.json() == {"id": "635263", "network": "ks"}


class TestReverseIdentity:
    def test_klout_id_gives_the_twitter_id(self, client):
        response = client.get("/v2/identity.json/klout/54887627490056592/tw")
        assert response.status_code == 200
        assert response.json() == {"id": "1188345023", "network": "tw"}


class TestUser:
    def test_user_document_has_nick_score_and_plural_deltas(self, client):
        response = client.get("/v2/user.json/635263")
        assert response.status_code == 200
        assert response.json() == {
            "kloutId": "635263",
            "nick": "jtimberlake",
            "score": {"score": 92.8064108888354, "bucket": "90-100"},
            "scoreDeltas": {"dayChange": 0.11, "weekChange": 0.07, "monthChange": 0.19},
        }

    def test_bucket_follows_the_score(self, client):
        assert client.get("/v2/user.json/54887627490056592").json()["score"]["bucket"] == "40-49"
        assert client.get("/v2/user.json/118472").json()["score"]["bucket"] == "1-9"


class TestScore:
    def test_score_document_has_singular_delta(self, client):
        response = client.get(score_path())
        assert response.status_code == 200
        assert response.json() == {
            "score": 92.8064108888354,
            "scoreDelta": {"dayChange": 0.11, "weekChange": 0.07, "monthChange": 0.19},
            "bucket": "90-100",
        }


class TestV1Klout:
    def test_known_users_get_their_kscore(self, client):
        response = client.get("/1/klout.json", params={"users": "jtimberlake,long_id_lena"})
        assert response.status_code == 200
        assert response.json() == {
            "status": 200,
            "users": [
                {"twitter_screen_name": "jtimberlake", "kscore": 92.8064108888354},
                {"twitter_screen_name": "long_id_lena", "kscore": 47.25},
            ],
        }

    def test_unknown_unscored_and_opted_out_users_are_left_out(self, client):
        response = client.get(
            "/1/klout.json", params={"users": "jtimberlake,quiet_quinn,private_pat,ghost"}
        )
        assert response.json()["users"] == [
            {"twitter_screen_name": "jtimberlake", "kscore": 92.8064108888354}
        ]

    @pytest.mark.parametrize("users", ["ghost", "quiet_quinn", "private_pat", ""])
    def test_no_known_user_gives_the_ambiguous_200(self, client, users):
        response = client.get("/1/klout.json", params={"users": users})
        assert response.status_code == 200
        assert response.json() == {"status": 200, "headers": [], "body": {"error": "No users"}}


#: one request per endpoint for: a stranger, a person without score, a person who opted out
UNKNOWN_REQUESTS: dict[str, list[tuple[str, dict[str, str]]]] = {
    "identity.twitter": [
        ("/v2/identity.json/twitter", {"screenName": name})
        for name in ("ghost", "quiet_quinn", "private_pat")
    ],
    "identity.tw": [
        (f"/v2/identity.json/tw/{twitter_id}", {}) for twitter_id in ("999", "70112233", "55500121")
    ],
    "identity.klout.tw": [
        (f"/v2/identity.json/klout/{klout_id}/tw", {}) for klout_id in ("999", "640017", "712345")
    ],
    "user": [(f"/v2/user.json/{klout_id}", {}) for klout_id in ("999", "640017", "712345")],
    "user.score": [(score_path(klout_id), {}) for klout_id in ("999", "640017", "712345")],
}


class TestUnknownAnswers:
    @pytest.mark.parametrize("style", list(UnknownStyle))
    @pytest.mark.parametrize("endpoint", list(UNKNOWN_REQUESTS))
    def test_stranger_unscored_and_opted_out_are_answered_identically(
        self, client, state, style, endpoint
    ):
        state.configure(KloutSettings(rate_per_second=1000, unknown_style=style))
        answers = set()
        for path, params in UNKNOWN_REQUESTS[endpoint]:
            response = client.get(path, params=params)
            answers.add((response.status_code, response.headers.get("content-type"), response.text))
        assert len(answers) == 1

    def test_no_users_style_is_a_200_error_body(self, client):
        response = client.get("/v2/identity.json/twitter", params={"screenName": "ghost"})
        assert response.status_code == 200
        assert response.json() == {"error": "No users"}

    def test_404_style_is_a_json_404(self, client, state):
        state.configure(KloutSettings(unknown_style=UnknownStyle.NOT_FOUND))
        response = client.get("/v2/identity.json/twitter", params={"screenName": "ghost"})
        assert response.status_code == 404
        assert response.json()["error"] == 404

    def test_596_style_is_an_empty_596(self, client, state):
        state.configure(KloutSettings(unknown_style=UnknownStyle.STATUS_596))
        response = client.get("/v2/identity.json/twitter", params={"screenName": "ghost"})
        assert response.status_code == 596
        assert response.content == b""

    def test_empty_200_style_has_no_id(self, client, state):
        state.configure(KloutSettings(unknown_style=UnknownStyle.EMPTY_200))
        response = client.get("/v2/identity.json/twitter", params={"screenName": "ghost"})
        assert response.status_code == 200
        assert response.json() == {}


class TestRateLimit:
    def test_calls_over_the_rate_get_the_mashery_over_qps_403(self, client, state):
        state.configure(KloutSettings(rate_per_second=10))
        statuses = [client.get(score_path()).status_code for _ in range(10)]
        refused = client.get(score_path())
        assert statuses == [200] * 10
        assert refused.status_code == 403
        assert refused.headers["x-mashery-error-code"] == "ERR_403_DEVELOPER_OVER_QPS"
        assert refused.headers["retry-after"] == "1"
        assert refused.headers["content-type"].startswith("text/xml")
        assert refused.text == "<h1>Developer Over Qps</h1>"

    def test_window_slides_exactly_one_second_after_the_first_arrival(self, client, state, clock):
        state.configure(KloutSettings(rate_per_second=3))
        for _ in range(2):
            assert client.get(score_path()).status_code == 200
        clock.advance(0.5)
        assert client.get(score_path()).status_code == 200
        clock.advance(0.499)
        assert over_qps(client.get(score_path()))
        clock.now = START + 1.0  # the first two arrivals are now exactly one second old
        assert [client.get(score_path()).status_code for _ in range(3)] == [200, 200, 403]

    def test_refused_calls_take_no_slot_in_the_window(self, client, state, clock):
        state.configure(KloutSettings(rate_per_second=2))
        client.get(score_path())
        client.get(score_path())
        for _ in range(3):
            clock.advance(0.25)
            assert over_qps(client.get(score_path()))
        clock.now = START + 1.0  # one second after the accepted calls; refused ones do not count
        assert client.get(score_path()).status_code == 200

    def test_refusals_are_counted_exactly(self, client, state, clock):
        state.configure(KloutSettings(rate_per_second=4))
        for _ in range(3):
            for _ in range(7):
                client.get(score_path())
            clock.advance(1.0)
        stats = state.stats()
        assert stats["accepted"] == 12
        assert stats["over_qps"] == 9
        assert stats["over_rate"] == 0
        assert stats["over_limit_calls"] == 9
        assert stats["quota_used"] == 12
        assert stats["max_accepted_in_any_window"] == 4

    def test_concurrent_burst_never_exceeds_the_rate_and_counts_the_rest(self):
        live = KloutState(PEOPLE, api_key=API_KEY, settings=KloutSettings(rate_per_second=10))
        calls = 40
        barrier = threading.Barrier(calls)
        with (
            LoopbackServer(create_klout_app(live)) as live_server,
            httpx.Client(
                base_url=live_server.url,
                params={"key": API_KEY},
                limits=httpx.Limits(max_connections=calls),
                timeout=10,
            ) as http,
        ):

            def one_call(_: int) -> httpx.Response:
                barrier.wait()
                return http.get(score_path())

            with ThreadPoolExecutor(max_workers=calls) as pool:
                responses = list(pool.map(one_call, range(calls)))
        stats = live.stats()
        accepted = sum(response.status_code == 200 for response in responses)
        refused = sum(over_qps(response) for response in responses)
        assert accepted + refused == calls
        assert stats["accepted"] == accepted >= 10
        assert stats["over_qps"] == stats["over_limit_calls"] == refused
        assert max_in_window(stats["accepted_arrivals"]) <= 10
        assert stats["max_accepted_in_any_window"] <= 10

    def test_sustained_pressure_from_threads_stays_within_every_window(self):
        live = KloutState(PEOPLE, api_key=API_KEY, settings=KloutSettings(rate_per_second=10))
        stop_at = time.monotonic() + 1.3
        with (
            LoopbackServer(create_klout_app(live)) as live_server,
            httpx.Client(base_url=live_server.url, params={"key": API_KEY}, timeout=10) as http,
        ):

            def hammer(_: int) -> list[int]:
                codes = []
                while time.monotonic() < stop_at:
                    codes.append(http.get(score_path()).status_code)
                return codes

            with ThreadPoolExecutor(max_workers=6) as pool:
                codes = [code for batch in pool.map(hammer, range(6)) for code in batch]
        stats = live.stats()
        assert stats["accepted"] == codes.count(200) > 10
        assert stats["over_qps"] == codes.count(403)
        assert stats["calls_total"] == len(codes)
        assert max_in_window(stats["accepted_arrivals"]) <= 10


class TestDailyQuota:
    def test_calls_past_the_quota_get_the_mashery_over_rate_403(self, client, state):
        state.configure(KloutSettings(rate_per_second=1000, daily_quota=5))
        assert [client.get(score_path()).status_code for _ in range(5)] == [200] * 5
        refused = client.get(score_path())
        assert refused.status_code == 403
        assert refused.headers["x-mashery-error-code"] == "ERR_403_DEVELOPER_OVER_RATE"
        assert refused.headers["content-type"].startswith("text/xml")
        assert refused.text == "<h1>Developer Over Rate</h1>"
        stats = state.stats()
        assert (stats["accepted"], stats["over_rate"], stats["quota_used"]) == (5, 1, 5)

    def test_quota_resets_at_utc_midnight(self, client, state, clock):
        state.configure(KloutSettings(rate_per_second=1000, daily_quota=2))
        client.get(score_path())
        client.get(score_path())
        clock.now = START + 9.5  # 23:59:59.5 on the same UTC day
        assert client.get(score_path()).status_code == 403
        clock.now = START + 10  # 00:00:00 the next day
        assert client.get(score_path()).status_code == 200
        assert state.stats()["quota_day"] == "2027-01-16"
        assert state.stats()["quota_used"] == 1

    def test_rate_refusals_consume_no_quota(self, client, state, clock):
        state.configure(KloutSettings(rate_per_second=2, daily_quota=3))
        codes = [client.get(score_path()).status_code for _ in range(4)]
        clock.advance(1.0)
        first = client.get(score_path())
        second = client.get(score_path())
        assert codes == [200, 200, 403, 403]
        assert first.status_code == 200
        assert second.headers["x-mashery-error-code"] == "ERR_403_DEVELOPER_OVER_RATE"
        stats = state.stats()
        assert (stats["accepted"], stats["over_qps"], stats["over_rate"]) == (3, 2, 1)
        assert stats["quota_used"] == 3

    def test_exhausted_quota_answers_over_rate_even_when_the_window_is_full(self, client, state):
        state.configure(KloutSettings(rate_per_second=1, daily_quota=1))
        client.get(score_path())
        response = client.get(score_path())
        assert response.headers["x-mashery-error-code"] == "ERR_403_DEVELOPER_OVER_RATE"

    def test_zero_quota_refuses_everything(self, client, state):
        state.configure(KloutSettings(daily_quota=0))
        response = client.get(score_path())
        assert response.headers["x-mashery-error-code"] == "ERR_403_DEVELOPER_OVER_RATE"


class TestFaults:
    def test_service_busy_is_a_plain_text_503(self, client, state):
        state.set_faults(KloutFaults(service_busy_share=1.0))
        response = client.get(score_path())
        assert response.status_code == 503
        assert response.headers["content-type"].startswith("text/plain")
        assert response.text == "Service too busy"
        assert state.stats()["faults"]["service_busy"] == 1

    def test_dropped_connection_is_a_transport_error_for_httpx(self, client, state):
        state.set_faults(KloutFaults(dropped_share=1.0))
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            client.get(score_path())
        state.set_faults(KloutFaults())
        assert client.get(score_path()).status_code == 200
        assert state.stats()["faults"]["dropped"] == 1

    def test_dropped_connection_leaves_no_error_in_the_server_log(self, state):
        records: list[str] = []

        class Collect(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                records.append(record.getMessage())

        handler = Collect(level=logging.DEBUG)
        server_log = logging.getLogger("uvicorn.error")
        server_log.addHandler(handler)
        try:
            state.set_faults(KloutFaults(dropped_share=1.0))
            with (
                LoopbackServer(create_klout_app(state)) as running,
                httpx.Client(base_url=running.url, params={"key": API_KEY}) as http,
                pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)),
            ):
                http.get(score_path())
        finally:
            server_log.removeHandler(handler)
        assert not [message for message in records if "without completing" in message]

    def test_forced_over_qps_looks_like_the_real_one(self, client, state):
        state.set_faults(KloutFaults(over_qps_share=1.0))
        response = client.get(score_path())
        assert over_qps(response)
        assert response.text == "<h1>Developer Over Qps</h1>"
        stats = state.stats()
        assert stats["faults"]["forced_over_qps"] == 1
        assert stats["over_qps"] == 0

    def test_slow_calls_are_answered_late_but_answered(self, client, state):
        state.set_faults(KloutFaults(slow_share=1.0, slow_seconds=0.3))
        started = time.monotonic()
        response = client.get(score_path())
        assert time.monotonic() - started >= 0.3
        assert response.status_code == 200
        stats = state.stats()
        assert (stats["faults"]["slow"], stats["accepted"]) == (1, 1)

    def test_slow_calls_time_out_a_short_client_timeout(self, client, state):
        state.set_faults(KloutFaults(slow_share=1.0, slow_seconds=0.5))
        with pytest.raises(httpx.ReadTimeout):
            client.get(score_path(), timeout=0.1)

    def test_unavailable_person_always_gets_503_whatever_the_lookup(self, client, state):
        state.set_faults(KloutFaults(unavailable_screen_names=frozenset({"JTimberlake"})))
        answers = [
            client.get("/v2/identity.json/twitter", params={"screenName": "jtimberlake"}),
            client.get("/v2/identity.json/tw/26565946"),
            client.get("/v2/user.json/635263"),
            client.get(score_path()),
            client.get("/1/klout.json", params={"users": "long_id_lena,jtimberlake"}),
        ]
        assert {(answer.status_code, answer.text) for answer in answers} == {
            (503, "Service too busy")
        }
        assert client.get("/v2/user.json/54887627490056592").status_code == 200
        assert state.stats()["faults"]["always_unavailable"] == 5

    def test_shares_are_seeded_and_repeatable(self, client, state):
        state.set_faults(KloutFaults(service_busy_share=0.5, seed=7))
        first = [client.get(score_path()).status_code for _ in range(30)]
        state.set_faults(KloutFaults(service_busy_share=0.5, seed=7))
        second = [client.get(score_path()).status_code for _ in range(30)]
        assert first == second
        assert 5 < first.count(503) < 25
        assert state.stats()["faults"]["service_busy"] == first.count(503) * 2

    def test_mixed_shares_split_calls_between_fault_kinds(self, client, state):
        state.set_faults(KloutFaults(service_busy_share=0.3, over_qps_share=0.3, seed=3))
        codes = [client.get(score_path()).status_code for _ in range(30)]
        stats = state.stats()
        assert codes.count(503) == stats["faults"]["service_busy"] > 0
        assert codes.count(403) == stats["faults"]["forced_over_qps"] > 0
        assert codes.count(200) == stats["accepted"] > 0

    def test_faulted_calls_count_in_calls_total_but_not_in_quota(self, client, state):
        state.set_faults(KloutFaults(service_busy_share=1.0))
        for _ in range(4):
            client.get(score_path())
        stats = state.stats()
        assert (stats["calls_total"], stats["accepted"], stats["quota_used"]) == (4, 0, 0)
        assert stats["max_accepted_in_any_window"] == 0

    def test_exclusive_shares_over_one_are_rejected(self):
        with pytest.raises(ValidationError):
            KloutFaults(service_busy_share=0.6, dropped_share=0.5)


class TestStats:
    def test_every_call_is_counted_once_by_outcome(self, client, state, clock):
        state.configure(KloutSettings(rate_per_second=3, daily_quota=5))
        client.get(score_path(), params={"key": "wrong"})
        state.set_faults(KloutFaults(service_busy_share=1.0))
        client.get(score_path())
        state.set_faults(KloutFaults())
        for _ in range(4):
            client.get(score_path())
        clock.advance(1.0)
        for _ in range(3):
            client.get(score_path())
        stats = state.stats()
        faults = sum(stats["faults"][kind] for kind in stats["faults"] if kind != "slow")
        assert stats["calls_total"] == 9
        assert (stats["bad_key"], faults, stats["over_qps"], stats["over_rate"]) == (1, 1, 1, 1)
        assert stats["accepted"] == 5
        assert stats["calls_total"] == (
            stats["bad_key"] + faults + stats["over_limit_calls"] + stats["accepted"]
        )

    def test_calls_are_counted_by_path_and_person(self, client, state):
        client.get("/v2/identity.json/twitter", params={"screenName": "JTimberlake"})
        client.get(score_path())
        client.get(score_path())
        client.get("/1/klout.json", params={"users": "jtimberlake,ghost"})
        stats = state.stats()
        assert stats["by_path"]["identity.twitter"] == 1
        assert stats["by_path"]["user.score"] == 2
        assert stats["by_path"]["v1.klout"] == 1
        assert stats["by_path"]["user"] == 0
        assert stats["by_person"] == {"jtimberlake": 4, "ghost": 1}

    def test_arrivals_give_the_achieved_rate(self, client, clock, state):
        for _ in range(6):
            client.get(score_path())
            clock.advance(0.25)
        stats = state.stats()
        assert stats["accepted_arrivals"] == [START + 0.25 * i for i in range(6)]
        assert stats["achieved_calls_per_second"] == pytest.approx(4.0)
        assert stats["max_accepted_in_any_window"] == 4

    def test_recorded_arrivals_are_bounded(self, clock):
        small = KloutState(PEOPLE, api_key=API_KEY, clock=clock, max_recorded_arrivals=3)
        with (
            LoopbackServer(create_klout_app(small)) as running,
            httpx.Client(base_url=running.url, params={"key": API_KEY}) as http,
        ):
            for _ in range(5):
                http.get(score_path())
                clock.advance(1.0)
        stats = small.stats()
        assert stats["accepted"] == 5
        assert stats["accepted_arrivals"] == [START + 2, START + 3, START + 4]

    def test_reset_forgets_counters_window_and_quota(self, client, state):
        state.configure(KloutSettings(rate_per_second=2, daily_quota=2))
        client.get(score_path())
        client.get(score_path())
        state.reset_counters()
        assert state.stats()["calls_total"] == 0
        assert client.get(score_path()).status_code == 200


class TestAdminEndpoints:
    def test_stats_need_no_key_and_match_the_state(self, server, client, state):
        client.get(score_path())
        with httpx.Client(base_url=server.url) as http:
            response = http.get("/_emulator/stats")
        assert response.status_code == 200
        assert response.json()["accepted"] == 1
        assert response.json() == state.stats()

    def test_faults_can_be_set_over_http(self, server, client, state):
        with httpx.Client(base_url=server.url) as http:
            response = http.post(
                "/_emulator/faults",
                json={"service_busy_share": 1.0, "unavailable_screen_names": ["low_lou"]},
            )
        assert response.status_code == 200
        assert state.faults.service_busy_share == 1.0
        assert state.faults.is_unavailable("LOW_LOU")
        assert client.get(score_path()).status_code == 503

    def test_empty_faults_body_clears_every_fault(self, server, client, state):
        state.set_faults(KloutFaults(service_busy_share=1.0))
        with httpx.Client(base_url=server.url) as http:
            http.post("/_emulator/faults", json={})
        assert state.faults == KloutFaults()
        assert client.get(score_path()).status_code == 200

    def test_invalid_faults_body_is_a_422_and_changes_nothing(self, server, state):
        with httpx.Client(base_url=server.url) as http:
            response = http.post("/_emulator/faults", json={"service_busy_share": 2})
        assert response.status_code == 422
        assert response.json()["errors"][0]["loc"] == ["service_busy_share"]
        assert state.faults == KloutFaults()

    def test_settings_can_be_set_over_http(self, server, client, state):
        with httpx.Client(base_url=server.url) as http:
            response = http.post(
                "/_emulator/settings",
                json={"rate_per_second": 7, "daily_quota": 50, "unknown_style": "596"},
            )
        assert response.status_code == 200
        assert state.settings == KloutSettings(
            rate_per_second=7, daily_quota=50, unknown_style=UnknownStyle.STATUS_596
        )
        assert client.get("/v2/user.json/999").status_code == 596

    def test_reset_over_http_zeroes_the_counters(self, server, client, state):
        client.get(score_path())
        with httpx.Client(base_url=server.url) as http:
            response = http.post("/_emulator/reset")
        assert response.status_code == 200
        assert state.stats()["calls_total"] == 0
        assert state.stats()["accepted_arrivals"] == []


class TestMaxInWindow:
    def test_counts_the_half_open_window(self):
        assert max_in_window([0.0, 0.5, 0.999, 1.0, 1.5]) == 3

    def test_empty_is_zero(self):
        assert max_in_window([]) == 0

    def test_order_does_not_matter(self):
        assert max_in_window([3.0, 1.0, 3.5, 1.2, 3.9]) == 3
