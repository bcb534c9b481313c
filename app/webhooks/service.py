"""Mailchimp audience webhooks: receive fast and durably, process in the background.

Receiving (``receive``): the token in the URL is compared in constant time (Mailchimp signs
nothing; its advice is a secret in the URL). The validator's GET and empty POST get 200. An event
is stored before the 200 leaves, under a dedupe key (a keyed hash of type, ``fired_at`` and the
``data[...]`` fields), so Mailchimp's retries (for 75 minutes) are stored once. The form body holds
addresses, which scoregate never stores in the clear: it is kept sealed (AES-GCM under a key
derived from the service secret) and erased once the event is processed.

Processing (``process_due``, worked by a background thread):

- ``subscribe`` / ``profile``: a set "do not score" merge field (the connector's mapping) records an
  opt-out (source ``mailchimp``); otherwise the member is resolved at ``webhook`` priority, the
  policy applied, and the score merge fields and the segment tag written through the connector.
  Writes never carry a status: nobody is ever (re-)subscribed.
- ``unsubscribe`` with ``action=delete`` records an opt-out; a plain unsubscribe is about mail, not
  scoring, and changes nothing.
- ``upemail`` moves the contact link from the old address's record to the new one.
- ``cleaned`` writes status ``not_found`` (the address bounced or was reported: a data-quality
  problem, not a judgement of a person).
"""

from __future__ import annotations

import hmac
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import NotFound
from app.identities import Identity, IdentityError, IdentityKeyer
from app.lookups import service as lookups
from app.lookups.schemas import ContactIn
from app.models import OptOutSource, WebhookEvent, WebhookEventState, utcnow
from app.opt_outs import service as opt_outs
from app.propagation import service as propagation
from app.sync_runs import service as sync_runs
from app.webhooks import repository
from connectors.base import Priority
from connectors.downstream import ScoreWrite
from connectors.errors import PermanentUpstreamError, UpstreamError
from connectors.mailchimp import EMAIL_ADDRESS, MailchimpConnector, subscriber_hash
from policies.status import Status

if TYPE_CHECKING:
    from app.runtime import Runtime

__all__ = [
    "EventType",
    "Outcome",
    "ReceiveResult",
    "check_token",
    "process_due",
    "receive",
]

log = logging.getLogger("scoregate.webhooks")

_SEAL_CONTEXT = ("mailchimp_webhook_seal", "v1")
_DEDUPE_KIND = "mailchimp_webhook"
#: how long processing one event may wait for score-provider slots
_RESOLVE_DEADLINE = 30.0


class EventType(StrEnum):
    """The audience events scoregate acts on (``campaign`` events are acknowledged, not kept)."""

    SUBSCRIBE = "subscribe"
    PROFILE = "profile"
    UNSUBSCRIBE = "unsubscribe"
    UPEMAIL = "upemail"
    CLEANED = "cleaned"


class Outcome(StrEnum):
    VALIDATION = "validation"
    STORED = "stored"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"


@dataclass(frozen=True, slots=True)
class ReceiveResult:
    outcome: Outcome
    event_id: int | None = None


class _Retry(Exception):
    """Processing failed for a reason that may pass (an upstream hiccup)."""


def check_token(runtime: Runtime, token: str) -> None:
    """Refuse (404, as if the URL did not exist) anything but the configured token."""
    configured = runtime.settings.mailchimp_webhook.token
    expected = b"" if configured is None else configured.get_secret_value().encode()
    # compare even when none is configured, so the answer takes the same time either way
    matches = hmac.compare_digest(expected or b"\0", token.encode())
    if configured is None or not matches:
        raise NotFound("no such webhook", code="not_found")


def _canonical(event_type: str, fired_at: str, data: Mapping[str, str]) -> str:
    return json.dumps(
        {"type": event_type, "fired_at": fired_at, "data": dict(sorted(data.items()))},
        separators=(",", ":"),
    )


def _seal_key(keyer: IdentityKeyer) -> bytes:
    return bytes.fromhex(keyer.key(*_SEAL_CONTEXT))


def _seal(keyer: IdentityKeyer, text: str, dedupe_key: str) -> bytes:
    nonce = os.urandom(12)
    return nonce + AESGCM(_seal_key(keyer)).encrypt(nonce, text.encode(), dedupe_key.encode())


def _unseal(keyer: IdentityKeyer, sealed: bytes, dedupe_key: str) -> dict[str, Any]:
    plain = AESGCM(_seal_key(keyer)).decrypt(sealed[:12], sealed[12:], dedupe_key.encode())
    loaded = json.loads(plain)
    if not isinstance(loaded, dict):
        raise ValueError("sealed webhook payload is not an object")
    return loaded


def receive(
    session: Session, runtime: Runtime, token: str, form: Mapping[str, str]
) -> ReceiveResult:
    """Check the token, then store the event (commit) or recognise a retry of a stored one."""
    check_token(runtime, token)
    if not any(value for value in form.values()):
        return ReceiveResult(Outcome.VALIDATION)
    event_type = form.get("type", "").strip().lower()
    if event_type not in EventType.__members__.values():
        log.info("webhook.mailchimp.ignored", extra={"type": event_type[:32]})
        return ReceiveResult(Outcome.IGNORED)
    fired_at = form.get("fired_at", "")[:32]
    data = {key: value for key, value in form.items() if key.startswith("data[")}
    canonical = _canonical(event_type, fired_at, data)
    dedupe_key = runtime.keyer.key(_DEDUPE_KIND, canonical)
    existing = repository.by_dedupe_key(session, dedupe_key)
    if existing is not None:
        return ReceiveResult(Outcome.DUPLICATE, existing.id)
    now = utcnow()
    event = WebhookEvent(
        source="mailchimp",
        dedupe_key=dedupe_key,
        type=event_type,
        fired_at=fired_at,
        sealed=_seal(runtime.keyer, canonical, dedupe_key),
        state=WebhookEventState.PENDING,
        attempts=0,
        received_at=now,
        next_attempt_at=now,
        outcome={},
    )
    try:
        repository.add_event(session, event)
        session.commit()
    except IntegrityError:
        # the same delivery raced in on another connection: it is stored, once
        session.rollback()
        raced = repository.by_dedupe_key(session, dedupe_key)
        return ReceiveResult(Outcome.DUPLICATE, None if raced is None else raced.id)
    log.info("webhook.mailchimp.stored", extra={"event_id": event.id, "type": event_type})
    return ReceiveResult(Outcome.STORED, event.id)


# ----- processing -----------------------------------------------------------------------------


def process_due(runtime: Runtime, *, limit: int = 50) -> int:
    """Claim due events and process each; returns how many were claimed."""
    settings = runtime.settings.mailchimp_webhook
    now = utcnow()
    with runtime.sessions() as session:
        claimed = [
            event.id
            for event in repository.claim_due(
                session, now=now, lease_until=now + timedelta(minutes=5), limit=limit
            )
        ]
        session.commit()
    for event_id in claimed:
        _process_one(runtime, event_id, settings.connector)
    return len(claimed)


def _process_one(runtime: Runtime, event_id: int, connector_name: str) -> None:
    settings = runtime.settings.mailchimp_webhook
    with runtime.sessions() as session:
        event = repository.get_event(session, event_id)
        if event is None or event.sealed is None:
            return
        event_type, dedupe_key, sealed = EventType(event.type), event.dedupe_key, event.sealed
    outcome: dict[str, Any] = {}
    state, error = WebhookEventState.DONE, None
    try:
        payload = _unseal(runtime.keyer, sealed, dedupe_key)
        data = payload.get("data", {})
        if not isinstance(data, dict):
            raise ValueError("no data in the event")
        with runtime.connectors.use(connector_name) as connector:
            if not isinstance(connector, MailchimpConnector):
                raise ValueError(f"connector {connector_name!r} is not a mailchimp connector")
            outcome = _Handler(runtime, connector_name, connector).handle(event_type, data)
    except _Retry as exc:
        state, error = WebhookEventState.PENDING, str(exc)
    except PermanentUpstreamError as exc:
        state, error = WebhookEventState.FAILED, exc.message
    except (InvalidTag, ValueError, KeyError) as exc:
        state, error = WebhookEventState.FAILED, f"unreadable event ({type(exc).__name__})"
    with runtime.sessions() as session:
        event = repository.get_event(session, event_id)
        if event is None:
            return
        event.attempts += 1
        event.last_error = None if error is None else error[:500]
        if state is WebhookEventState.PENDING and event.attempts >= settings.max_attempts:
            state = WebhookEventState.FAILED
        event.state = state
        if state is WebhookEventState.PENDING:
            initial = settings.backoff_initial.total_seconds()
            seconds = min(initial * 2 ** (event.attempts - 1), settings.backoff_max.total_seconds())
            event.next_attempt_at = utcnow() + timedelta(seconds=seconds)
        else:
            event.sealed, event.processed_at, event.outcome = None, utcnow(), outcome
        session.commit()
    log.info(
        "webhook.mailchimp.processed",
        extra={"event_id": event_id, "type": str(event_type), "state": str(state), **outcome},
    )


def _merge(data: Mapping[str, Any], tag: str) -> str:
    return str(data.get(f"data[merges][{tag}]", "") or "").strip()


class _Handler:
    """Acts on one event's ``data[...]`` fields for one Mailchimp connector."""

    def __init__(self, runtime: Runtime, name: str, connector: MailchimpConnector) -> None:
        self.runtime = runtime
        self.name = name
        self.connector = connector
        self.mapping = connector.config.fields
        self.actor = "mailchimp webhook"

    def handle(self, event_type: EventType, data: Mapping[str, Any]) -> dict[str, Any]:
        try:
            if event_type in (EventType.SUBSCRIBE, EventType.PROFILE):
                return self._member_changed(data)
            if event_type is EventType.UNSUBSCRIBE:
                return self._unsubscribed(data)
            if event_type is EventType.UPEMAIL:
                return self._email_changed(data)
            return self._cleaned(data)
        except PermanentUpstreamError:
            raise
        except UpstreamError as exc:
            raise _Retry(exc.message) from exc

    # -- events ------------------------------------------------------------------------------

    def _member_changed(self, data: Mapping[str, Any]) -> dict[str, Any]:
        email = str(data.get("data[email]", "")).strip()
        identities = self._identities(email, data)
        record_id = subscriber_hash(email)
        flagged = any(
            _merge(data, tag).lower() in self.mapping.do_not_score_values
            for tag in self.mapping.do_not_score
        )
        if flagged:
            self._opt_out(record_id, identities, "do-not-score merge field set in mailchimp")
            self._write(propagation.erasure_write(record_id, utcnow()))
            return {"action": "opted_out", "status": Status.OPTED_OUT.value}
        with self.runtime.sessions() as session:
            policy = sync_runs.choose_policy(session, self.runtime)
            resolutions = lookups.resolve(
                session,
                self.runtime,
                [ContactIn.model_construct(id=record_id, identities=self._raw(identities, email))],
                gateway=policy.gateway,
                deadline_seconds=_RESOLVE_DEADLINE,
                priority=Priority.WEBHOOK,
                actor=self.actor,
            )
            result = lookups.to_results(
                resolutions,
                policy.doc,
                policy.version,
                self.runtime.populations.get(policy.gateway.name),
            )[0]
            self._link(session, record_id, identities, str(result.status))
            session.commit()
        if result.status is Status.UNAVAILABLE:
            raise _Retry("no score could be had now")
        now = utcnow()
        if result.status is Status.OPTED_OUT:
            write = propagation.erasure_write(record_id, now)
        else:
            write = ScoreWrite(
                record_id=record_id,
                status=result.status.value,
                score=result.score,
                effective_score=result.effective_score,
                segment=result.segment,
                explanation=result.explanation,
                policy=policy.label,
                evaluated_at=now,
            )
        self._write(write)
        segments = [segment.name for segment in policy.doc.segments]
        active = [result.segment] if result.segment and write.segment else []
        self.connector.set_tags(
            email,
            active=[self._tag(name) for name in active],
            inactive=[self._tag(name) for name in segments if name not in active],
        )
        return {"action": "scored", "status": result.status.value, "segment": write.segment}

    def _unsubscribed(self, data: Mapping[str, Any]) -> dict[str, Any]:
        if str(data.get("data[action]", "")).strip().lower() != "delete":
            return {"action": "none", "reason": "unsubscribed from mail, not from scoring"}
        email = str(data.get("data[email]", "")).strip()
        record_id = subscriber_hash(email)
        self._opt_out(record_id, self._identities(email, data), "deleted from the mailchimp list")
        return {"action": "opted_out", "status": Status.OPTED_OUT.value}

    def _email_changed(self, data: Mapping[str, Any]) -> dict[str, Any]:
        old = str(data.get("data[old_email]", "")).strip()
        new = str(data.get("data[new_email]", "")).strip()
        new_identity = self._identity("email", new)
        if not old or new_identity is None:
            raise ValueError("upemail without both addresses")
        old_record, new_record = subscriber_hash(old), subscriber_hash(new)
        old_identity = self._identity("email", old)
        old_key = None if old_identity is None else old_identity.key
        with self.runtime.sessions() as session:
            carried = [
                key for key in repository.links_of(session, self.name, old_record) if key != old_key
            ]
            now = utcnow()
            repository.replace_links(session, self.name, old_record, [], status=None, now=now)
            repository.replace_links(
                session, self.name, new_record, [new_identity.key, *carried], status=None, now=now
            )
            opted = old_key is not None and bool(opt_outs.registry_entries(session, [old_key]))
            if opted:
                # the same person under a new address: the opt-out follows them
                opt_outs.record_keys(
                    session,
                    self.runtime.populations,
                    [new_identity.key],
                    source=OptOutSource.MAILCHIMP,
                    actor=self.actor,
                    note="address changed in mailchimp; the earlier address was opted out",
                )
            session.commit()
        return {"action": "relinked", "carried_keys": len(carried), "opted_out": opted}

    def _cleaned(self, data: Mapping[str, Any]) -> dict[str, Any]:
        email = str(data.get("data[email]", "")).strip()
        record_id = subscriber_hash(email)
        identity = self._identity("email", email)
        resolution = lookups.Resolution(record_id, [] if identity is None else [identity], [])
        reason = str(data.get("data[reason]", "")).strip().lower() or "unknown"
        resolution.settle(
            Status.NOT_FOUND, "mailchimp", f"mailchimp cleaned the address (reason: {reason})"
        )
        with self.runtime.sessions() as session:
            policy = sync_runs.choose_policy(session, self.runtime)
            opted = identity is not None and bool(
                opt_outs.registry_entries(session, [identity.key])
            )
        if opted:
            return {"action": "none", "reason": "opted out; nothing but the erasure is written"}
        result = lookups.to_results(
            [resolution],
            policy.doc,
            policy.version,
            self.runtime.populations.get(policy.gateway.name),
        )[0]
        self._write(
            ScoreWrite(
                record_id=record_id,
                status=Status.NOT_FOUND.value,
                score=None,
                effective_score=result.effective_score,
                segment=result.segment,
                explanation=result.explanation,
                policy=policy.label,
                evaluated_at=utcnow(),
            ),
        )
        return {"action": "marked", "status": Status.NOT_FOUND.value}

    # -- helpers -----------------------------------------------------------------------------

    def _identity(self, kind: str, value: str) -> Identity | None:
        try:
            return self.runtime.keyer.identity(kind, value)
        except IdentityError:
            return None

    def _identities(self, email: str, data: Mapping[str, Any]) -> dict[str, str]:
        """Raw identities by kind, from the address and the mapped merge fields (memory only)."""
        raw: dict[str, str] = {}
        for kind, source in self.mapping.identities.items():
            value = email if source == EMAIL_ADDRESS else _merge(data, source)
            if value:
                raw[kind] = value
        return raw

    @staticmethod
    def _raw(identities: dict[str, str], email: str) -> dict[str, str]:
        return identities or {"email": email}

    def _keys(self, identities: Mapping[str, str]) -> list[str]:
        keys = []
        for kind, value in identities.items():
            identity = self._identity(kind, value)
            if identity is not None:
                keys.append(identity.key)
        return keys

    def _link(
        self, session: Session, record_id: str, identities: Mapping[str, str], status: str
    ) -> None:
        keys = self._keys(identities)
        if keys:
            repository.replace_links(
                session, self.name, record_id, keys, status=status, now=utcnow()
            )

    def _opt_out(self, record_id: str, identities: Mapping[str, str], note: str) -> None:
        """Link the record, then record the opt-out: its erasures (this record's included) are
        queued in the same transaction."""
        keys = self._keys(identities)
        if not keys:
            raise ValueError("opt-out event without a usable identity")
        with self.runtime.sessions() as session:
            self._link(session, record_id, identities, Status.OPTED_OUT.value)
            known = set(opt_outs.registry_entries(session, keys))
            new = [key for key in keys if key not in known]
            if new:
                opt_outs.record_keys(
                    session,
                    self.runtime.populations,
                    new,
                    source=OptOutSource.MAILCHIMP,
                    actor=self.actor,
                    note=note,
                )
            session.commit()

    def _write(self, write: ScoreWrite) -> None:
        """Write one member's score fields; a refusal of that member is final."""
        report = self.connector.write_results([write])
        if report.errors:
            error = report.errors[0]
            if error.transient:
                raise _Retry(f"{error.code}: {error.message}")
            raise PermanentUpstreamError(f"{error.code}: {error.message}", upstream="mailchimp")

    def _tag(self, segment: str) -> str:
        return f"{self.runtime.settings.mailchimp_webhook.tag_prefix}{segment}"
