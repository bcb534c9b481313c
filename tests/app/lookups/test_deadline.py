"""Interactive deadlines: a slow provider rate makes some contacts ``unavailable`` at once, with
``retry_after`` and a background fetch queued; the next lookup is then served from the cache."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.config import Settings
from app.models import Role
from emulators.sandbox import Sandbox
from tests.conftest import make_settings

#: the sandbox's scored people by Klout id, asked by id so that one lookup is one upstream call
TRUE_SCORES = {
    "635263": 92.8,
    "54887627490056592": 86.4,
    "391122": 73.2,
    "771204": 54.0,
    "118472": 41.5,
    "903718245561022817": 33.3,
    "250981": 21.7,
}
#: spacing of 250 ms: a 300 ms deadline leaves room for two calls at most
SLOW_RATE = "4/second"


@pytest.fixture
def settings(clean_db: Engine, database_url: str, emulators: Sandbox) -> Settings:
    base = make_settings(database_url, emulators)
    klout = base.providers["klout"].model_copy(update={"rate": SLOW_RATE})
    return base.model_copy(update={"providers": {"klout": klout}})


def lookup(client: TestClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    contacts = [{"id": kid, "identities": {"klout": kid}} for kid in TRUE_SCORES]
    response = client.post("/v1/lookups", json={"contacts": contacts, **body}, headers=headers)
    assert response.status_code == 200, response.text
    return {result["id"]: result for result in response.json()["results"]}


class TestInteractiveDeadline:
    def test_contacts_past_the_deadline_are_unavailable_with_a_queued_fetch(
        self, client, keys, runtime
    ):
        results = lookup(client, keys[Role.READ], deadline_ms=300)
        late = [r for r in results.values() if r["status"] == "unavailable"]
        assert len(late) >= len(TRUE_SCORES) - 2
        for result in late:
            assert result["score"] is None
            assert result["retry_after"] > 0
            assert "background fetch is queued" in result["evidence"][0]["fact"]
        for kid, result in results.items():
            if result["status"] == "scored":
                assert result["score"] == pytest.approx(TRUE_SCORES[kid])
        assert runtime.background.join(timeout=20)

    def test_after_the_background_fetches_the_cache_answers(self, client, keys, runtime, emulators):
        lookup(client, keys[Role.READ], deadline_ms=300)
        assert runtime.background.join(timeout=20)
        assert emulators.klout_state.stats()["accepted"] == len(TRUE_SCORES)
        emulators.klout_state.reset_counters()
        results = lookup(client, keys[Role.READ], deadline_ms=300)
        assert {kid: r["score"] for kid, r in results.items()} == pytest.approx(TRUE_SCORES)
        assert {r["status"] for r in results.values()} == {"scored"}
        assert emulators.klout_state.stats()["calls_total"] == 0

    def test_zero_deadline_waits_for_no_slot(self, client, keys, runtime, emulators):
        results = lookup(client, keys[Role.READ], deadline_ms=0)
        # only a slot free at once is taken; nobody queues behind it
        scored = [kid for kid, r in results.items() if r["status"] == "scored"]
        assert len(scored) <= 1
        assert emulators.klout_state.stats()["calls_total"] == len(scored)
        assert runtime.background.join(timeout=20)
        # every identity was fetched exactly once, in the lookup or in the background
        assert emulators.klout_state.stats()["accepted"] == len(TRUE_SCORES)

    def test_the_limiter_never_let_the_emulator_see_too_many_calls(
        self, client, keys, runtime, emulators
    ):
        lookup(client, keys[Role.READ], deadline_ms=300)
        assert runtime.background.join(timeout=20)
        stats = emulators.klout_state.stats()
        assert stats["max_accepted_in_any_window"] <= 4
        assert stats["over_limit_calls"] == 0
