"""Queries on audit events."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import AuditEvent

__all__ = ["add", "list_events"]


def add(session: Session, event: AuditEvent) -> None:
    session.add(event)


def list_events(
    session: Session,
    *,
    action: str | None,
    subject: str | None,
    since: datetime | None,
    before_id: int | None,
    limit: int,
) -> Sequence[AuditEvent]:
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if action is not None:
        query = query.where(AuditEvent.action == action)
    if subject is not None:
        query = query.where(AuditEvent.subject == subject)
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    if before_id is not None:
        query = query.where(AuditEvent.id < before_id)
    return session.scalars(query).all()
