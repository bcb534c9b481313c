"""The sandbox: sample people cover every status, and each gets the upstream answers it needs."""

from __future__ import annotations

import socket
import statistics
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from emulators.sandbox import (
    SANDBOX_PEOPLE,
    Sandbox,
    SandboxPerson,
    SandboxStatus,
    sandbox_klout_state,
    sandbox_twitter_state,
    start_sandbox,
)
from policies.status import Status

NO_USERS = {"error": "No users"}
PEOPLE_BY_STATUS = {
    status: [person for person in SANDBOX_PEOPLE if person.expected_status == status]
    for status in SandboxStatus
}


@pytest.fixture(scope="module")
def started() -> Iterator[Sandbox]:
    with start_sandbox(rate_per_second=1000) as running:
        yield running


@pytest.fixture
def klout(started: Sandbox) -> Iterator[httpx.Client]:
    started.klout_state.reset_counters()
    with httpx.Client(
        base_url=started.klout_url, params={"key": started.klout_api_key}, timeout=10
    ) as http:
        yield http


@pytest.fixture
def twitter(started: Sandbox) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {started.twitter_bearer_token}"}
    with httpx.Client(base_url=started.twitter_url, headers=headers, timeout=10) as http:
        yield http


def identity(klout: httpx.Client, person: SandboxPerson) -> httpx.Response:
    return klout.get("/v2/identity.json/twitter", params={"screenName": person.handle})


def existence(twitter: httpx.Client, person: SandboxPerson) -> dict[str, Any]:
    body: dict[str, Any] = twitter.get(f"/2/users/by/username/{person.handle}").json()
    return body


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class TestSandboxPeople:
    def test_statuses_are_exactly_scoregates_vocabulary(self):
        assert {status.value for status in SandboxStatus} == {status.value for status in Status}

    def test_every_status_has_a_sample_person(self):
        assert all(PEOPLE_BY_STATUS[status] for status in SandboxStatus)

    def test_scored_people_are_many_and_spread(self):
        scored = PEOPLE_BY_STATUS[SandboxStatus.SCORED]
        scores = [person.klout_score for person in scored if person.klout_score is not None]
        assert len(scores) == len(scored) >= 6
        assert min(scores) <= 25
        assert max(scores) >= 90
        assert statistics.median(scores) == 54.0

    def test_handles_are_unique_well_formed_and_described(self):
        handles = [person.handle for person in SANDBOX_PEOPLE]
        assert len(set(handles)) == len(handles)
        assert all(1 <= len(handle) <= 15 and handle.isascii() for handle in handles)
        assert all(person.description.strip() for person in SANDBOX_PEOPLE)

    def test_only_the_opted_out_person_is_in_the_registry(self):
        in_registry = [person.handle for person in SANDBOX_PEOPLE if person.opted_out_in_registry]
        assert in_registry == ["olga_optout"]

    def test_the_named_sample_people_have_their_statuses(self):
        expected: dict[str, str] = {
            "jtimberlake": Status.SCORED,
            "quiet_quinn": Status.UNSCORED,
            "nobody_here_42": Status.NOT_FOUND,
            "olga_optout": Status.OPTED_OUT,
            "busy_bea": Status.UNAVAILABLE,
            "suspended_sam": Status.UNSCORED,
        }
        actual: dict[str, str] = {
            person.handle: person.expected_status for person in SANDBOX_PEOPLE
        }
        assert {handle: actual[handle] for handle in expected} == expected

    def test_klout_ids_are_digit_strings(self):
        klout_ids = [person.klout_id for person in SANDBOX_PEOPLE if person.klout_id is not None]
        assert all(klout_id.isdigit() for klout_id in klout_ids)
        assert any(len(klout_id) >= 17 for klout_id in klout_ids)


class TestSandboxStates:
    def test_klout_state_takes_the_limits(self):
        state = sandbox_klout_state(rate_per_second=3, daily_quota=77)
        assert (state.settings.rate_per_second, state.settings.daily_quota) == (3, 77)

    def test_klout_state_knows_exactly_the_people_with_a_klout_id(self):
        state = sandbox_klout_state()
        for person in SANDBOX_PEOPLE:
            known = state.person_by_screen_name(person.handle)
            assert (known is not None) == (person.klout_id is not None)

    def test_busy_people_are_always_unavailable(self):
        state = sandbox_klout_state()
        assert state.faults.is_unavailable("busy_bea")
        assert not state.faults.is_unavailable("jtimberlake")

    def test_twitter_state_knows_exactly_the_people_on_twitter(self):
        state = sandbox_twitter_state()
        for person in SANDBOX_PEOPLE:
            assert (state.user(person.handle) is not None) == person.on_twitter


class TestStartSandbox:
    def test_both_emulators_answer_on_loopback(self, started):
        assert started.klout_url.startswith("http://127.0.0.1:")
        assert started.twitter_url.startswith("http://127.0.0.1:")
        assert httpx.get(f"{started.klout_url}/_emulator/stats").status_code == 200
        assert httpx.get(f"{started.twitter_url}/_emulator/stats").status_code == 200

    def test_fixed_ports_and_limits_are_used_and_stop_frees_them(self):
        klout_port, twitter_port = free_port(), free_port()
        running = start_sandbox(
            klout_port=klout_port, twitter_port=twitter_port, rate_per_second=4, daily_quota=9
        )
        try:
            assert running.klout_url == f"http://127.0.0.1:{klout_port}"
            assert running.twitter_url == f"http://127.0.0.1:{twitter_port}"
            assert running.klout_state.settings.rate_per_second == 4
            assert running.klout_state.settings.daily_quota == 9
            assert running.registry_opt_outs == tuple(
                person for person in SANDBOX_PEOPLE if person.opted_out_in_registry
            )
        finally:
            running.stop()
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{running.klout_url}/_emulator/stats")
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{running.twitter_url}/_emulator/stats")


class TestSamplePeopleUpstreamAnswers:
    @pytest.mark.parametrize(
        "person", PEOPLE_BY_STATUS[SandboxStatus.SCORED], ids=lambda person: person.handle
    )
    def test_scored_person_resolves_to_their_score(self, klout, twitter, person):
        klout_id = identity(klout, person).json()["id"]
        score = klout.get(f"/v2/user.json/{klout_id}/score").json()["score"]
        assert klout_id == person.klout_id
        assert score == person.klout_score
        assert existence(twitter, person)["data"]["username"] == person.handle

    @pytest.mark.parametrize(
        "person", PEOPLE_BY_STATUS[SandboxStatus.UNSCORED], ids=lambda person: person.handle
    )
    def test_unscored_person_exists_but_klout_says_no_users(self, klout, twitter, person):
        answer = identity(klout, person)
        found = existence(twitter, person)
        assert (answer.status_code, answer.json()) == (200, NO_USERS)
        if person.suspended:
            assert found["errors"][0]["title"] == "Forbidden"
        else:
            assert found["data"]["username"] == person.handle

    @pytest.mark.parametrize(
        "person", PEOPLE_BY_STATUS[SandboxStatus.NOT_FOUND], ids=lambda person: person.handle
    )
    def test_not_found_person_exists_nowhere(self, klout, twitter, person):
        answer = identity(klout, person)
        found = existence(twitter, person)
        assert (answer.status_code, answer.json()) == (200, NO_USERS)
        assert found["errors"][0]["title"] == "Not Found Error"

    @pytest.mark.parametrize(
        "person", PEOPLE_BY_STATUS[SandboxStatus.UNAVAILABLE], ids=lambda person: person.handle
    )
    def test_unavailable_person_gets_service_too_busy(self, klout, twitter, person):
        answers = [identity(klout, person) for _ in range(3)]
        assert {(answer.status_code, answer.text) for answer in answers} == {
            (503, "Service too busy")
        }
        assert existence(twitter, person)["data"]["username"] == person.handle

    @pytest.mark.parametrize(
        "person", PEOPLE_BY_STATUS[SandboxStatus.OPTED_OUT], ids=lambda person: person.handle
    )
    def test_opted_out_person_would_be_scored_if_anyone_asked(self, klout, twitter, person):
        klout_id = identity(klout, person).json()["id"]
        score = klout.get(f"/v2/user.json/{klout_id}/score").json()["score"]
        assert person.opted_out_in_registry
        assert score == person.klout_score
        assert existence(twitter, person)["data"]["username"] == person.handle

    def test_klout_opt_out_is_indistinguishable_from_a_stranger(self, klout):
        opted_out_at_klout = next(person for person in SANDBOX_PEOPLE if person.klout_opted_out)
        stranger = PEOPLE_BY_STATUS[SandboxStatus.NOT_FOUND][0]
        first, second = identity(klout, opted_out_at_klout), identity(klout, stranger)
        assert (first.status_code, first.content) == (second.status_code, second.content)

    def test_calls_about_a_person_are_counted_for_them(self, started, klout):
        olga = next(person for person in SANDBOX_PEOPLE if person.opted_out_in_registry)
        identity(klout, olga)
        assert started.klout_state.stats()["by_person"] == {olga.handle: 1}
