"""No raw identity in the database or the logs: searched for after real traffic."""

from __future__ import annotations

import logging

from sqlalchemy import inspect, text

from app.identities import IdentityKeyer
from app.models import Role

HANDLE = "ann_marketing"
EMAIL = "ann.marketing@example.com"


def database_text(runtime) -> str:
    dump = []
    with runtime.engine.connect() as connection:
        for table in inspect(connection).get_table_names():
            for row in connection.execute(text(f'SELECT * FROM "{table}"')):
                dump.append(repr(tuple(row)))
    return "\n".join(dump).lower()


class TestNoRawIdentities:
    def test_database_and_logs_hold_only_identity_keys(self, client, keys, admin, runtime, caplog):
        caplog.set_level(logging.DEBUG)
        contacts = [
            {"id": "1", "identities": {"twitter": HANDLE, "email": EMAIL}},
            {"id": "2", "identities": {"twitter": "quiet_quinn", "email": "q@example.com"}},
        ]
        assert (
            client.post(
                "/v1/lookups", json={"contacts": contacts}, headers=keys[Role.READ]
            ).status_code
            == 200
        )
        client.post(
            "/v1/opt-outs",
            json={"identities": {"twitter": HANDLE, "email": EMAIL}, "source": "api"},
            headers=keys[Role.SYNC],
        )
        client.post(
            "/v1/opt-outs/check", json={"identities": {"email": EMAIL}}, headers=keys[Role.SYNC]
        )
        client.request(
            "DELETE",
            "/v1/opt-outs",
            json={"identities": {"email": EMAIL}, "reason": "asked"},
            headers=admin,
        )
        client.post("/v1/lookups", json={"contacts": contacts}, headers=keys[Role.READ])

        stored = database_text(runtime)
        assert stored  # the tables are not empty
        for secret in (HANDLE, EMAIL, "quiet_quinn", "q@example.com"):
            assert secret not in stored
            assert secret not in caplog.text.lower()
        key = runtime.keyer.identity("email", EMAIL).key
        assert key in stored

    def test_identity_repr_hides_the_value(self, runtime):
        identity = runtime.keyer.identity("email", EMAIL)
        assert EMAIL not in repr(identity)

    def test_identity_keys_depend_on_the_secret(self, runtime):
        other = IdentityKeyer(b"another-secret-of-sixteen-bytes")
        assert other.key("twitter", HANDLE) != runtime.keyer.key("twitter", HANDLE)
