"""The Zoho CRM emulator, spoken to over loopback HTTP exactly as a client would."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest

from emulators.server import LoopbackServer
from emulators.zoho import ZohoState, create_zoho_app

START = 1_790_000_000.0
CREDENTIALS = {
    "grant_type": "refresh_token",
    "client_id": "zoho-client-id",
    "client_secret": "zoho-client-secret",
    "refresh_token": "1000.zoho-refresh-token",
}


class FakeClock:
    """Unix seconds that move only when told to."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


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


@pytest.fixture
def http(server: LoopbackServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


def new_token(http: httpx.Client) -> str:
    answer = http.post("/oauth/v2/token", data=CREDENTIALS)
    assert answer.status_code == 200
    token: str = answer.json()["access_token"]
    return token


@pytest.fixture
def auth(http: httpx.Client) -> dict[str, str]:
    return {"Authorization": f"Zoho-oauthtoken {new_token(http)}"}


def seed_people(state: ZohoState, count: int, module: str = "Leads") -> list[str]:
    return state.seed(
        module,
        ({"Last_Name": f"Person {i}", "Email": f"p{i}@example.org"} for i in range(count)),
    )


class TestToken:
    def test_form_grant_answers_a_token_and_the_emulators_own_domain(
        self, http: httpx.Client, server: LoopbackServer, state: ZohoState
    ) -> None:
        answer = http.post("/oauth/v2/token", data=CREDENTIALS)

        body = answer.json()
        assert answer.status_code == 200
        assert body["api_domain"] == server.url
        assert body["expires_in"] == 3600
        assert body["token_type"] == "Bearer"
        assert body["access_token"]
        assert state.token_calls == 1
        assert state.crm_calls == 0

    def test_query_parameters_are_accepted(self, http: httpx.Client) -> None:
        answer = http.post("/oauth/v2/token", params=CREDENTIALS)

        assert answer.status_code == 200
        assert "access_token" in answer.json()

    def test_wrong_client_secret_answers_200_with_an_error(self, http: httpx.Client) -> None:
        answer = http.post(
            "/oauth/v2/token", data={**CREDENTIALS, "client_secret": "not-the-secret"}
        )

        assert answer.status_code == 200
        assert answer.json() == {"error": "invalid_client"}

    def test_unknown_refresh_token_answers_invalid_code(self, http: httpx.Client) -> None:
        answer = http.post("/oauth/v2/token", data={**CREDENTIALS, "refresh_token": "1000.x"})

        assert answer.json() == {"error": "invalid_code"}

    def test_eleventh_token_in_ten_minutes_is_refused_until_the_window_moves(
        self, http: httpx.Client, clock: FakeClock, state: ZohoState
    ) -> None:
        for _ in range(10):
            new_token(http)
            clock.advance(30)

        refused = http.post("/oauth/v2/token", data=CREDENTIALS)
        clock.advance(600 - 300 + 1)
        allowed = http.post("/oauth/v2/token", data=CREDENTIALS)

        assert refused.status_code == 400
        assert refused.json()["error"] == "Access Denied"
        assert "too many requests" in refused.json()["error_description"]
        assert allowed.status_code == 200
        assert state.tokens_issued == 11

    def test_access_token_stops_working_after_an_hour(
        self, http: httpx.Client, clock: FakeClock, auth: dict[str, str]
    ) -> None:
        clock.advance(3599)
        fresh = http.get("/crm/v8/Leads", headers=auth)
        clock.advance(1)
        expired = http.get("/crm/v8/Leads", headers=auth)

        assert fresh.status_code == 204
        assert expired.status_code == 401
        assert expired.json()["code"] == "INVALID_TOKEN"

    def test_revoked_tokens_are_invalid(
        self, http: httpx.Client, state: ZohoState, auth: dict[str, str]
    ) -> None:
        state.revoke_tokens()

        answer = http.get("/crm/v8/Leads", headers=auth)

        assert answer.status_code == 401
        assert answer.json() == {
            "code": "INVALID_TOKEN",
            "details": {},
            "message": "invalid oauth token",
            "status": "error",
        }


class TestAuthorization:
    def test_missing_header_is_an_authentication_failure(
        self, http: httpx.Client, state: ZohoState
    ) -> None:
        answer = http.get("/crm/v8/Leads")

        assert answer.status_code == 401
        assert answer.json()["code"] == "AUTHENTICATION_FAILURE"
        assert state.crm_calls == 1

    def test_bearer_scheme_is_not_accepted(self, http: httpx.Client) -> None:
        token = new_token(http)

        answer = http.get("/crm/v8/Leads", headers={"Authorization": f"Bearer {token}"})

        assert answer.status_code == 401

    def test_unknown_token_is_invalid_token(self, http: httpx.Client) -> None:
        answer = http.get("/crm/v8/Leads", headers={"Authorization": "Zoho-oauthtoken 1000.x"})

        assert answer.status_code == 401
        assert answer.json()["code"] == "INVALID_TOKEN"


class TestGetRecords:
    def test_pages_through_records_with_info(
        self, http: httpx.Client, state: ZohoState, auth: dict[str, str]
    ) -> None:
        ids = seed_people(state, 450)

        pages = [
            http.get("/crm/v8/Leads", params={"page": page, "per_page": 200}, headers=auth)
            for page in (1, 2, 3)
        ]

        infos = [page.json()["info"] for page in pages]
        seen = [record["id"] for page in pages for record in page.json()["data"]]
        assert [info["count"] for info in infos] == [200, 200, 50]
        assert [info["more_records"] for info in infos] == [True, True, False]
        assert infos[1] == {"per_page": 200, "count": 200, "page": 2, "more_records": True}
        assert seen == ids

    def test_page_past_the_end_answers_204_without_body(
        self, http: httpx.Client, state: ZohoState, auth: dict[str, str]
    ) -> None:
        seed_people(state, 3)

        answer = http.get("/crm/v8/Leads", params={"page": 2}, headers=auth)

        assert answer.status_code == 204
        assert answer.content == b""

    def test_more_than_200_per_page_is_refused(
        self, http: httpx.Client, state: ZohoState, auth: dict[str, str]
    ) -> None:
        seed_people(state, 3)

        answer = http.get("/crm/v8/Leads", params={"per_page": 201}, headers=auth)

        assert answer.status_code == 400
        assert answer.json()["code"] == "INVALID_DATA"

    def test_fields_limits_the_answer_to_id_and_those_fields(
        self, http: httpx.Client, state: ZohoState, auth: dict[str, str]
    ) -> None:
        (rid,) = seed_people(state, 1)

        answer = http.get("/crm/v8/Leads", params={"fields": "Email,Modified_Time"}, headers=auth)

        (record,) = answer.json()["data"]
        assert set(record) == {"id", "Email", "Modified_Time"}
        assert record["id"] == rid

    def test_unknown_field_is_refused(
        self, http: httpx.Client, state: ZohoState, auth: dict[str, str]
    ) -> None:
        seed_people(state, 1)

        answer = http.get("/crm/v8/Leads", params={"fields": "Shoe_Size"}, headers=auth)

        assert answer.status_code == 400
        assert answer.json()["details"] == {"api_name": "Shoe_Size"}

    def test_if_modified_since_returns_records_modified_after_it_oldest_first(
        self, http: httpx.Client, state: ZohoState, clock: FakeClock, auth: dict[str, str]
    ) -> None:
        old = seed_people(state, 5)
        clock.advance(60)
        new = seed_people(state, 2)
        clock.advance(60)
        state.edit("Leads", old[3], {"First_Name": "Edited"})
        watermark = state.get("Leads", old[0])["Modified_Time"]

        answer = http.get(
            "/crm/v8/Leads",
            params={"sort_by": "Modified_Time", "sort_order": "asc"},
            headers={**auth, "If-Modified-Since": watermark},
        )

        assert [record["id"] for record in answer.json()["data"]] == [*new, old[3]]

    def test_sort_order_desc_gives_newest_first(
        self, http: httpx.Client, state: ZohoState, clock: FakeClock, auth: dict[str, str]
    ) -> None:
        first = seed_people(state, 3)
        clock.advance(5)
        second = seed_people(state, 3)

        answer = http.get(
            "/crm/v8/Leads",
            params={"sort_by": "Modified_Time", "sort_order": "desc", "per_page": 4, "page": 1},
            headers=auth,
        )

        assert [record["id"] for record in answer.json()["data"]] == [
            *reversed(second),
            first[2],
        ]
        assert answer.json()["info"]["more_records"] is True

    def test_nothing_modified_answers_204(
        self, http: httpx.Client, state: ZohoState, auth: dict[str, str]
    ) -> None:
        (rid,) = seed_people(state, 1)

        answer = http.get(
            "/crm/v8/Leads",
            headers={**auth, "If-Modified-Since": state.get("Leads", rid)["Modified_Time"]},
        )

        assert answer.status_code == 204

    def test_unknown_module_is_invalid_module(
        self, http: httpx.Client, auth: dict[str, str]
    ) -> None:
        answer = http.get("/crm/v8/Shoes", headers=auth)

        assert answer.status_code == 400
        assert answer.json()["code"] == "INVALID_MODULE"

    def test_a_hundred_thousand_seeded_records_page_from_the_end(
        self, http: httpx.Client, state: ZohoState, auth: dict[str, str]
    ) -> None:
        ids = seed_people(state, 100_000)

        answer = http.get(
            "/crm/v8/Leads",
            params={"sort_by": "Modified_Time", "page": 500, "per_page": 200},
            headers=auth,
        )

        data = answer.json()["data"]
        assert [record["id"] for record in data] == ids[-200:]
        assert answer.json()["info"]["more_records"] is False


class TestUpsert:
    def test_update_by_id_answers_success_and_bumps_modified_time(
        self, http: httpx.Client, state: ZohoState, clock: FakeClock, auth: dict[str, str]
    ) -> None:
        (rid,) = seed_people(state, 1)
        before = state.get("Leads", rid)["Modified_Time"]
        clock.advance(90)

        answer = http.post(
            "/crm/v8/Leads/upsert",
            json={"data": [{"id": rid, "Influence_Score": 61.5, "Score_Status": "scored"}]},
            headers=auth,
        )

        (result,) = answer.json()["data"]
        after = state.get("Leads", rid)
        assert answer.status_code == 200
        assert result["code"] == "SUCCESS"
        assert result["status"] == "success"
        assert result["action"] == "update"
        assert result["message"] == "record updated"
        assert result["details"] == {"id": rid, "Modified_Time": after["Modified_Time"]}
        assert after["Influence_Score"] == 61.5
        assert after["Modified_Time"] > before

    def test_without_id_matches_on_email_or_inserts(
        self, http: httpx.Client, state: ZohoState, auth: dict[str, str]
    ) -> None:
        (rid,) = seed_people(state, 1)

        answer = http.post(
            "/crm/v8/Leads/upsert",
            json={
                "data": [
                    {"Email": "P0@Example.org", "Twitter": "pzero"},
                    {"Email": "new@example.org", "Last_Name": "New"},
                ],
                "duplicate_check_fields": ["Email"],
            },
            headers=auth,
        )

        matched, inserted = answer.json()["data"]
        assert matched["action"] == "update"
        assert matched["duplicate_field"] == "Email"
        assert matched["details"]["id"] == rid
        assert inserted["action"] == "insert"
        assert inserted["message"] == "record added"
        assert state.get("Leads", rid)["Twitter"] == "pzero"
        assert len(state.records("Leads")) == 2

    def test_insert_without_last_name_is_mandatory_not_found(
        self, http: httpx.Client, auth: dict[str, str]
    ) -> None:
        answer = http.post(
            "/crm/v8/Leads/upsert", json={"data": [{"Email": "x@example.org"}]}, headers=auth
        )

        (result,) = answer.json()["data"]
        assert result == {
            "code": "MANDATORY_NOT_FOUND",
            "details": {"api_name": "Last_Name"},
            "message": "required field not found",
            "status": "error",
        }

    def test_more_than_100_records_refuses_the_call(
        self, http: httpx.Client, state: ZohoState, auth: dict[str, str]
    ) -> None:
        ids = seed_people(state, 101)

        answer = http.post(
            "/crm/v8/Leads/upsert",
            json={"data": [{"id": rid, "Score_Status": "scored"} for rid in ids]},
            headers=auth,
        )

        assert answer.status_code == 400
        assert answer.json()["code"] == "LIMIT_EXCEEDED"
        assert all("Score_Status" not in record for record in state.records("Leads"))

    def test_wrong_types_and_unknown_ids_are_per_record_errors(
        self, http: httpx.Client, state: ZohoState, auth: dict[str, str]
    ) -> None:
        (rid,) = seed_people(state, 1)

        answer = http.post(
            "/crm/v8/Leads/upsert",
            json={
                "data": [
                    {"id": rid, "Influence_Score": ""},
                    {"id": rid, "Shoe_Size": 44},
                    {"id": "999", "Score_Status": "scored"},
                    {"id": rid, "Influence_Score": None, "Score_Status": "unscored"},
                ]
            },
            headers=auth,
        )

        wrong_type, unknown_field, unknown_id, blank = answer.json()["data"]
        assert wrong_type["code"] == "INVALID_DATA"
        assert wrong_type["details"]["expected_data_type"] == "double"
        assert unknown_field["details"]["api_name"] == "Shoe_Size"
        assert unknown_id["details"] == {"api_name": "id"}
        assert blank["status"] == "success"
        assert state.get("Leads", rid)["Influence_Score"] is None

    def test_injected_record_error_applies_the_given_number_of_times(
        self, http: httpx.Client, state: ZohoState, auth: dict[str, str]
    ) -> None:
        (rid,) = seed_people(state, 1)
        state.inject_record_error("Leads", rid, code="RECORD_LOCKED", message="locked", times=1)
        body = {"data": [{"id": rid, "Score_Status": "scored"}]}

        first = http.post("/crm/v8/Leads/upsert", json=body, headers=auth).json()["data"][0]
        second = http.post("/crm/v8/Leads/upsert", json=body, headers=auth).json()["data"][0]

        assert first == {
            "code": "RECORD_LOCKED",
            "details": {"id": rid},
            "message": "locked",
            "status": "error",
        }
        assert second["code"] == "SUCCESS"


class TestLimits:
    def test_calls_over_the_concurrency_limit_answer_429(
        self, http: httpx.Client, state: ZohoState, auth: dict[str, str]
    ) -> None:
        state.max_concurrency = 2
        state.latency = 0.3
        barrier = threading.Barrier(6)
        statuses: list[int] = []

        def call() -> None:
            barrier.wait()
            statuses.append(http.get("/crm/v8/Leads", headers=auth).status_code)

        threads = [threading.Thread(target=call) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert state.max_in_flight <= 2
        assert 429 in statuses
        assert state.rate_limited == statuses.count(429)

    def test_spent_daily_credits_answer_429_with_none_remaining(
        self, http: httpx.Client, state: ZohoState, clock: FakeClock, auth: dict[str, str]
    ) -> None:
        state.daily_credits = 4
        answers = [http.get("/crm/v8/Leads", headers=auth) for _ in range(5)]
        clock.advance(24 * 3600)
        fresh = {"Authorization": f"Zoho-oauthtoken {new_token(http)}"}
        next_day = http.get("/crm/v8/Leads", headers=fresh)

        refused = answers[-1]
        assert [answer.status_code for answer in answers[:4]] == [204] * 4
        assert refused.status_code == 429
        assert refused.json()["code"] == "TOO_MANY_REQUESTS"
        assert refused.headers["X-API-CREDITS-REMAINING"] == "0"
        assert "X-API-CREDITS-REMAINING" not in answers[0].headers
        assert answers[1].headers["X-API-CREDITS-REMAINING"] == "2"
        assert answers[3].headers["X-API-CREDITS-REMAINING"] == "0"
        assert next_day.status_code == 204

    def test_upserts_cost_one_credit_per_ten_records(
        self, http: httpx.Client, state: ZohoState, auth: dict[str, str]
    ) -> None:
        ids = seed_people(state, 100)

        http.post(
            "/crm/v8/Leads/upsert",
            json={"data": [{"id": rid, "Score_Status": "scored"} for rid in ids[:95]]},
            headers=auth,
        )

        assert state.credits_used == 10

    def test_injected_rate_limit_answers_the_next_calls_only(
        self, http: httpx.Client, state: ZohoState, auth: dict[str, str]
    ) -> None:
        state.inject_rate_limit(2)

        answers = [http.get("/crm/v8/Leads", headers=auth) for _ in range(3)]

        assert [answer.status_code for answer in answers] == [429, 429, 204]
        assert answers[0].json() == {
            "code": "TOO_MANY_REQUESTS",
            "details": {},
            "message": "The concurrency limit of the user for the app is exceeded.",
            "status": "error",
        }

    def test_calls_are_counted_per_endpoint_with_token_calls_apart(
        self, http: httpx.Client, state: ZohoState, auth: dict[str, str]
    ) -> None:
        (rid,) = seed_people(state, 1)
        http.get("/crm/v8/Leads", headers=auth)
        http.get("/crm/v8/Contacts", headers=auth)
        http.post(
            "/crm/v8/Leads/upsert", json={"data": [{"id": rid, "Last_Name": "X"}]}, headers=auth
        )

        assert state.calls_by_endpoint == {
            "POST /oauth/v2/token": 1,
            "GET /crm/v8/Leads": 1,
            "GET /crm/v8/Contacts": 1,
            "POST /crm/v8/Leads/upsert": 1,
        }
        assert state.crm_calls == 3
        assert state.token_calls == 1
