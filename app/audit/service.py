"""Audit trail: every change writes an event in the same transaction as the change."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from app.audit import repository
from app.models import AuditEvent, utcnow

__all__ = ["list_events", "record"]


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    subject: str,
    details: dict[str, Any] | None = None,
) -> None:
    """Add an event to the caller's unit of work (the caller commits)."""
    repository.add(
        session,
        AuditEvent(at=utcnow(), actor=actor, action=action, subject=subject, details=details or {}),
    )


def list_events(
    session: Session,
    *,
    action: str | None = None,
    subject: str | None = None,
    since: datetime | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> Sequence[AuditEvent]:
    return repository.list_events(
        session, action=action, subject=subject, since=since, before_id=before_id, limit=limit
    )
