"""``GET /v1/audit``: the audit trail, newest first (admin)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from app.audit import service
from app.audit.schemas import AuditEventOut, AuditPage
from app.deps import AdminKeyDep, SessionDep
from app.errors import Forbidden, NotAuthenticated, responses_for

__all__ = ["router"]

router = APIRouter(prefix="/v1/audit", tags=["audit"])


@router.get("", status_code=200, responses=responses_for(NotAuthenticated, Forbidden))
def list_audit_events(
    session: SessionDep,
    _key: AdminKeyDep,
    action: Annotated[str | None, Query(max_length=64)] = None,
    subject: Annotated[str | None, Query(max_length=120)] = None,
    since: datetime | None = None,
    before_id: Annotated[int | None, Query(ge=1)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditPage:
    events = service.list_events(
        session, action=action, subject=subject, since=since, before_id=before_id, limit=limit
    )
    out = [AuditEventOut.model_validate(event, from_attributes=True) for event in events]
    return AuditPage(events=out, next_before_id=out[-1].id if len(out) == limit else None)
