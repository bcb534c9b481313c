"""``GET /v1/opt-outs/status``: where every erasure stands, per connected system."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Query

from app.deps import SessionDep, SyncKeyDep
from app.errors import Forbidden, InvalidRequest, NotAuthenticated, responses_for
from app.models import ErasureState
from app.propagation import service
from app.propagation.schemas import ErasureOut, PropagationStatus, SystemCounts

__all__ = ["router"]

router = APIRouter(prefix="/v1/opt-outs", tags=["opt-outs"])

_IDENTITY_KEY = r"^[0-9a-f]{64}$"


@router.get(
    "/status", status_code=200, responses=responses_for(NotAuthenticated, Forbidden, InvalidRequest)
)
def propagation_status(
    session: SessionDep,
    _key: SyncKeyDep,
    identity_key: Annotated[
        list[Annotated[str, Query(pattern=_IDENTITY_KEY)]] | None,
        Query(description="identity keys (as answered by POST /v1/opt-outs); repeatable"),
    ] = None,
    state: Annotated[
        list[ErasureState] | None,
        Query(description="list erasures in these states (default: pending and failed)"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> PropagationStatus:
    """Erasures owed to connected systems: those of the given identity keys, or else every
    erasure in the given states. Counts per system are always included."""
    if identity_key:
        views = service.status_by_keys(session, identity_key)[:limit]
    else:
        wanted = state or [ErasureState.PENDING, ErasureState.FAILED]
        views = service.status_listing(session, wanted, limit=limit)
    return PropagationStatus(
        systems=[SystemCounts(**asdict(counts)) for counts in service.system_counts(session)],
        erasures=[ErasureOut(**asdict(view)) for view in views],
    )
