"""``GET /v1/providers``: limits, use, circuit state and cache hit rate of every upstream."""

from __future__ import annotations

from fastapi import APIRouter

from app.deps import ReadKeyDep, RuntimeDep
from app.errors import Forbidden, NotAuthenticated, responses_for
from app.providers.schemas import ProvidersOut

__all__ = ["router"]

router = APIRouter(prefix="/v1/providers", tags=["providers"])


@router.get("", status_code=200, responses=responses_for(NotAuthenticated, Forbidden))
def list_providers(runtime: RuntimeDep, _key: ReadKeyDep) -> ProvidersOut:
    return ProvidersOut(
        default=runtime.providers.default,
        providers=runtime.providers.statuses(),
    )
