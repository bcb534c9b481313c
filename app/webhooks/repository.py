"""Queries on received webhook events."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from app.models import ContactLink, WebhookEvent, WebhookEventState

__all__ = ["add_event", "by_dedupe_key", "claim_due", "get_event", "links_of", "replace_links"]


def by_dedupe_key(session: Session, dedupe_key: str) -> WebhookEvent | None:
    return session.scalars(
        select(WebhookEvent).where(WebhookEvent.dedupe_key == dedupe_key)
    ).first()


def add_event(session: Session, event: WebhookEvent) -> WebhookEvent:
    session.add(event)
    session.flush()
    return event


def get_event(session: Session, event_id: int) -> WebhookEvent | None:
    return session.get(WebhookEvent, event_id)


def claim_due(
    session: Session, *, now: datetime, lease_until: datetime, limit: int
) -> list[WebhookEvent]:
    """Take up to ``limit`` due events, oldest first, leasing them until ``lease_until``
    (``FOR UPDATE SKIP LOCKED`` on PostgreSQL)."""
    rows = list(
        session.scalars(
            select(WebhookEvent)
            .where(
                WebhookEvent.state == WebhookEventState.PENDING,
                WebhookEvent.next_attempt_at <= now,
            )
            .order_by(WebhookEvent.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    for row in rows:
        row.next_attempt_at = lease_until
    session.flush()
    return rows


def links_of(session: Session, connector: str, record_id: str) -> list[str]:
    """The identity keys linked to one record."""
    return list(
        session.scalars(
            select(ContactLink.identity_key).where(
                ContactLink.connector == connector, ContactLink.record_id == record_id
            )
        )
    )


def replace_links(
    session: Session,
    connector: str,
    record_id: str,
    keys: Collection[str],
    *,
    status: str | None,
    now: datetime,
) -> None:
    """Set one record's links to exactly ``keys``. The fingerprint is left blank, so the next
    sync run computes the record afresh rather than skipping it."""
    session.execute(
        delete(ContactLink).where(
            ContactLink.connector == connector, ContactLink.record_id == record_id
        )
    )
    rows = [
        {
            "connector": connector,
            "record_id": record_id,
            "identity_key": key,
            "fingerprint": "",
            "status": status,
            "linked_at": now,
        }
        for key in dict.fromkeys(keys)
    ]
    if rows:
        session.execute(insert(ContactLink), rows)
