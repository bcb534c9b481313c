"""The Twitter-style users-by-username emulator over real HTTP on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from emulators.server import LoopbackServer
from emulators.twitter import TwitterState, TwitterUser, create_twitter_app

TOKEN = "test-bearer-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
START = 1_800_000_000.0
UNAUTHORIZED = {
    "title": "Unauthorized",
    "type": "about:blank",
    "status": 401,
    "detail": "Unauthorized",
}

USERS = (
    TwitterUser("XDevelopers", "2244994945", "X Developers"),
    TwitterUser("suspended_sam", "66600066", "Suspended Sam", suspended=True),
)


class FakeClock:
    """Epoch seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def module_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="module")
def module_state(module_clock: FakeClock) -> TwitterState:
    return TwitterState(USERS, bearer_token=TOKEN, clock=module_clock)


@pytest.fixture(scope="module")
def module_server(module_state: TwitterState) -> Iterator[LoopbackServer]:
    with LoopbackServer(create_twitter_app(module_state)) as running:
        yield running


@pytest.fixture
def clock(module_clock: FakeClock) -> FakeClock:
    module_clock.now = START
    return module_clock


@pytest.fixture
def state(module_state: TwitterState, clock: FakeClock) -> TwitterState:
    """The module's emulator state without a rate limit and with zero counters."""
    module_state.set_rate_limit(None)
    module_state.reset_counters()
    return module_state


@pytest.fixture
def client(module_server: LoopbackServer, state: TwitterState) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=module_server.url, headers=AUTH, timeout=10) as http:
        yield http


def lookup(client: httpx.Client, username: str, **kwargs) -> httpx.Response:
    return client.get(f"/2/users/by/username/{username}", **kwargs)


class TestUserByUsername:
    def test_existing_user_is_answered_with_data(self, client):
        response = lookup(client, "XDevelopers")
        assert response.status_code == 200
        assert response.json() == {
            "data": {"id": "2244994945", "name": "X Developers", "username": "XDevelopers"}
        }

    def test_lookup_is_case_insensitive_and_answers_the_stored_spelling(self, client):
        response = lookup(client, "xdevelopers")
        assert response.json()["data"]["username"] == "XDevelopers"

    def test_missing_user_is_a_200_with_a_not_found_error(self, client):
        response = lookup(client, "nouser")
        assert response.status_code == 200
        assert response.json() == {
            "errors": [
                {
                    "value": "nouser",
                    "detail": "Could not find user with username: [nouser].",
                    "title": "Not Found Error",
                    "resource_type": "user",
                    "parameter": "username",
                    "resource_id": "nouser",
                    "type": "https://api.twitter.com/2/problems/resource-not-found",
                }
            ]
        }

    def test_suspended_user_is_a_200_with_a_forbidden_error(self, client):
        response = lookup(client, "suspended_sam")
        assert response.status_code == 200
        assert "data" not in response.json()
        (error,) = response.json()["errors"]
        assert error["title"] == "Forbidden"
        assert error["detail"] == "User has been suspended: [suspended_sam]."
        assert error["resource_id"] == "suspended_sam"

    @pytest.mark.parametrize("username", ["has-dash", "sixteen_chars_xx", "sp ace", "dot.ted"])
    def test_malformed_username_is_a_400_with_a_message(self, client, username):
        response = lookup(client, username)
        assert response.status_code == 400
        (error,) = response.json()["errors"]
        assert username in error["message"]
        assert error["parameters"] == {"username": [username]}

    def test_fifteen_characters_is_still_well_formed(self, client):
        assert "errors" in lookup(client, "fifteen_chars_x").json()
        assert lookup(client, "fifteen_chars_x").status_code == 200


class TestAuthorization:
    def test_missing_token_is_a_401(self, module_server, state):
        with httpx.Client(base_url=module_server.url) as http:
            response = lookup(http, "XDevelopers")
        assert response.status_code == 401
        assert response.json() == UNAUTHORIZED

    def test_wrong_token_is_a_401(self, client):
        response = lookup(client, "XDevelopers", headers={"Authorization": "Bearer nope"})
        assert response.status_code == 401
        assert response.json() == UNAUTHORIZED

    def test_token_without_bearer_scheme_is_a_401(self, client):
        response = lookup(client, "XDevelopers", headers={"Authorization": TOKEN})
        assert response.status_code == 401

    def test_token_is_checked_before_the_username(self, client):
        response = lookup(client, "bad-name", headers={"Authorization": "Bearer nope"})
        assert response.status_code == 401


class TestRateLimit:
    def test_calls_over_the_limit_get_429_with_the_reset_time(self, client, state):
        state.set_rate_limit(2, window_seconds=900)
        first = lookup(client, "XDevelopers")
        lookup(client, "nouser")
        refused = lookup(client, "XDevelopers")
        assert first.headers["x-rate-limit-limit"] == "2"
        assert first.headers["x-rate-limit-remaining"] == "1"
        assert refused.status_code == 429
        assert refused.headers["x-rate-limit-reset"] == str(int(START + 900))
        assert refused.headers["x-rate-limit-remaining"] == "0"
        assert refused.json()["status"] == 429

    def test_the_window_reopens_at_the_reset_time(self, client, state, clock):
        state.set_rate_limit(1, window_seconds=60)
        lookup(client, "XDevelopers")
        clock.now = START + 59.5
        assert lookup(client, "XDevelopers").status_code == 429
        clock.now = START + 60
        reopened = lookup(client, "XDevelopers")
        assert reopened.status_code == 200
        assert reopened.headers["x-rate-limit-reset"] == str(int(START + 120))

    def test_unauthorised_calls_use_no_slot(self, client, state):
        state.set_rate_limit(1)
        lookup(client, "XDevelopers", headers={"Authorization": "Bearer nope"})
        assert lookup(client, "XDevelopers").status_code == 200

    def test_no_limit_means_no_limit_headers(self, client):
        response = lookup(client, "XDevelopers")
        assert "x-rate-limit-limit" not in response.headers


class TestStats:
    def test_every_call_is_counted_by_outcome_and_username(self, client, state):
        state.set_rate_limit(5)
        for username in ("XDevelopers", "xdevelopers", "nouser", "suspended_sam", "bad-name"):
            lookup(client, username)
        lookup(client, "XDevelopers", headers={"Authorization": "Bearer nope"})
        lookup(client, "XDevelopers")
        stats = state.stats()
        assert stats["calls_total"] == 7
        assert stats["outcomes"] == {
            "found": 2,
            "not_found": 1,
            "suspended": 1,
            "invalid": 1,
            "unauthorized": 1,
            "rate_limited": 1,
        }
        assert stats["by_username"]["xdevelopers"] == 4

    def test_stats_endpoint_needs_no_token(self, module_server, client, state):
        lookup(client, "nouser")
        with httpx.Client(base_url=module_server.url) as http:
            response = http.get("/_emulator/stats")
        assert response.status_code == 200
        assert response.json() == state.stats()
        assert response.json()["outcomes"]["not_found"] == 1

    def test_reset_endpoint_zeroes_counters_and_window(self, module_server, client, state):
        state.set_rate_limit(1)
        lookup(client, "XDevelopers")
        with httpx.Client(base_url=module_server.url) as http:
            assert http.post("/_emulator/reset").status_code == 200
        assert state.stats()["calls_total"] == 0
        assert lookup(client, "XDevelopers").status_code == 200
