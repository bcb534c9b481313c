"""POST /v1/lookups against the Klout and Twitter emulators over loopback."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import func, select

from app.main import create_app
from app.models import CachedAnswer, Role
from app.runtime import Runtime
from emulators.klout import KloutFaults, KloutSettings, UnknownStyle
from emulators.sandbox import Sandbox

SCORED = {
    "jtimberlake": 92.8,
    "femi_founder": 86.4,
    "carla_dev": 73.2,
    "ann_marketing": 54.0,
    "bob_support": 41.5,
    "gus_gardener": 33.3,
    "dmitri_ops": 21.7,
}


def contact(handle: str, cid: str | None = None, **more: str) -> dict[str, Any]:
    return {"id": cid or handle, "identities": {"twitter": handle, **more}}


def lookup(client: TestClient, headers: dict[str, str], *contacts: dict[str, Any], **extra: Any):
    response = client.post(
        "/v1/lookups", json={"contacts": list(contacts), **extra}, headers=headers
    )
    assert response.status_code == 200, response.text
    return {result["id"]: result for result in response.json()["results"]}


def opt_out(client: TestClient, headers: dict[str, str], **identities: str) -> None:
    response = client.post("/v1/opt-outs", json={"identities": identities}, headers=headers)
    assert response.status_code == 201, response.text


class TestStatuses:
    def test_scored_contact_keeps_its_score(self, client, keys):
        result = lookup(client, keys[Role.READ], contact("jtimberlake"))["jtimberlake"]
        assert result["status"] == "scored"
        assert result["score"] == pytest.approx(92.8)
        assert result["effective_score"] == pytest.approx(92.8)
        assert result["segment"] == "high"
        assert result["evidence"] == [{"source": "klout", "fact": "klout score 92.8"}]
        assert result["policy"] == {"name": "klout-default", "version": 0}

    def test_every_status_with_its_evidence(self, client, keys, emulators: Sandbox):
        handles = [*SCORED, "quiet_quinn", "nobody_here_42", "olga_optout", "busy_bea"]
        opt_out(client, keys[Role.SYNC], twitter="olga_optout")
        results = lookup(client, keys[Role.READ], *(contact(h) for h in handles))
        assert list(results) == handles  # in the order asked
        assert {h: results[h]["status"] for h in SCORED} == dict.fromkeys(SCORED, "scored")
        assert results["quiet_quinn"]["status"] == "unscored"
        assert results["nobody_here_42"]["status"] == "not_found"
        assert results["olga_optout"]["status"] == "opted_out"
        assert results["busy_bea"]["status"] == "unavailable"
        assert [e["source"] for e in results["quiet_quinn"]["evidence"]] == ["klout", "twitter"]
        assert results["quiet_quinn"]["evidence"][1]["fact"] == "twitter handle exists"
        assert results["nobody_here_42"]["evidence"][1]["fact"] == "twitter has no such handle"
        assert results["olga_optout"]["evidence"][0]["source"] == "registry"

    def test_missing_scores_get_the_median_never_zero(self, client, keys):
        handles = [*SCORED, "quiet_quinn", "nobody_here_42", "busy_bea"]
        lookup(client, keys[Role.READ], *(contact(h) for h in SCORED))
        results = lookup(client, keys[Role.READ], *(contact(h) for h in handles))
        median = sorted(SCORED.values())[len(SCORED) // 2]
        for handle in ("quiet_quinn", "nobody_here_42", "busy_bea"):
            assert results[handle]["score"] is None
            assert results[handle]["effective_score"] == pytest.approx(median)
            assert "median" in results[handle]["explanation"]

    def test_no_scored_population_gives_no_effective_score(self, client, keys):
        result = lookup(client, keys[Role.READ], contact("quiet_quinn"))["quiet_quinn"]
        assert result["status"] == "unscored"
        assert result["effective_score"] is None
        assert result["segment"] is None

    def test_suspended_handle_exists_so_it_is_unscored(self, client, keys):
        result = lookup(client, keys[Role.READ], contact("suspended_sam"))["suspended_sam"]
        assert result["status"] == "unscored"
        assert "suspended" in result["evidence"][1]["fact"]

    def test_opted_out_person_is_never_sent_upstream(self, client, keys, emulators: Sandbox):
        opt_out(client, keys[Role.SYNC], email="olga@example.org")
        emulators.klout_state.reset_counters()
        results = lookup(client, keys[Role.READ], contact("olga_optout", email="olga@example.org"))
        assert results["olga_optout"]["status"] == "opted_out"
        assert results["olga_optout"]["score"] is None
        assert emulators.klout_state.stats()["calls_total"] == 0

    def test_unknown_handle_without_existence_check_is_unscored(
        self, client, keys, runtime: Runtime
    ):
        runtime.providers.providers["klout"].existence = None
        result = lookup(client, keys[Role.READ], contact("nobody_here_42"))["nobody_here_42"]
        assert result["status"] == "unscored"
        assert "cannot tell" in result["evidence"][-1]["fact"]

    @pytest.mark.parametrize(
        "style",
        [
            UnknownStyle.NO_USERS,
            UnknownStyle.NOT_FOUND,
            UnknownStyle.STATUS_596,
            UnknownStyle.EMPTY_200,
        ],
    )
    def test_every_unknown_answer_style_means_no_such_user(self, client, keys, emulators, style):
        emulators.klout_state.configure(
            KloutSettings(rate_per_second=2000, daily_quota=10_000_000, unknown_style=style)
        )
        results = lookup(client, keys[Role.READ], contact("quiet_quinn"), contact("nobody_here_42"))
        assert results["quiet_quinn"]["status"] == "unscored"
        assert results["nobody_here_42"]["status"] == "not_found"

    def test_malformed_handle_is_not_found_without_a_call(self, client, keys, emulators):
        results = lookup(
            client, keys[Role.READ], {"id": "x", "identities": {"twitter": "no spaces allowed"}}
        )
        assert results["x"]["status"] == "not_found"
        assert "malformed" in results["x"]["evidence"][0]["fact"]
        assert emulators.klout_state.stats()["calls_total"] == 0

    def test_contact_without_a_usable_identity_is_unscored(self, client, keys):
        results = lookup(
            client, keys[Role.READ], {"id": "m", "identities": {"email": "m@example.com"}}
        )
        assert results["m"]["status"] == "unscored"
        assert "twitter" in results["m"]["evidence"][0]["fact"]


class TestUnavailable:
    def test_server_errors_are_unavailable_never_a_number(self, client, keys, emulators):
        emulators.klout_state.set_faults(KloutFaults(service_busy_share=1.0))
        result = lookup(client, keys[Role.READ], contact("jtimberlake"))["jtimberlake"]
        assert result["status"] == "unavailable"
        assert result["score"] is None
        assert result["retry_after"] > 0
        assert "Service too busy" in result["evidence"][0]["fact"]

    def test_dropped_connections_are_unavailable(self, client, keys, emulators):
        emulators.klout_state.set_faults(KloutFaults(dropped_share=1.0))
        result = lookup(client, keys[Role.READ], contact("carla_dev"))["carla_dev"]
        assert result["status"] == "unavailable"
        assert result["score"] is None

    def test_unavailable_is_never_cached(self, client, keys, emulators, runtime: Runtime):
        lookup(client, keys[Role.READ], contact("busy_bea"))
        with runtime.sessions() as session:
            assert session.scalar(select(func.count()).select_from(CachedAnswer)) == 0

    def test_bad_api_key_is_unavailable_and_shown_on_readyz(
        self, settings, engine, emulators, keys
    ):
        klout = settings.providers["klout"].model_copy(update={"api_key": SecretStr("wrong")})
        wrong = settings.model_copy(update={"providers": {"klout": klout}})
        running = Runtime(wrong, engine=engine)
        running.start(run_migrations=False)
        try:
            with TestClient(create_app(runtime=running)) as client:
                result = lookup(client, keys[Role.READ], contact("jtimberlake"))["jtimberlake"]
                assert result["status"] == "unavailable"
                assert result["score"] is None
                assert emulators.klout_state.stats()["calls_total"] == 1  # never retried
                ready = client.get("/readyz")
                assert ready.status_code == 503
                assert ready.json()["checks"]["credentials:klout"] == "refused"
                providers = client.get("/v1/providers", headers=keys[Role.READ]).json()
                assert providers["providers"][0]["credentials_ok"] is False
        finally:
            running.close()


class TestCache:
    def test_second_lookup_is_served_from_cache(self, client, keys, emulators):
        lookup(client, keys[Role.READ], contact("ann_marketing"), contact("quiet_quinn"))
        emulators.klout_state.reset_counters()
        emulators.twitter_state.reset_counters()
        results = lookup(client, keys[Role.READ], contact("ann_marketing"), contact("quiet_quinn"))
        assert results["ann_marketing"]["status"] == "scored"
        assert results["quiet_quinn"]["status"] == "unscored"
        assert emulators.klout_state.stats()["calls_total"] == 0
        assert emulators.twitter_state.stats()["calls_total"] == 0

    def test_same_identity_twice_in_one_request_is_fetched_once(self, client, keys, emulators):
        results = lookup(
            client, keys[Role.READ], contact("bob_support", "a"), contact("bob_support", "b")
        )
        assert results["a"]["score"] == results["b"]["score"] == pytest.approx(41.5)
        assert emulators.klout_state.stats()["calls_total"] == 2  # identity + score, once


class TestLimits:
    def test_a_thousand_contacts_come_back_in_order(self, client, keys):
        contacts = [
            {"id": f"c{i}", "identities": {"email": f"person{i}@example.com"}} for i in range(1000)
        ]
        response = client.post("/v1/lookups", json={"contacts": contacts}, headers=keys[Role.READ])
        assert response.status_code == 200
        assert [r["id"] for r in response.json()["results"]] == [f"c{i}" for i in range(1000)]

    def test_more_than_a_thousand_contacts_are_refused(self, client, keys):
        contacts = [
            {"id": f"c{i}", "identities": {"email": f"p{i}@example.com"}} for i in range(1001)
        ]
        response = client.post("/v1/lookups", json={"contacts": contacts}, headers=keys[Role.READ])
        assert response.status_code == 422
        assert response.json()["error"]["details"]["errors"][0]["field"] == "contacts"

    def test_empty_identities_are_refused(self, client, keys):
        response = client.post(
            "/v1/lookups",
            json={"contacts": [{"id": "a", "identities": {}}]},
            headers=keys[Role.READ],
        )
        assert response.status_code == 422
        assert "identities" in response.json()["error"]["message"]
