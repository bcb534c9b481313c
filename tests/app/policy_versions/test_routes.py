"""/v1/policies: documents, versions, preview, activation with the fairness guard, changelog,
and the policy every lookup applies. Real database, Klout and Twitter emulators over loopback."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from app.main import create_app
from app.models import AuditEvent, Base, PolicyVersion, Role, VersionState
from app.runtime import Runtime
from emulators.server import LoopbackServer
from tests.app.policy_versions.conftest import (
    SCORED_MEDIAN,
    activate,
    add_version,
    contact,
    create_policy,
    document,
)

ROLES = [Role.READ, Role.SYNC, Role.ADMIN]


def error_of(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()["error"]
    return body


def audit_actions(runtime: Runtime) -> list[str]:
    with runtime.sessions() as session:
        actions = session.scalars(select(AuditEvent.action).order_by(AuditEvent.id))
        return [action for action in actions if action.startswith("policy")]


class TestCreatePolicy:
    def test_creates_the_policy_with_a_first_draft(self, client, admin, runtime):
        response = client.post(
            "/v1/policies", json={"document": document(), "note": "first cut"}, headers=admin
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["name"] == "support-queue"
        assert body["active"] is None
        assert [d["version"] for d in body["drafts"]] == [1]
        assert body["drafts"][0]["note"] == "first cut"
        assert body["drafts"][0]["document"]["segments"][0] == {"name": "high", "min": 60.0}
        assert audit_actions(runtime) == ["policy.created"]

    def test_a_taken_name_is_409(self, client, admin):
        create_policy(client, admin, document())
        response = client.post("/v1/policies", json={"document": document()}, headers=admin)
        assert response.status_code == 409
        assert error_of(response)["code"] == "policy_exists"

    def test_unknown_provider_is_refused_naming_the_field(self, client, admin, runtime):
        response = client.post(
            "/v1/policies", json={"document": document(provider="kred")}, headers=admin
        )
        assert response.status_code == 422
        assert error_of(response)["details"]["field"] == "document.provider"
        assert client.get("/v1/policies", headers=admin).json()["policies"] == []
        assert audit_actions(runtime) == []

    @pytest.mark.parametrize(
        ("changes", "field"),
        [
            ({"missing": {"unscored": {"strategy": "shrug"}}}, "document.missing.unscored"),
            (
                {"missing": {"unscored": {"strategy": "percentile", "p": -5}}},
                "document.missing.unscored.percentile.p",
            ),
            (
                {"segments": [{"name": "low", "min": 0}, {"name": "high", "min": 60}]},
                "document.segments",
            ),
            (
                {"segments": [{"name": "a", "min": 50}, {"name": "a", "min": 0}]},
                "document.segments",
            ),
            ({"ranking": {"method": "fair_topk"}}, "document.ranking.protected"),
            ({"ranking": {"method": "score", "k": 10}}, "document.ranking.k"),
            ({"allow_demotion": True}, "document.demotion_reason"),
        ],
    )
    def test_bad_documents_are_422_naming_the_field(self, client, admin, changes, field):
        response = client.post(
            "/v1/policies", json={"document": document(**changes)}, headers=admin
        )
        assert response.status_code == 422, response.text
        fields = [problem["field"] for problem in error_of(response)["details"]["errors"]]
        assert any(f.startswith(field) for f in fields), fields
        assert client.get("/v1/policies", headers=admin).json()["policies"] == []


class TestListPolicies:
    def test_lists_every_policy_with_active_and_latest(self, client, admin, keys):
        create_policy(client, admin, document())
        add_version(client, admin, document())
        create_policy(client, admin, document(name="newsletter", use_case="segmentation"))
        assert activate(client, admin, "support-queue", 1).status_code == 200
        response = client.get("/v1/policies", headers=keys[Role.READ])
        assert response.status_code == 200
        listed = {p["name"]: p for p in response.json()["policies"]}
        assert listed["support-queue"]["active_version"] == 1
        assert listed["support-queue"]["latest_version"] == 2
        assert listed["newsletter"]["active_version"] is None


class TestGetPolicy:
    def test_shows_active_drafts_history_and_scheduled(self, client, admin, keys):
        create_policy(client, admin, document())
        add_version(client, admin, document(ranking={"method": "fifo"}))
        add_version(client, admin, document())
        add_version(client, admin, document(forbidden_use_cases=[]))
        assert activate(client, admin, "support-queue", 1).status_code == 200
        assert activate(client, admin, "support-queue", 2).status_code == 200
        later = (datetime.now(UTC) + timedelta(days=3)).isoformat()
        assert activate(client, admin, "support-queue", 3, effective_at=later).status_code == 200
        body = client.get("/v1/policies/support-queue", headers=keys[Role.READ]).json()
        assert body["active"]["version"] == 2
        assert [d["version"] for d in body["drafts"]] == [3, 4]
        assert [h["version"] for h in body["history"]] == [1]
        assert [(s["version"], s["announced"]) for s in body["scheduled"]] == [(3, True)]

    def test_unknown_policy_is_404(self, client, keys):
        response = client.get("/v1/policies/nope", headers=keys[Role.READ])
        assert response.status_code == 404
        assert error_of(response)["code"] == "policy_not_found"


class TestCreateVersion:
    def test_adds_the_next_draft(self, client, admin, runtime):
        create_policy(client, admin, document())
        assert add_version(client, admin, document(ranking={"method": "fifo"})) == 2
        assert add_version(client, admin, document()) == 3
        assert audit_actions(runtime).count("policy.version_created") == 2

    def test_a_document_named_otherwise_is_refused(self, client, admin):
        create_policy(client, admin, document())
        response = client.post(
            "/v1/policies/support-queue/versions",
            json={"document": document(name="other")},
            headers=admin,
        )
        assert response.status_code == 422
        assert error_of(response)["details"]["field"] == "document.name"

    def test_versions_of_a_missing_policy_are_404(self, client, admin):
        response = client.post(
            "/v1/policies/nope/versions", json={"document": document(name="nope")}, headers=admin
        )
        assert response.status_code == 404
        assert error_of(response)["code"] == "policy_not_found"


def row_counts(runtime: Runtime) -> dict[str, int]:
    with runtime.sessions() as session:
        return {
            table.name: session.scalar(select(func.count()).select_from(table)) or 0
            for table in Base.metadata.sorted_tables
        }


class TestPreview:
    def test_reports_moves_and_guard_figures_and_changes_nothing(
        self, client, admin, runtime, population
    ):
        create_policy(client, admin, document())
        assert activate(client, admin, "support-queue", 1).status_code == 200
        demoting = document(
            missing={"unscored": {"strategy": "fixed", "value": 0}},
            allow_demotion=True,
            demotion_reason="pilot",
        )
        add_version(client, admin, demoting)
        before = row_counts(runtime)
        with runtime.sessions() as session:
            states_before = list(
                session.execute(select(PolicyVersion.version, PolicyVersion.state))
            )
        response = client.post("/v1/policies/support-queue/versions/2/preview", headers=admin)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["source"] == "stored_population"
        assert body["current_version"] == 1
        report = body["report"]
        assert report["contacts"] == len(population) + 4
        assert report["segment_moves"] == [
            {"from_segment": "mid", "to_segment": "standard", "count": 1}
        ]
        assert report["largest_rank_moves"][0]["id"] == "unscored-representative"
        assert report["guard"]["passed"] is False
        assert report["guard"]["scored_median"] == SCORED_MEDIAN
        assert row_counts(runtime) == before
        with runtime.sessions() as session:
            states_after = list(session.execute(select(PolicyVersion.version, PolicyVersion.state)))
        assert states_after == states_before

    def test_posted_contacts_are_previewed(self, client, admin, population):
        create_policy(client, admin, document())
        now = datetime.now(UTC)
        contacts = [
            {"id": "a", "status": "scored", "score": 80, "arrived_at": now.isoformat()},
            {"id": "b", "status": "not_found", "arrived_at": (now + timedelta(1)).isoformat()},
        ]
        response = client.post(
            "/v1/policies/support-queue/versions/1/preview",
            json={"contacts": contacts},
            headers=admin,
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["source"] == "posted"
        assert body["current_version"] is None
        assert body["report"]["contacts"] == 2
        assert body["report"]["segment_changes"] == 2

    def test_a_scored_contact_without_score_is_422(self, client, admin):
        create_policy(client, admin, document())
        contacts = [{"id": "a", "status": "scored", "arrived_at": datetime.now(UTC).isoformat()}]
        response = client.post(
            "/v1/policies/support-queue/versions/1/preview",
            json={"contacts": contacts},
            headers=admin,
        )
        assert response.status_code == 422
        assert error_of(response)["details"]["errors"][0]["field"].startswith("contacts.0")

    def test_a_missing_version_is_404(self, client, admin):
        create_policy(client, admin, document())
        response = client.post("/v1/policies/support-queue/versions/9/preview", headers=admin)
        assert response.status_code == 404
        assert error_of(response)["code"] == "version_not_found"


class TestActivate:
    def test_activation_makes_the_version_active_and_audits_it(self, client, admin, runtime):
        create_policy(client, admin, document())
        response = activate(client, admin, "support-queue", 1)
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["state"], body["announced"], body["rollback"]) == ("applied", False, False)
        assert body["previous_version"] is None
        assert body["actor"].startswith("key:")
        assert "policy.version_activated" in audit_actions(runtime)

    def test_rollback_reactivates_an_older_version(self, client, admin, keys):
        create_policy(client, admin, document())
        add_version(client, admin, document(ranking={"method": "fifo"}))
        assert activate(client, admin, "support-queue", 1).status_code == 200
        assert activate(client, admin, "support-queue", 2).status_code == 200
        response = activate(client, admin, "support-queue", 1, reason="fifo hurt the queue")
        assert response.status_code == 200
        assert response.json()["rollback"] is True
        assert response.json()["previous_version"] == 2
        body = client.get("/v1/policies/support-queue", headers=keys[Role.READ]).json()
        assert body["active"]["version"] == 1

    def test_the_active_version_again_is_409(self, client, admin):
        create_policy(client, admin, document())
        assert activate(client, admin, "support-queue", 1).status_code == 200
        response = activate(client, admin, "support-queue", 1)
        assert response.status_code == 409
        assert error_of(response)["code"] == "version_already_active"

    def test_a_missing_version_is_404_and_changes_nothing(self, client, admin, runtime):
        create_policy(client, admin, document())
        before = row_counts(runtime)
        response = activate(client, admin, "support-queue", 7)
        assert response.status_code == 404
        assert error_of(response)["code"] == "version_not_found"
        assert row_counts(runtime) == before

    def test_a_missing_policy_is_404(self, client, admin):
        response = activate(client, admin, "nope", 1)
        assert response.status_code == 404
        assert error_of(response)["code"] == "policy_not_found"

    def test_a_reason_is_required(self, client, admin, runtime):
        create_policy(client, admin, document())
        before = row_counts(runtime)
        response = client.post(
            "/v1/policies/support-queue/versions/1/activate", json={}, headers=admin
        )
        assert response.status_code == 422
        assert error_of(response)["details"]["errors"][0]["field"] == "reason"
        assert row_counts(runtime) == before

    def test_a_future_effective_at_schedules_and_announces(self, client, admin, keys):
        create_policy(client, admin, document())
        when = datetime.now(UTC) + timedelta(hours=2)
        response = activate(client, admin, "support-queue", 1, effective_at=when.isoformat())
        assert response.status_code == 200
        body = response.json()
        assert (body["state"], body["announced"]) == ("scheduled", True)
        assert datetime.fromisoformat(body["effective_at"]) == when
        detail = client.get("/v1/policies/support-queue", headers=keys[Role.READ]).json()
        assert detail["active"] is None
        assert [s["version"] for s in detail["scheduled"]] == [1]


class TestFairnessGuard:
    def test_a_demotion_is_refused_with_the_figures(self, client, admin, runtime, population):
        create_policy(
            client, admin, document(missing={"unscored": {"strategy": "fixed", "value": 0}})
        )
        before = row_counts(runtime)
        response = activate(client, admin, "support-queue", 1)
        assert response.status_code == 409
        error = error_of(response)
        assert error["code"] == "fairness_guard_refused"
        violations = error["details"]["guard"]["violations"]
        assert {(v["group"], v["check"]) for v in violations} >= {("unscored", "median")}
        assert error["details"]["guard"]["scored_median"] == SCORED_MEDIAN
        assert row_counts(runtime) == before

    def test_a_low_percentile_fails_the_four_fifths_rule(self, client, admin, population):
        create_policy(
            client, admin, document(missing={"not_found": {"strategy": "percentile", "p": 5}})
        )
        response = activate(client, admin, "support-queue", 1)
        assert response.status_code == 409
        checks = {v["check"] for v in error_of(response)["details"]["guard"]["violations"]}
        assert "four_fifths" in checks

    def test_allow_demotion_passes_and_is_flagged_in_the_changelog(
        self, client, admin, keys, population
    ):
        create_policy(
            client,
            admin,
            document(
                missing={"unscored": {"strategy": "fixed", "value": 0}},
                allow_demotion=True,
                demotion_reason="legal asked for a conservative pilot",
            ),
        )
        response = activate(client, admin, "support-queue", 1)
        assert response.status_code == 200, response.text
        entry = client.get("/v1/policies/support-queue/changelog", headers=keys[Role.READ])
        first = entry.json()["entries"][0]
        assert first["demotion_allowed"] is True
        assert first["demotion_reason"] == "legal asked for a conservative pilot"

    def test_neutral_treatment_passes(self, client, admin, population):
        create_policy(client, admin, document())
        response = activate(client, admin, "support-queue", 1)
        assert response.status_code == 200
        assert response.json()["demotion_allowed"] is False


class TestChangelog:
    def test_every_activation_with_who_when_why_and_diff(self, client, admin, keys):
        create_policy(client, admin, document())
        add_version(
            client,
            admin,
            document(segments=[{"name": "high", "min": 70}, {"name": "rest", "min": 0}]),
        )
        assert activate(client, admin, "support-queue", 1, reason="launch").status_code == 200
        assert activate(client, admin, "support-queue", 2, reason="fewer bands").status_code == 200
        response = client.get("/v1/policies/support-queue/changelog", headers=keys[Role.READ])
        assert response.status_code == 200
        entries = response.json()["entries"]
        assert [(e["version"], e["reason"]) for e in entries] == [(2, "fewer bands"), (1, "launch")]
        changes = {c["path"]: c for c in entries[0]["changes"]}
        assert changes["segments.0.min"] == {
            "path": "segments.0.min",
            "kind": "changed",
            "old": 60.0,
            "new": 70.0,
        }
        assert changes["segments.2.name"]["kind"] == "removed"
        assert all(c["kind"] == "added" for c in entries[1]["changes"])
        assert entries[0]["actor"] == entries[1]["actor"]
        assert entries[0]["applied_at"] is not None

    def test_unknown_policy_is_404(self, client, keys):
        response = client.get("/v1/policies/nope/changelog", headers=keys[Role.READ])
        assert response.status_code == 404


class TestOneActiveVersion:
    def test_the_database_refuses_a_second_active_version(self, client, admin, runtime):
        create_policy(client, admin, document())
        add_version(client, admin, document())
        assert activate(client, admin, "support-queue", 1).status_code == 200
        second_active = (
            update(PolicyVersion)
            .where(PolicyVersion.version == 2)
            .values(state=VersionState.ACTIVE)
        )
        with runtime.sessions() as session, pytest.raises(IntegrityError):
            session.execute(second_active)

    def test_racing_activations_leave_exactly_one_active(self, admin, runtime, client):
        create_policy(client, admin, document())
        versions = [1] + [add_version(client, admin, document()) for _ in range(5)]
        barrier = threading.Barrier(len(versions))
        statuses: list[int] = []
        with LoopbackServer(create_app(runtime=runtime)) as server:

            def race(version: int) -> None:
                barrier.wait()
                response = httpx.post(
                    f"{server.url}/v1/policies/support-queue/versions/{version}/activate",
                    json={"reason": f"race {version}"},
                    headers=admin,
                    timeout=60,
                )
                statuses.append(response.status_code)

            threads = [threading.Thread(target=race, args=(v,)) for v in versions]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
        assert statuses == [200] * len(versions)
        with runtime.sessions() as session:
            active = list(
                session.scalars(
                    select(PolicyVersion.version).where(PolicyVersion.state == VersionState.ACTIVE)
                )
            )
        assert len(active) == 1
        entries = client.get("/v1/policies/support-queue/changelog", headers=admin).json()
        assert len(entries["entries"]) == len(versions)
        assert entries["entries"][0]["version"] == active[0]
        previous = [e["previous_version"] for e in reversed(entries["entries"])]
        applied = [e["version"] for e in reversed(entries["entries"])]
        assert previous == [None, *applied[:-1]]


class TestLookupsUseThePolicy:
    def test_results_name_the_policy_and_version(self, client, admin, keys, population):
        create_policy(
            client,
            admin,
            document(segments=[{"name": "top", "min": 80}, {"name": "rest", "min": 0}]),
        )
        assert activate(client, admin, "support-queue", 1).status_code == 200
        response = client.post(
            "/v1/lookups",
            json={"policy": "support-queue", "contacts": [contact("carla_dev")]},
            headers=keys[Role.READ],
        )
        assert response.status_code == 200, response.text
        result = response.json()["results"][0]
        assert result["policy"] == {"name": "support-queue", "version": 1}
        assert result["segment"] == "rest"
        assert "support-queue v1" in result["explanation"]

    def test_missing_scores_follow_the_active_version(self, client, admin, keys, population):
        create_policy(client, admin, document())
        add_version(
            client, admin, document(missing={"unscored": {"strategy": "percentile", "p": 75}})
        )
        assert activate(client, admin, "support-queue", 2).status_code == 200
        response = client.post(
            "/v1/lookups",
            json={"policy": "support-queue", "contacts": [contact("quiet_quinn")]},
            headers=keys[Role.READ],
        )
        result = response.json()["results"][0]
        assert result["status"] == "unscored"
        assert result["effective_score"] == pytest.approx(79.8)
        assert result["policy"]["version"] == 2

    def test_unknown_policy_is_404(self, client, keys):
        response = client.post(
            "/v1/lookups",
            json={"policy": "nope", "contacts": [contact("carla_dev")]},
            headers=keys[Role.READ],
        )
        assert response.status_code == 404
        assert error_of(response)["code"] == "policy_not_found"

    def test_a_policy_with_no_active_version_is_409(self, client, admin, keys):
        create_policy(client, admin, document())
        response = client.post(
            "/v1/lookups",
            json={"policy": "support-queue", "contacts": [contact("carla_dev")]},
            headers=keys[Role.READ],
        )
        assert response.status_code == 409
        assert error_of(response)["code"] == "policy_not_active"

    def test_a_forbidden_use_case_is_403_without_scores(self, client, admin, keys, emulators):
        create_policy(client, admin, document())
        assert activate(client, admin, "support-queue", 1).status_code == 200
        emulators.klout_state.reset_counters()
        response = client.post(
            "/v1/lookups",
            json={
                "policy": "support-queue",
                "use_case": "Hiring",
                "contacts": [contact("carla_dev")],
            },
            headers=keys[Role.READ],
        )
        assert response.status_code == 403
        error = error_of(response)
        assert error["code"] == "use_case_forbidden"
        assert "forbids" in error["message"]
        assert error["details"]["forbidden_use_cases"] == ["hiring"]
        assert "results" not in response.json()
        assert emulators.klout_state.stats()["calls_total"] == 0

    def test_the_built_in_default_is_version_0(self, client, keys):
        response = client.post(
            "/v1/lookups", json={"contacts": [contact("carla_dev")]}, headers=keys[Role.READ]
        )
        assert response.json()["results"][0]["policy"] == {"name": "klout-default", "version": 0}

    def test_a_stored_default_policy_replaces_the_built_in(self, client, admin, keys):
        create_policy(client, admin, document(name="klout-default", ranking={"method": "fifo"}))
        before = client.post(
            "/v1/lookups", json={"contacts": [contact("carla_dev")]}, headers=keys[Role.READ]
        )
        assert before.json()["results"][0]["policy"]["version"] == 0
        assert activate(client, admin, "klout-default", 1).status_code == 200
        after = client.post(
            "/v1/lookups", json={"contacts": [contact("carla_dev")]}, headers=keys[Role.READ]
        )
        assert after.json()["results"][0]["policy"] == {"name": "klout-default", "version": 1}


DEMO_ROUTES = [
    ("GET", "/v1/policies", Role.READ, None),
    ("POST", "/v1/policies", Role.ADMIN, {"document": document(name="another")}),
    ("GET", "/v1/policies/demo", Role.READ, None),
    ("POST", "/v1/policies/demo/versions", Role.ADMIN, {"document": document(name="demo")}),
    ("POST", "/v1/policies/demo/versions/2/preview", Role.ADMIN, None),
    ("POST", "/v1/policies/demo/versions/2/activate", Role.ADMIN, {"reason": "roles test"}),
    ("GET", "/v1/policies/demo/changelog", Role.READ, None),
]


class TestRoles:
    @pytest.fixture
    def demo(self, client, admin) -> None:
        create_policy(client, admin, document(name="demo"))
        add_version(client, admin, document(name="demo"))

    @pytest.mark.parametrize(("method", "path", "role", "body"), DEMO_ROUTES)
    def test_no_key_is_401(self, client, demo, method, path, role, body):
        response = client.request(method, path, json=body)
        assert response.status_code == 401

    @pytest.mark.parametrize(("method", "path", "role", "body"), DEMO_ROUTES)
    def test_each_role_gets_what_it_may(self, client, keys, demo, method, path, role, body):
        for candidate in ROLES:
            response = client.request(method, path, json=body, headers=keys[candidate])
            if ROLES.index(candidate) < ROLES.index(role):
                assert response.status_code == 403, (candidate, path)
            else:
                assert response.status_code < 400, (candidate, path, response.text)
