"""``POST /v1/lookups``: honest statuses, effective scores and explanations, 1,000 at a time."""

from __future__ import annotations

from fastapi import APIRouter

from app.deps import ReadKeyDep, RuntimeDep, SessionDep
from app.errors import (
    Conflict,
    Forbidden,
    InvalidRequest,
    NotAuthenticated,
    NotFound,
    UseCaseForbidden,
    responses_for,
)
from app.lookups import service
from app.lookups.schemas import LookupRequest, LookupResponse

__all__ = ["router"]

router = APIRouter(prefix="/v1/lookups", tags=["lookups"])


@router.post(
    "",
    status_code=200,
    responses=responses_for(
        NotAuthenticated, Forbidden, UseCaseForbidden, NotFound, Conflict, InvalidRequest
    ),
)
def lookup(
    body: LookupRequest, session: SessionDep, runtime: RuntimeDep, key: ReadKeyDep
) -> LookupResponse:
    """One result per contact, in the order given.

    Opted-out people are never sent to a provider. A contact whose answer cannot be had before
    the deadline is ``unavailable`` with ``retry_after``, and its fetch goes on in the background.
    Effective scores come from the active version of the policy named (or the default policy);
    an unknown policy is ``404 policy_not_found``, a forbidden use case ``403`` with no score.
    """
    _active, results = service.evaluate_contacts(
        session,
        runtime,
        body.contacts,
        policy=body.policy,
        use_case=body.use_case,
        deadline_ms=body.deadline_ms,
        actor=f"key:{key.id} ({key.name})",
    )
    return LookupResponse(results=results)
