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
from app.policy_versions import service as policy_versions

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
    active = policy_versions.active_policy(
        session, list(runtime.providers.providers), runtime.providers.default, body.policy
    )
    policy_versions.check_use_case(active, body.use_case)
    gateway = runtime.providers.gateway(active.document.provider)
    deadline = (
        body.deadline_ms / 1000
        if body.deadline_ms is not None
        else runtime.settings.lookup_deadline.total_seconds()
    )
    resolutions = service.resolve(
        session,
        runtime,
        body.contacts,
        gateway=gateway,
        deadline_seconds=deadline,
        actor=f"key:{key.id} ({key.name})",
    )
    session.commit()
    population = runtime.populations.get(gateway.name)
    return LookupResponse(
        results=service.to_results(resolutions, active.document, active.version, population)
    )
