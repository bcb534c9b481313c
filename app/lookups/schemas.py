"""Lookup API shapes."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.schemas import IdentityMap
from policies.status import Status

__all__ = ["ContactIn", "ContactResult", "Evidence", "LookupRequest", "LookupResponse", "PolicyRef"]

MAX_CONTACTS = 1000

ContactId = Annotated[str, StringConstraints(min_length=1, max_length=255)]


class ContactIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: ContactId
    identities: IdentityMap


class LookupRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    policy: str | None = Field(default=None, max_length=100)
    use_case: str | None = Field(default=None, max_length=64)
    deadline_ms: int | None = Field(
        default=None, ge=0, le=60_000, description="how long to wait for upstream slots"
    )
    contacts: list[ContactIn] = Field(min_length=1, max_length=MAX_CONTACTS)


class Evidence(BaseModel):
    source: str
    fact: str


class PolicyRef(BaseModel):
    name: str
    version: int


class ContactResult(BaseModel):
    id: str
    status: Status
    score: float | None
    effective_score: float | None
    segment: str | None
    explanation: str
    evidence: list[Evidence]
    policy: PolicyRef
    retry_after: float | None = None


class LookupResponse(BaseModel):
    results: list[ContactResult]
