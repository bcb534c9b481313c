"""``POST /v1/lookups``: honest statuses, effective scores and explanations, 1,000 at a time."""

from __future__ import annotations

from fastapi import APIRouter

from app.deps import ReadKeyDep, RuntimeDep, SessionDep
from app.errors import Forbidden, InvalidRequest, NotAuthenticated, UseCaseForbidden, responses_for
from app.lookups import service
from app.lookups.schemas import LookupRequest, LookupResponse
from policies.model import default_policy

__all__ = ["router"]

router = APIRouter(prefix="/v1/lookups", tags=["lookups"])


@router.post(
    "",
    status_code=200,
    responses=responses_for(NotAuthenticated, Forbidden, UseCaseForbidden, InvalidRequest),
)
def lookup(
    body: LookupRequest, session: SessionDep, runtime: RuntimeDep, key: ReadKeyDep
) -> LookupResponse:
    """One result per contact, in the order given.

    Opted-out people are never sent to a provider. A contact whose answer cannot be had before
    the deadline is ``unavailable`` with ``retry_after``, and its fetch goes on in the background.
    """
    gateway = runtime.providers.gateway()
    doc = default_policy(gateway.name)
    if body.use_case is not None and not doc.is_use_case_allowed(body.use_case):
        raise UseCaseForbidden(
            f"policy {doc.name} forbids the use case {body.use_case!r}", use_case=body.use_case
        )
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
    return LookupResponse(results=service.to_results(resolutions, doc, 0, population))
