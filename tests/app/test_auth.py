"""Every /v1 route refuses a missing key (401) and a too-weak role (403)."""

from __future__ import annotations

import pytest

from app.api_keys import service as api_keys
from app.models import ApiKey, Role

RANKING_BODY = {
    "items": [{"id": "1", "identities": {"twitter": "a"}, "arrived_at": "2026-01-01T00:00:00Z"}]
}
POLICY_DOCUMENT = {
    "name": "roles",
    "use_case": "enrichment",
    "provider": "klout",
    "segments": [{"name": "all", "min": 0}],
}

ROUTES = [
    ("POST", "/v1/lookups", Role.READ, {"contacts": [{"id": "1", "identities": {"twitter": "a"}}]}),
    ("GET", "/v1/providers", Role.READ, None),
    ("POST", "/v1/opt-outs", Role.SYNC, {"identities": {"twitter": "a"}}),
    ("POST", "/v1/opt-outs/check", Role.SYNC, {"identities": {"twitter": "a"}}),
    ("DELETE", "/v1/opt-outs", Role.ADMIN, {"identities": {"twitter": "a"}, "reason": "why"}),
    ("GET", "/v1/audit", Role.ADMIN, None),
    ("POST", "/v1/rankings", Role.READ, RANKING_BODY),
    ("GET", "/v1/policies", Role.READ, None),
    ("POST", "/v1/policies", Role.ADMIN, {"document": POLICY_DOCUMENT}),
    ("GET", "/v1/policies/{name}", Role.READ, None),
    ("POST", "/v1/policies/{name}/versions", Role.ADMIN, {"document": POLICY_DOCUMENT}),
    ("POST", "/v1/policies/{name}/versions/{version}/preview", Role.ADMIN, None),
    ("POST", "/v1/policies/{name}/versions/{version}/activate", Role.ADMIN, {"reason": "why"}),
    ("GET", "/v1/policies/{name}/changelog", Role.READ, None),
    ("GET", "/v1/policy-subscriptions", Role.ADMIN, None),
    ("POST", "/v1/policy-subscriptions", Role.ADMIN, {"url": "http://127.0.0.1:9/hook"}),
    ("DELETE", "/v1/policy-subscriptions/{subscription_id}", Role.ADMIN, None),
    ("GET", "/v1/opt-outs/status", Role.SYNC, None),
    ("GET", "/v1/sync-runs", Role.SYNC, None),
    ("GET", "/v1/sync-runs/{run_id}", Role.SYNC, None),
    ("POST", "/v1/sync-runs", Role.SYNC, {"connector": "none"}),
]
#: past the role check these need data the test app lacks (a configured connector)
NEEDS_DATA = {("POST", "/v1/sync-runs")}
#: authenticated by a secret token in the path, not an API key (Mailchimp cannot send one)
TOKEN_ROUTES = [
    ("GET", "/v1/webhooks/mailchimp/{token}"),
    ("POST", "/v1/webhooks/mailchimp/{token}"),
]


def v1_routes(client) -> set[tuple[str, str]]:
    paths = client.get("/openapi.json").json()["paths"]
    return {
        (method.upper(), path)
        for path, operations in paths.items()
        if path.startswith("/v1")
        for method in operations
    }


class TestAuthentication:
    def test_the_table_covers_every_v1_route(self, client):
        assert v1_routes(client) == {(m, p) for m, p, _, _ in ROUTES} | set(TOKEN_ROUTES)

    @pytest.mark.parametrize(("method", "path", "role", "body"), ROUTES)
    def test_missing_key_is_401(self, client, method, path, role, body):
        response = client.request(method, path, json=body)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "not_authenticated"

    @pytest.mark.parametrize(("method", "path", "role", "body"), ROUTES)
    def test_unknown_key_is_401(self, client, method, path, role, body):
        response = client.request(
            method, path, json=body, headers={"Authorization": "Bearer sg_nope"}
        )
        assert response.status_code == 401

    @pytest.mark.parametrize(("method", "path", "role", "body"), ROUTES)
    def test_weaker_role_is_403_and_enough_role_passes(
        self, client, keys, method, path, role, body
    ):
        order = [Role.READ, Role.SYNC, Role.ADMIN]
        for candidate in order:
            response = client.request(method, path, json=body, headers=keys[candidate])
            if order.index(candidate) < order.index(role):
                assert response.status_code == 403, (candidate, path)
            elif "{" in path or (method, path) in NEEDS_DATA:
                # a path template names no real resource: getting past the role check is the test
                assert response.status_code not in (401, 403), (candidate, path, response.text)
            else:
                assert response.status_code < 400, (candidate, path, response.text)

    def test_basic_scheme_is_refused(self, client):
        response = client.get("/v1/providers", headers={"Authorization": "Basic abc"})
        assert response.status_code == 401


class TestKeys:
    def test_keys_are_stored_hashed(self, runtime):
        with runtime.sessions() as session:
            created = api_keys.create_key(session, role=Role.READ, name="t", actor="tests")
            stored = session.get(ApiKey, created.id)
            assert stored is not None
            assert created.secret not in (stored.key_hash, stored.prefix)
            assert stored.key_hash == api_keys.hash_key(created.secret)

    def test_bootstrap_creates_one_admin_key_only_on_an_empty_database(self, runtime):
        with runtime.sessions() as session:
            first = api_keys.bootstrap_admin_key(session)
            second = api_keys.bootstrap_admin_key(session)
        assert first is not None
        assert first.role is Role.ADMIN
        assert second is None
