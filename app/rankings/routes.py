"""``POST /v1/rankings``: items in the order the policy's ranking gives, each with its reason."""

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
from app.rankings import service
from app.rankings.schemas import RankingRequest, RankingResponse

__all__ = ["router"]

router = APIRouter(prefix="/v1/rankings", tags=["rankings"])


@router.post(
    "",
    status_code=200,
    responses=responses_for(
        NotAuthenticated, Forbidden, UseCaseForbidden, NotFound, Conflict, InvalidRequest
    ),
)
def create_ranking(
    body: RankingRequest, session: SessionDep, runtime: RuntimeDep, key: ReadKeyDep
) -> RankingResponse:
    """Rank up to 1,000 items by the policy's method (score, fifo or FA*IR fair top-k).

    Statuses are resolved as lookups resolve them; an item without an effective score keeps the
    place arrival order gives it. ``404 policy_not_found`` for an unknown policy, ``403`` for a
    use case the policy forbids.
    """
    return service.rank_items(session, runtime, body, actor=f"key:{key.id} ({key.name})")
