"""POST /v1/rankings: statuses resolved like lookups, ordered by the policy's ranking method."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.models import Role
from tests.app.policy_versions.conftest import (
    activate,
    create_policy,
    document,
)

START = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def item(handle: str, minutes: int) -> dict[str, Any]:
    arrived = START + timedelta(minutes=minutes)
    return {"id": handle, "identities": {"twitter": handle}, "arrived_at": arrived.isoformat()}


def rank(client, headers, *items: dict[str, Any], **extra: Any) -> Any:
    return client.post("/v1/rankings", json={"items": list(items), **extra}, headers=headers)


class TestRanking:
    def test_score_order_with_reasons(self, client, keys, population):
        response = rank(
            client,
            keys[Role.READ],
            item("dmitri_ops", 0),
            item("jtimberlake", 1),
            item("quiet_quinn", 2),
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["policy"] == {"name": "klout-default", "version": 0}
        assert body["method"] == "score"
        assert [i["id"] for i in body["items"]] == ["jtimberlake", "quiet_quinn", "dmitri_ops"]
        assert [i["rank"] for i in body["items"]] == [1, 2, 3]
        quinn = body["items"][1]
        assert quinn["status"] == "unscored"
        assert quinn["effective_score"] == pytest.approx(54.0)
        assert quinn["reason"]
        assert "median" in quinn["explanation"]

    def test_fifo_policy_ignores_scores(self, client, admin, keys, population):
        create_policy(client, admin, document(ranking={"method": "fifo"}))
        assert activate(client, admin, "support-queue", 1).status_code == 200
        response = rank(
            client,
            keys[Role.READ],
            item("jtimberlake", 5),
            item("dmitri_ops", 1),
            policy="support-queue",
        )
        body = response.json()
        assert body["policy"] == {"name": "support-queue", "version": 1}
        assert [i["id"] for i in body["items"]] == ["dmitri_ops", "jtimberlake"]

    def test_fair_topk_lifts_the_protected_group(self, client, admin, keys, population):
        missing = {"unscored": {"strategy": "fixed", "value": 30}}
        demotion = {"allow_demotion": True, "demotion_reason": "compare the fair merge"}
        fair_ranking = {"method": "fair_topk", "protected": ["unscored"], "p": 0.5}
        create_policy(client, admin, document(name="by-score", missing=missing, **demotion))
        create_policy(client, admin, document(missing=missing, ranking=fair_ranking, **demotion))
        assert activate(client, admin, "by-score", 1).status_code == 200
        assert activate(client, admin, "support-queue", 1).status_code == 200
        handles = ["jtimberlake", "femi_founder", "carla_dev", "ann_marketing", "bob_support"]
        items = [item(h, n) for n, h in enumerate(handles)] + [item("quiet_quinn", 10)]
        plain = rank(client, keys[Role.READ], *items, policy="by-score").json()
        fair = rank(client, keys[Role.READ], *items, policy="support-queue").json()
        assert fair["method"] == "fair_topk"
        assert [i["id"] for i in plain["items"]][-1] == "quiet_quinn"
        fair_rank = {i["id"]: i for i in fair["items"]}
        assert fair_rank["quiet_quinn"]["rank"] == 4
        assert fair_rank["quiet_quinn"]["effective_score"] == pytest.approx(30)
        assert fair_rank["quiet_quinn"]["reason"] != plain["items"][-1]["reason"]

    def test_opted_out_item_keeps_its_status(self, client, keys, population):
        opted = client.post(
            "/v1/opt-outs", json={"identities": {"twitter": "olga_optout"}}, headers=keys[Role.SYNC]
        )
        assert opted.status_code == 201
        body = rank(client, keys[Role.READ], item("olga_optout", 0), item("carla_dev", 1)).json()
        statuses = {i["id"]: i["status"] for i in body["items"]}
        assert statuses == {"olga_optout": "opted_out", "carla_dev": "scored"}
        olga = next(i for i in body["items"] if i["id"] == "olga_optout")
        assert olga["score"] is None


class TestRankingRefusals:
    def test_unknown_policy_is_404(self, client, keys):
        response = rank(client, keys[Role.READ], item("carla_dev", 0), policy="nope")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "policy_not_found"

    def test_forbidden_use_case_is_403(self, client, admin, keys, emulators):
        create_policy(client, admin, document())
        assert activate(client, admin, "support-queue", 1).status_code == 200
        emulators.klout_state.reset_counters()
        response = rank(
            client, keys[Role.READ], item("carla_dev", 0), policy="support-queue", use_case="hiring"
        )
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "use_case_forbidden"
        assert emulators.klout_state.stats()["calls_total"] == 0

    def test_duplicate_ids_are_422(self, client, keys):
        response = rank(client, keys[Role.READ], item("carla_dev", 0), item("carla_dev", 1))
        assert response.status_code == 422
        assert response.json()["error"]["details"]["field"] == "items"

    def test_more_than_1000_items_are_422(self, client, keys):
        items = [item(f"h{n}", n) for n in range(1001)]
        response = rank(client, keys[Role.READ], *items)
        assert response.status_code == 422
        assert response.json()["error"]["details"]["errors"][0]["field"] == "items"

    def test_naive_arrival_time_is_422(self, client, keys):
        bad = {"id": "a", "identities": {"twitter": "a"}, "arrived_at": "2026-11-01T09:00:00"}
        response = rank(client, keys[Role.READ], bad)
        assert response.status_code == 422
        assert response.json()["error"]["details"]["errors"][0]["field"] == "items.0.arrived_at"

    def test_no_key_is_401(self, client):
        assert rank(client, {}, item("carla_dev", 0)).status_code == 401
