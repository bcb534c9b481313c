"""Bad input gets a clear 4xx in the JSON error shape, and changes nothing."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from app.models import AuditEvent, CachedAnswer, OptOut, Role


def row_counts(runtime) -> tuple[int, int, int]:
    with runtime.sessions() as session:
        return tuple(  # type: ignore[return-value]
            session.scalar(select(func.count()).select_from(model)) or 0
            for model in (OptOut, CachedAnswer, AuditEvent)
        )


def assert_error_shape(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    return body["error"]


class TestBadInput:
    def test_malformed_json_is_400(self, client, keys, runtime):
        before = row_counts(runtime)
        response = client.post(
            "/v1/opt-outs",
            content=b'{"identities": {"twitter": "a"',
            headers={**keys[Role.SYNC], "Content-Type": "application/json"},
        )
        assert_error_shape(response, 400, "malformed_json")
        assert row_counts(runtime) == before

    def test_unknown_field_is_named(self, client, keys, runtime):
        response = client.post(
            "/v1/opt-outs",
            json={"identities": {"twitter": "a"}, "colour": "blue"},
            headers=keys[Role.SYNC],
        )
        error = assert_error_shape(response, 422, "validation_error")
        assert error["details"]["errors"][0]["field"] == "colour"
        assert row_counts(runtime)[:2] == (0, 0)

    def test_unknown_field_in_a_contact_is_named(self, client, keys):
        response = client.post(
            "/v1/lookups",
            json={"contacts": [{"id": "1", "identities": {"twitter": "a"}, "name": "x"}]},
            headers=keys[Role.READ],
        )
        error = assert_error_shape(response, 422, "validation_error")
        assert error["details"]["errors"][0]["field"] == "contacts.0.name"

    @pytest.mark.parametrize(
        "identities",
        [
            {"Twitter Handle": "a"},
            {"twitter": ""},
            {"twitter": 5},
            {f"k{i}": "v" for i in range(11)},
        ],
    )
    def test_bad_identity_maps_are_refused(self, client, keys, runtime, identities):
        response = client.post(
            "/v1/opt-outs", json={"identities": identities}, headers=keys[Role.SYNC]
        )
        assert_error_shape(response, 422, "validation_error")
        assert row_counts(runtime)[:2] == (0, 0)

    def test_oversized_body_is_413(self, client, keys, runtime):
        note = "x" * 3_000_000
        response = client.post(
            "/v1/opt-outs",
            content=json.dumps({"identities": {"twitter": "a"}, "note": note}).encode(),
            headers={**keys[Role.SYNC], "Content-Type": "application/json"},
        )
        assert_error_shape(response, 413, "payload_too_large")
        assert row_counts(runtime)[:2] == (0, 0)

    def test_oversized_chunked_body_is_413(self, client, keys, runtime):
        def chunks():
            yield b'{"identities": {"twitter": "a"}, "note": "'
            for _ in range(300):
                yield b"y" * 10_000
            yield b'"}'

        response = client.post(
            "/v1/opt-outs",
            content=chunks(),
            headers={**keys[Role.SYNC], "Content-Type": "application/json"},
        )
        assert_error_shape(response, 413, "payload_too_large")
        assert row_counts(runtime)[:2] == (0, 0)

    def test_unknown_route_is_404_in_the_same_shape(self, client):
        assert_error_shape(client.get("/v1/nothing-here"), 404, "not_found")

    def test_wrong_method_is_405_in_the_same_shape(self, client):
        assert_error_shape(client.put("/v1/lookups"), 405, "method_not_allowed")
