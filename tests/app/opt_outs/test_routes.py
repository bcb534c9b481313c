"""/v1/opt-outs: record, check, remove; erasure of cached answers; audit trail."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.models import AuditEvent, CachedAnswer, OptOut, Role
from app.runtime import Runtime


def count(runtime: Runtime, model) -> int:
    with runtime.sessions() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


class TestRecord:
    def test_records_and_answers_201(self, client: TestClient, keys, runtime):
        response = client.post(
            "/v1/opt-outs",
            json={"identities": {"twitter": "@Ann_Marketing", "email": "Ann@Example.com"}},
            headers=keys[Role.SYNC],
        )
        assert response.status_code == 201
        body = response.json()
        assert body["recorded"] == 2
        assert body["already_recorded"] == 0
        assert len(body["identity_keys"]) == 2
        assert count(runtime, OptOut) == 2

    def test_is_idempotent(self, client, keys, runtime):
        body = {"identities": {"twitter": "ann_marketing"}, "source": "mailchimp"}
        first = client.post("/v1/opt-outs", json=body, headers=keys[Role.SYNC])
        second = client.post("/v1/opt-outs", json=body, headers=keys[Role.SYNC])
        assert first.status_code == second.status_code == 201
        assert second.json()["recorded"] == 0
        assert second.json()["already_recorded"] == 1
        assert count(runtime, OptOut) == 1

    def test_normalised_spellings_match(self, client, keys):
        client.post(
            "/v1/opt-outs",
            json={"identities": {"twitter": "@ANN_marketing "}},
            headers=keys[Role.SYNC],
        )
        check = client.post(
            "/v1/opt-outs/check",
            json={"identities": {"twitter": "ann_marketing"}},
            headers=keys[Role.SYNC],
        )
        assert check.json()["opted_out"] is True

    def test_erases_cached_answers(self, client, keys, runtime):
        lookup = {"contacts": [{"id": "1", "identities": {"twitter": "ann_marketing"}}]}
        assert client.post("/v1/lookups", json=lookup, headers=keys[Role.READ]).status_code == 200
        assert count(runtime, CachedAnswer) == 1
        response = client.post(
            "/v1/opt-outs",
            json={"identities": {"twitter": "ann_marketing"}},
            headers=keys[Role.SYNC],
        )
        assert response.json()["erased_answers"] == 1
        assert count(runtime, CachedAnswer) == 0
        again = client.post("/v1/lookups", json=lookup, headers=keys[Role.READ]).json()
        assert again["results"][0]["status"] == "opted_out"
        assert count(runtime, CachedAnswer) == 0

    def test_erasure_updates_the_scored_population(self, client, keys, runtime):
        contacts = [
            {"id": h, "identities": {"twitter": h}}
            for h in ("jtimberlake", "ann_marketing", "dmitri_ops")
        ]
        client.post("/v1/lookups", json={"contacts": contacts}, headers=keys[Role.READ])
        assert runtime.populations.get("klout").median() == 54.0
        client.post(
            "/v1/opt-outs",
            json={"identities": {"twitter": "ann_marketing"}},
            headers=keys[Role.SYNC],
        )
        assert runtime.populations.get("klout").count == 2

    def test_writes_an_audit_event_without_raw_identities(self, client, keys, admin):
        client.post(
            "/v1/opt-outs",
            json={"identities": {"email": "ann@example.com"}, "note": "asked by phone"},
            headers=keys[Role.SYNC],
        )
        events = client.get("/v1/audit", params={"action": "opt_out.recorded"}, headers=admin)
        assert events.status_code == 200
        [event] = events.json()["events"]
        assert event["details"]["source"] == "api"
        assert "ann@example.com" not in events.text
        assert event["actor"].startswith("key:")

    def test_bad_identity_is_refused_and_changes_nothing(self, client, keys, runtime):
        audit_before = count(runtime, AuditEvent)
        response = client.post(
            "/v1/opt-outs",
            json={"identities": {"twitter": "ok_handle", "email": "not-an-address"}},
            headers=keys[Role.SYNC],
        )
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "invalid_identity"
        assert response.json()["error"]["details"]["field"] == "identities.email"
        assert count(runtime, OptOut) == 0
        assert count(runtime, AuditEvent) == audit_before

    def test_unknown_source_is_refused(self, client, keys):
        response = client.post(
            "/v1/opt-outs",
            json={"identities": {"twitter": "x"}, "source": "carrier_pigeon"},
            headers=keys[Role.SYNC],
        )
        assert response.status_code == 422
        assert response.json()["error"]["details"]["errors"][0]["field"] == "source"


class TestCheck:
    def test_any_identity_opted_out_counts(self, client, keys):
        client.post(
            "/v1/opt-outs", json={"identities": {"email": "a@example.com"}}, headers=keys[Role.SYNC]
        )
        response = client.post(
            "/v1/opt-outs/check",
            json={"identities": {"twitter": "someone", "email": "A@example.com"}},
            headers=keys[Role.SYNC],
        )
        assert response.status_code == 200
        body = response.json()
        assert body["opted_out"] is True
        assert [m["kind"] for m in body["matches"]] == ["email"]
        assert body["matches"][0]["source"] == "api"

    def test_not_opted_out(self, client, keys):
        response = client.post(
            "/v1/opt-outs/check",
            json={"identities": {"twitter": "someone"}},
            headers=keys[Role.SYNC],
        )
        assert response.json() == {"opted_out": False, "matches": []}


class TestRemove:
    def test_admin_opts_back_in_with_a_reason(self, client, keys, admin, runtime):
        client.post(
            "/v1/opt-outs", json={"identities": {"twitter": "bob_support"}}, headers=keys[Role.SYNC]
        )
        response = client.request(
            "DELETE",
            "/v1/opt-outs",
            json={"identities": {"twitter": "bob_support"}, "reason": "person asked to be scored"},
            headers=admin,
        )
        assert response.status_code == 200
        assert response.json() == {"removed": 1, "not_found": 0}
        assert count(runtime, OptOut) == 0
        events = client.get("/v1/audit", params={"action": "opt_out.removed"}, headers=admin).json()
        assert events["events"][0]["details"]["reason"] == "person asked to be scored"

    def test_reason_is_required(self, client, admin):
        response = client.request(
            "DELETE", "/v1/opt-outs", json={"identities": {"twitter": "bob"}}, headers=admin
        )
        assert response.status_code == 422
        assert response.json()["error"]["details"]["errors"][0]["field"] == "reason"

    def test_sync_role_may_not_opt_anyone_back_in(self, client, keys):
        response = client.request(
            "DELETE",
            "/v1/opt-outs",
            json={"identities": {"twitter": "bob"}, "reason": "because"},
            headers=keys[Role.SYNC],
        )
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "forbidden"
