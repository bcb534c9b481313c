"""Ranking API shapes."""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from app.lookups.schemas import ContactId, Evidence, PolicyRef
from app.schemas import IdentityMap
from policies.model import RankingMethod
from policies.status import Status

__all__ = ["MAX_ITEMS", "RankedOut", "RankingItemIn", "RankingRequest", "RankingResponse"]

#: the most items one ranking request may hold
MAX_ITEMS = 1000


class RankingItemIn(BaseModel):
    """One item to place: a contact (id and identities) and when it arrived in the queue."""

    model_config = ConfigDict(extra="forbid")

    id: ContactId
    identities: IdentityMap
    arrived_at: AwareDatetime


class RankingRequest(BaseModel):
    """Items to rank under ``policy`` (the default policy when omitted); ids must be unique."""

    model_config = ConfigDict(extra="forbid")

    policy: str | None = Field(default=None, max_length=100)
    use_case: str | None = Field(default=None, max_length=64)
    deadline_ms: int | None = Field(
        default=None, ge=0, le=60_000, description="how long to wait for upstream slots"
    )
    items: list[RankingItemIn] = Field(min_length=1, max_length=MAX_ITEMS)


class RankedOut(BaseModel):
    """One placed item: its 1-based rank, why it sits there, and what the policy made of it."""

    id: str
    rank: int
    status: Status
    score: float | None
    effective_score: float | None
    segment: str | None
    reason: str
    explanation: str
    evidence: list[Evidence]
    retry_after: float | None = None


class RankingResponse(BaseModel):
    """The items in rank order."""

    policy: PolicyRef
    method: RankingMethod
    items: list[RankedOut]
