"""Background work for policies: apply scheduled activations when due, deliver announcements.

:class:`PolicyWorker` runs two daemon threads in the service process:

- **activations**: every ``poll_seconds`` (or at once after :meth:`PolicyWorker.wake`) it applies
  each scheduled activation whose ``effective_at`` has passed, one transaction each, under the
  policy lock (:func:`app.policy_versions.service.apply_scheduled`), so several replicas may run it.
- **deliveries**: it claims pending notices (a conditional ``UPDATE``, so one replica sends each)
  and posts them from a small thread pool. Each notice is retried with tenacity (exponential
  backoff with jitter) on a transport error or a non-2xx answer; every attempt is committed as a
  ``policy_delivery_attempt`` row before the next one starts. A notice that never gets through is
  marked ``failed``. Delivery never touches the activation it announces.

Every request carries the raw JSON body signed with the subscription's secret:
``X-Scoregate-Signature: sha256=<hex HMAC-SHA256(secret, body)>``, plus ``X-Scoregate-Timestamp``
(Unix seconds of the attempt), ``X-Scoregate-Event`` and ``X-Scoregate-Delivery`` (the notice id,
also ``id`` in the body, for receivers to drop duplicates).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

import httpx
from sqlalchemy.orm import Session, sessionmaker
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from app.db import session_scope
from app.models import DeliveryState, PolicyDelivery, PolicyDeliveryAttempt, utcnow
from app.policy_versions import repository, service
from app.runtime import register_worker

if TYPE_CHECKING:
    from app.runtime import Runtime

__all__ = ["DeliveryRetry", "PolicyWorker", "policy_worker", "sign", "worker_for"]

log = logging.getLogger("scoregate.policies.tasks")

_ERROR_CHARS = 500
#: a delivery left "sending" this long after its last attempt lost its sender; send it again
STALLED_AFTER = timedelta(minutes=15)


def sign(secret: str, body: bytes) -> str:
    """The signature header value for ``body``: ``sha256=`` and the hex HMAC-SHA256."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


@dataclass(frozen=True, slots=True)
class DeliveryRetry:
    """How hard a notice is pushed: attempts, backoff (seconds) and the per-request timeout."""

    attempts: int = 5
    initial_wait: float = 1.0
    max_wait: float = 60.0
    timeout: float = 10.0


class _AttemptFailed(Exception):
    """One delivery attempt did not get a 2xx; retried by tenacity."""


class _GiveUp(Exception):
    """Stop retrying now: the service is stopping or the subscription is gone."""


class PolicyWorker:
    """The two background loops of the policy domain (see the module docstring)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        poll_seconds: float = 5.0,
        retry: DeliveryRetry | None = None,
        senders: int = 4,
    ) -> None:
        self._sessions = sessions
        self.poll_seconds = poll_seconds
        #: replaceable at run time (tests shorten the backoff)
        self.retry = retry or DeliveryRetry()
        self._client = httpx.Client(follow_redirects=False)
        self._pool = ThreadPoolExecutor(senders, "scoregate-policy-send")
        self._stop = threading.Event()
        self._activations_due = threading.Event()
        self._deliveries_due = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for name, target in (
            ("scoregate-policy-activations", self._activation_loop),
            ("scoregate-policy-deliveries", self._delivery_loop),
        ):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def wake(self) -> None:
        """Look for due activations and pending notices now rather than at the next poll."""
        self._activations_due.set()
        self._deliveries_due.set()

    def stop(self) -> None:
        self._stop.set()
        self.wake()
        for thread in self._threads:
            thread.join(timeout=10)
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._client.close()

    def _activation_loop(self) -> None:
        while not self._stop.is_set():
            self._activations_due.wait(self.poll_seconds)
            self._activations_due.clear()
            if self._stop.is_set():
                return
            try:
                if self.apply_due():
                    self._deliveries_due.set()
            except Exception:
                log.exception("policy.scheduled.error")

    def _delivery_loop(self) -> None:
        while not self._stop.is_set():
            self._deliveries_due.wait(self.poll_seconds)
            self._deliveries_due.clear()
            if self._stop.is_set():
                return
            try:
                for delivery_id in self.claim_pending():
                    self._pool.submit(self.deliver, delivery_id)
            except Exception:
                log.exception("policy.delivery.claim.error")

    def apply_due(self) -> int:
        """Apply every scheduled activation that is due; returns how many were applied."""
        with self._sessions() as session:
            due = repository.due_activations(session, utcnow())
        applied = 0
        for activation_id, policy_name in due:
            with session_scope(self._sessions) as session:
                applied += service.apply_scheduled(session, activation_id, policy_name)
        return applied

    def claim_pending(self, limit: int = 100) -> list[int]:
        """Claim pending notices for this process; returns their ids."""
        claimed: list[int] = []
        with session_scope(self._sessions) as session:
            repository.requeue_stalled(session, utcnow() - STALLED_AFTER)
        with self._sessions() as session:
            candidates = repository.pending_deliveries(session, limit)
        for delivery_id in candidates:
            with session_scope(self._sessions) as session:
                if repository.claim_delivery(session, delivery_id):
                    claimed.append(delivery_id)
        return claimed

    def deliver(self, delivery_id: int) -> bool:
        """Send one claimed notice with retries; returns whether the subscriber took it."""
        retry = self.retry
        delivered = False
        try:
            retrying = Retrying(
                stop=stop_after_attempt(retry.attempts),
                wait=wait_exponential_jitter(
                    multiplier=retry.initial_wait, max=retry.max_wait, jitter=retry.initial_wait
                ),
                retry=retry_if_exception_type(_AttemptFailed),
                sleep=self._sleep,
            )
            for attempt in retrying:
                with attempt:
                    self._attempt(delivery_id, attempt.retry_state.attempt_number)
            delivered = True
        except (RetryError, _GiveUp):
            delivered = False
        except Exception:
            log.exception("policy.delivery.bug", extra={"delivery_id": delivery_id})
        with session_scope(self._sessions) as session:
            row = session.get(PolicyDelivery, delivery_id)
            if row is not None:
                row.state = DeliveryState.DELIVERED if delivered else DeliveryState.FAILED
                row.finished_at = utcnow()
        event = "policy.delivery.ok" if delivered else "policy.delivery.failed"
        log.info(event, extra={"delivery_id": delivery_id})
        return delivered

    def _sleep(self, seconds: float) -> None:
        """Backoff that ends early when the service stops."""
        self._stop.wait(seconds)
        if self._stop.is_set():
            raise _GiveUp("the service is stopping")

    def _attempt(self, delivery_id: int, number: int) -> None:
        with self._sessions() as session:
            row = session.get(PolicyDelivery, delivery_id)
            if row is None:
                return
            subscription = repository.get_subscription(session, row.subscription_id)
            url = subscription.url if subscription is not None else None
            secret = subscription.secret if subscription is not None else ""
            body = row.body.encode()
            event = str(row.event)
        status_code: int | None = None
        error: str | None = None
        if url is None:
            error = "the subscription was deleted"
        else:
            headers = {
                "Content-Type": "application/json",
                service.SIGNATURE_HEADER: sign(secret, body),
                service.TIMESTAMP_HEADER: str(int(time.time())),
                service.EVENT_HEADER: event,
                service.DELIVERY_HEADER: str(delivery_id),
            }
            try:
                response = self._client.post(
                    url, content=body, headers=headers, timeout=self.retry.timeout
                )
                status_code = response.status_code
                if not 200 <= status_code < 300:
                    error = f"the subscriber answered HTTP {status_code}"
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"[:_ERROR_CHARS]
        with session_scope(self._sessions) as session:
            repository.add(
                session,
                PolicyDeliveryAttempt(
                    delivery_id=delivery_id,
                    attempt=number,
                    at=utcnow(),
                    status_code=status_code,
                    error=error,
                ),
            )
            row = session.get(PolicyDelivery, delivery_id)
            if row is not None:
                row.attempts = number
        if url is None:
            raise _GiveUp("the subscription was deleted")
        if error is not None:
            raise _AttemptFailed(error)


@register_worker
def policy_worker(runtime: Runtime) -> PolicyWorker:
    """Every runtime runs one policy worker (scheduled activations and announcements)."""
    return PolicyWorker(runtime.sessions)


def worker_for(runtime: Runtime) -> PolicyWorker | None:
    """The runtime's policy worker, if it has been started."""
    return next((w for w in runtime.workers if isinstance(w, PolicyWorker)), None)
