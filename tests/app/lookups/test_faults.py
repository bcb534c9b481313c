"""POST /v1/lookups while the score API fails 30 % of its calls: honest answers or none.

The Klout emulator answers "Service too busy" to 15 % of calls and drops the connection on
another 15 % (seeded draws). Every contact must still end with a status; a scored one carries
exactly the emulator person's score, never a number made up from a failure.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.config import Settings
from app.models import Role
from emulators.klout import KloutFaults, KloutPerson
from emulators.sandbox import Sandbox, start_sandbox
from emulators.twitter import TwitterUser
from tests.conftest import make_settings

_rng = random.Random(20261122)
#: true scores of the sandbox's scored people and of forty more added for this module
TRUE_SCORES: dict[str, float] = {
    "jtimberlake": 92.8,
    "femi_founder": 86.4,
    "carla_dev": 73.2,
    "ann_marketing": 54.0,
    "bob_support": 41.5,
    "gus_gardener": 33.3,
    "dmitri_ops": 21.7,
    **{f"fault_{n:02d}": round(_rng.uniform(1, 100), 1) for n in range(40)},
}
UNSCORED = ("quiet_quinn", "suspended_sam", "private_pat")
MISSING = ("nobody_here_42",)
FLAKY = KloutFaults(
    service_busy_share=0.15,
    dropped_share=0.15,
    seed=11,
    unavailable_screen_names=frozenset({"busy_bea"}),
)


@pytest.fixture(scope="module")
def flaky_sandbox() -> Iterator[Sandbox]:
    """A sandbox of its own, with the forty extra people, so the shared one stays as it is."""
    with start_sandbox(rate_per_second=2000, daily_quota=10_000_000) as sandbox:
        for n, handle in enumerate(TRUE_SCORES):
            if handle.startswith("fault_"):
                sandbox.klout_state.add_person(
                    KloutPerson(
                        screen_name=handle,
                        klout_id=str(880_000 + n),
                        twitter_id=str(990_000 + n),
                        score=TRUE_SCORES[handle],
                    )
                )
                sandbox.twitter_state.add_user(
                    TwitterUser(username=handle, id=str(990_000 + n), name=handle)
                )
        yield sandbox


@pytest.fixture
def settings(clean_db: Engine, database_url: str, flaky_sandbox: Sandbox) -> Settings:
    """Patient retries and a breaker that a run of bad luck does not open."""
    flaky_sandbox.klout_state.set_faults(FLAKY)
    flaky_sandbox.klout_state.reset_counters()
    base = make_settings(database_url, flaky_sandbox)
    klout = base.providers["klout"].model_copy(
        update={"max_attempts": 5, "breaker_threshold": 1000}
    )
    return base.model_copy(update={"providers": {"klout": klout}})


def lookup(client: TestClient, headers: dict[str, str], handles: list[str]) -> dict[str, Any]:
    contacts = [{"id": handle, "identities": {"twitter": handle}} for handle in handles]
    response = client.post("/v1/lookups", json={"contacts": contacts}, headers=headers)
    assert response.status_code == 200, response.text
    return {result["id"]: result for result in response.json()["results"]}


ALL = [*TRUE_SCORES, *UNSCORED, *MISSING, "busy_bea"]


class TestLookupUnderFaults:
    def test_every_scored_result_is_the_true_score(self, client, keys, flaky_sandbox):
        results = lookup(client, keys[Role.READ], ALL)
        assert list(results) == ALL
        for handle, true_score in TRUE_SCORES.items():
            result = results[handle]
            assert result["status"] in ("scored", "unavailable"), result
            if result["status"] == "scored":
                assert result["score"] == pytest.approx(true_score)
            else:
                assert result["score"] is None
                assert result["retry_after"] > 0
        scored = sum(results[h]["status"] == "scored" for h in TRUE_SCORES)
        assert scored >= 0.8 * len(TRUE_SCORES)
        faults = flaky_sandbox.klout_state.stats()["faults"]
        assert faults["service_busy"] + faults["dropped"] > 0  # the faults really happened

    def test_no_failure_turns_into_a_number(self, client, keys):
        results = lookup(client, keys[Role.READ], ALL)
        for handle in UNSCORED:
            assert results[handle]["status"] in ("unscored", "unavailable")
        for handle in MISSING:
            assert results[handle]["status"] in ("not_found", "unavailable")
        assert results["busy_bea"]["status"] == "unavailable"
        for handle in (*UNSCORED, *MISSING, "busy_bea"):
            assert results[handle]["score"] is None

    def test_unavailable_answers_are_fetched_again_once_the_faults_stop(
        self, client, keys, flaky_sandbox
    ):
        first = lookup(client, keys[Role.READ], list(TRUE_SCORES))
        missed = [h for h, r in first.items() if r["status"] == "unavailable"]
        flaky_sandbox.klout_state.set_faults(KloutFaults())
        flaky_sandbox.klout_state.reset_counters()
        second = lookup(client, keys[Role.READ], list(TRUE_SCORES))
        assert {h: r["score"] for h, r in second.items()} == pytest.approx(TRUE_SCORES)
        # the scored answers came from the cache; only the unavailable ones were asked again
        assert flaky_sandbox.klout_state.stats()["calls_total"] == 2 * len(missed)

    def test_retries_are_spent_on_transient_failures_only(self, client, keys, flaky_sandbox):
        lookup(client, keys[Role.READ], list(TRUE_SCORES))
        stats = flaky_sandbox.klout_state.stats()
        failed = stats["faults"]["service_busy"] + stats["faults"]["dropped"]
        # two calls per person when nothing fails; every failure costs at most one more call
        assert stats["calls_total"] <= 2 * len(TRUE_SCORES) + failed
        assert stats["bad_key"] == 0
        assert stats["over_limit_calls"] == 0
