"""Opt-out API shapes."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.models import OptOutSource
from app.schemas import IdentityMap

__all__ = ["OptInRequest", "OptOutCheck", "OptOutCheckResult", "OptOutRequest", "OptOutResult"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OptOutRequest(_In):
    identities: IdentityMap
    source: OptOutSource = OptOutSource.API
    note: str | None = Field(default=None, max_length=500)


class OptOutResult(BaseModel):
    opted_out: bool = True
    recorded: int = Field(description="identities newly added to the registry")
    already_recorded: int
    erased_answers: int = Field(description="cached provider answers erased")
    identity_keys: list[str]


class OptOutCheck(_In):
    identities: IdentityMap


class OptOutMatch(BaseModel):
    kind: str
    source: str
    recorded_at: datetime


class OptOutCheckResult(BaseModel):
    opted_out: bool
    matches: list[OptOutMatch]


class OptInRequest(_In):
    identities: IdentityMap
    reason: str = Field(min_length=3, max_length=500)


class OptInResult(BaseModel):
    removed: int
    not_found: int
