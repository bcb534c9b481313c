"""Scheduled activations and signed webhook announcements, delivered by the policy worker to a
subscriber running on loopback; every attempt is recorded."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, update
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.models import DeliveryState, PolicyDelivery, PolicyDeliveryAttempt, Role
from app.policy_versions.tasks import PolicyWorker
from emulators.server import LoopbackServer
from tests.app.policy_versions.conftest import (
    activate,
    add_version,
    contact,
    create_policy,
    document,
    wait_until,
)


@dataclass
class Subscriber:
    """A webhook receiver that records each request and checks its signature."""

    secret: str = ""
    #: status codes to answer, in order; 204 once they run out
    answers: list[int] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def hook(self, request: Request) -> JSONResponse:
        raw = await request.body()
        expected = "sha256=" + hmac.new(self.secret.encode(), raw, hashlib.sha256).hexdigest()
        with self.lock:
            self.received.append(
                {
                    "body": json.loads(raw),
                    "signed": hmac.compare_digest(
                        expected, request.headers.get("x-scoregate-signature", "")
                    ),
                    "timestamp": request.headers.get("x-scoregate-timestamp"),
                    "event": request.headers.get("x-scoregate-event"),
                }
            )
            status = self.answers.pop(0) if self.answers else 204
        return JSONResponse({}, status_code=status)

    def events(self) -> list[str]:
        with self.lock:
            return [item["event"] for item in self.received]


@pytest.fixture
def subscriber() -> Iterator[tuple[Subscriber, str]]:
    receiver = Subscriber()
    app = Starlette(routes=[Route("/hook", receiver.hook, methods=["POST"])])
    with LoopbackServer(app) as server:
        yield receiver, f"{server.url}/hook"


def subscribe(client, admin, url: str) -> dict[str, Any]:
    response = client.post("/v1/policy-subscriptions", json={"url": url}, headers=admin)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def deliveries(client, admin) -> list[dict[str, Any]]:
    subscriptions = client.get("/v1/policy-subscriptions", headers=admin).json()["subscriptions"]
    return [delivery for sub in subscriptions for delivery in sub["deliveries"]]


class TestScheduledActivation:
    def test_takes_effect_when_due(self, client, admin, keys, worker: PolicyWorker):
        create_policy(client, admin, document())
        when = datetime.now(UTC) + timedelta(seconds=1)
        response = activate(client, admin, "support-queue", 1, effective_at=when.isoformat())
        assert response.json()["state"] == "scheduled"

        def active_version() -> int | None:
            detail = client.get("/v1/policies/support-queue", headers=keys[Role.READ]).json()
            return detail["active"]["version"] if detail["active"] else None

        assert wait_until(lambda: active_version() == 1)
        entry = client.get("/v1/policies/support-queue/changelog", headers=admin).json()
        assert entry["entries"][0]["state"] == "applied"
        assert datetime.fromisoformat(entry["entries"][0]["applied_at"]) >= when
        lookup = client.post(
            "/v1/lookups",
            json={"policy": "support-queue", "contacts": [contact("carla_dev")]},
            headers=keys[Role.READ],
        )
        assert lookup.json()["results"][0]["policy"] == {"name": "support-queue", "version": 1}

    def test_a_scheduled_rollback_is_applied_once(self, client, admin, worker: PolicyWorker):
        create_policy(client, admin, document())
        add_version(client, admin, document(ranking={"method": "fifo"}))
        assert activate(client, admin, "support-queue", 1).status_code == 200
        assert activate(client, admin, "support-queue", 2).status_code == 200
        when = datetime.now(UTC) + timedelta(milliseconds=300)
        response = activate(client, admin, "support-queue", 1, effective_at=when.isoformat())
        assert response.json()["rollback"] is True

        def applied() -> bool:
            entries = client.get("/v1/policies/support-queue/changelog", headers=admin).json()
            return entries["entries"][0]["state"] == "applied"

        assert wait_until(applied)
        assert worker.apply_due() == 0
        detail = client.get("/v1/policies/support-queue", headers=admin).json()
        assert detail["active"]["version"] == 1
        assert detail["scheduled"] == []


class TestSubscriptions:
    def test_create_shows_the_secret_once(self, client, admin):
        created = subscribe(client, admin, "https://hooks.example.com/policies")
        assert created["secret"].startswith("whsec_")
        assert created["signature_header"] == "X-Scoregate-Signature"
        listed = client.get("/v1/policy-subscriptions", headers=admin).json()["subscriptions"]
        assert [s["url"] for s in listed] == ["https://hooks.example.com/policies"]
        assert "secret" not in listed[0]
        assert created["secret"] not in json.dumps(listed)

    @pytest.mark.parametrize("url", ["ftp://example.com/x", "file:///etc/passwd", "not a url"])
    def test_only_http_urls_are_accepted(self, client, admin, url):
        response = client.post("/v1/policy-subscriptions", json={"url": url}, headers=admin)
        assert response.status_code == 422
        assert response.json()["error"]["details"]["errors"][0]["field"] == "url"
        assert client.get("/v1/policy-subscriptions", headers=admin).json()["subscriptions"] == []

    def test_delete_stops_announcements(self, client, admin, subscriber, worker):
        receiver, url = subscriber
        created = subscribe(client, admin, url)
        response = client.delete(f"/v1/policy-subscriptions/{created['id']}", headers=admin)
        assert response.status_code == 204
        assert client.get("/v1/policy-subscriptions", headers=admin).json()["subscriptions"] == []
        create_policy(client, admin, document())
        assert activate(client, admin, "support-queue", 1).status_code == 200
        assert worker.claim_pending() == []
        assert receiver.received == []

    def test_deleting_a_missing_subscription_is_404(self, client, admin):
        response = client.delete("/v1/policy-subscriptions/999", headers=admin)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "subscription_not_found"

    def test_sync_role_cannot_manage_subscriptions(self, client, keys):
        response = client.get("/v1/policy-subscriptions", headers=keys[Role.SYNC])
        assert response.status_code == 403
        response = client.post(
            "/v1/policy-subscriptions", json={"url": "https://x.example"}, headers=keys[Role.SYNC]
        )
        assert response.status_code == 403

    def test_no_key_is_401(self, client):
        assert client.get("/v1/policy-subscriptions").status_code == 401
        assert client.delete("/v1/policy-subscriptions/1").status_code == 401


class TestAnnouncements:
    def test_schedule_and_activation_are_announced_signed(self, client, admin, subscriber, worker):
        receiver, url = subscriber
        receiver.secret = subscribe(client, admin, url)["secret"]
        create_policy(client, admin, document())
        when = datetime.now(UTC) + timedelta(milliseconds=500)
        response = activate(
            client, admin, "support-queue", 1, reason="launch", effective_at=when.isoformat()
        )
        assert response.status_code == 200
        assert wait_until(lambda: len(receiver.events()) == 2)
        assert receiver.events() == ["policy.version_scheduled", "policy.version_activated"]
        assert all(item["signed"] for item in receiver.received)
        assert all(item["timestamp"].isdigit() for item in receiver.received)
        notice = receiver.received[1]["body"]
        assert notice["policy"] == "support-queue"
        assert notice["version"] == 1
        assert notice["reason"] == "launch"
        assert {"path": "ranking.method", "kind": "added", "old": None, "new": "score"} in notice[
            "changes"
        ]
        assert wait_until(
            lambda: [d["state"] for d in deliveries(client, admin)] == ["delivered"] * 2
        )

    def test_a_wrong_secret_does_not_verify(self, client, admin, subscriber, worker):
        receiver, url = subscriber
        subscribe(client, admin, url)
        receiver.secret = "whsec_not-the-one"
        create_policy(client, admin, document())
        assert activate(client, admin, "support-queue", 1).status_code == 200
        assert wait_until(lambda: len(receiver.events()) == 1)
        assert receiver.received[0]["signed"] is False

    def test_a_failing_subscriber_is_retried_and_every_attempt_recorded(
        self, client, admin, subscriber, worker
    ):
        receiver, url = subscriber
        receiver.secret = subscribe(client, admin, url)["secret"]
        receiver.answers = [500, 503]
        create_policy(client, admin, document())
        assert activate(client, admin, "support-queue", 1).status_code == 200
        assert wait_until(lambda: [d["state"] for d in deliveries(client, admin)] == ["delivered"])
        attempts = deliveries(client, admin)[0]["attempts"]
        assert [(a["attempt"], a["status_code"]) for a in attempts] == [
            (1, 500),
            (2, 503),
            (3, 204),
        ]
        assert attempts[0]["error"] == "the subscriber answered HTTP 500"
        assert len(receiver.received) == 3

    def test_a_dead_subscriber_never_blocks_or_undoes_the_activation(
        self, client, admin, keys, worker
    ):
        subscribe(client, admin, "http://127.0.0.1:9/unreachable")
        create_policy(client, admin, document())
        response = activate(client, admin, "support-queue", 1)
        assert response.status_code == 200
        assert wait_until(lambda: [d["state"] for d in deliveries(client, admin)] == ["failed"])
        attempts = deliveries(client, admin)[0]["attempts"]
        assert len(attempts) == worker.retry.attempts
        assert all(a["status_code"] is None and a["error"] for a in attempts)
        detail = client.get("/v1/policies/support-queue", headers=keys[Role.READ]).json()
        assert detail["active"]["version"] == 1

    def test_a_notice_whose_sender_died_mid_send_is_sent_again(
        self, client, admin, subscriber, worker, runtime
    ):
        receiver, url = subscriber
        receiver.secret = subscribe(client, admin, url)["secret"]
        create_policy(client, admin, document())
        assert activate(client, admin, "support-queue", 1).status_code == 200
        assert wait_until(lambda: [d["state"] for d in deliveries(client, admin)] == ["delivered"])
        # as if the process died after claiming it: "sending", last touched long ago
        with runtime.sessions() as session:
            session.execute(delete(PolicyDeliveryAttempt))
            session.execute(
                update(PolicyDelivery).values(
                    state=DeliveryState.SENDING,
                    created_at=datetime.now(UTC) - timedelta(hours=1),
                )
            )
            session.commit()
        worker.wake()
        assert wait_until(lambda: [d["state"] for d in deliveries(client, admin)] == ["delivered"])
        assert len(receiver.received) == 2
        assert receiver.received[0]["body"]["id"] == receiver.received[1]["body"]["id"]
