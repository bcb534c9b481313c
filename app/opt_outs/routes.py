"""``/v1/opt-outs``: record (sync), check (sync), remove (admin)."""

from __future__ import annotations

from fastapi import APIRouter

from app.deps import AdminKeyDep, RuntimeDep, SessionDep, SyncKeyDep
from app.errors import Forbidden, InvalidRequest, NotAuthenticated, responses_for
from app.opt_outs import service
from app.opt_outs.schemas import (
    OptInRequest,
    OptInResult,
    OptOutCheck,
    OptOutCheckResult,
    OptOutMatch,
    OptOutRequest,
    OptOutResult,
)

__all__ = ["router"]

router = APIRouter(prefix="/v1/opt-outs", tags=["opt-outs"])

_ERRORS = responses_for(NotAuthenticated, Forbidden, InvalidRequest)


def _actor(name: str, key_id: int) -> str:
    return f"key:{key_id} ({name})"


@router.post("", status_code=201, responses=_ERRORS)
def record_opt_out(
    body: OptOutRequest, session: SessionDep, runtime: RuntimeDep, key: SyncKeyDep
) -> OptOutResult:
    """Record that the person behind these identities does not want to be scored.

    Idempotent; a 201 means the opt-out is committed and the cached answers are erased.
    """
    result = service.record(
        session,
        runtime.keyer,
        runtime.populations,
        body.identities,
        source=body.source,
        actor=_actor(key.name, key.id),
        note=body.note,
    )
    return OptOutResult(
        recorded=result.recorded,
        already_recorded=result.already_recorded,
        erased_answers=result.erased_answers,
        identity_keys=result.keys,
    )


@router.post("/check", status_code=200, responses=_ERRORS)
def check_opt_out(
    body: OptOutCheck, session: SessionDep, runtime: RuntimeDep, _key: SyncKeyDep
) -> OptOutCheckResult:
    """Is any of these identities opted out?"""
    result = service.check(session, runtime.keyer, body.identities)
    return OptOutCheckResult(
        opted_out=bool(result.matches),
        matches=[
            OptOutMatch(kind=identity.kind, source=str(entry.source), recorded_at=entry.created_at)
            for identity, entry in result.matches
        ],
    )


@router.delete("", status_code=200, responses=_ERRORS)
def remove_opt_out(
    body: OptInRequest, session: SessionDep, runtime: RuntimeDep, key: AdminKeyDep
) -> OptInResult:
    """Opt these identities back in (explicit, audited, reason required)."""
    removed, missing = service.opt_in(
        session,
        runtime.keyer,
        body.identities,
        reason=body.reason,
        actor=_actor(key.name, key.id),
    )
    return OptInResult(removed=removed, not_found=missing)
