"""Shapes of ``GET /v1/opt-outs/status``."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from app.models import ErasureState

__all__ = ["ErasureOut", "PropagationStatus", "SystemCounts"]


class SystemCounts(BaseModel):
    connector: str
    pending: int
    delivered: int
    failed: int


class ErasureOut(BaseModel):
    id: int
    connector: str
    record_id: str
    identity_key: str
    source: str
    state: ErasureState
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None = Field(description="when a pending erasure is tried next")
    delivered_at: datetime | None
    last_error: str | None


class PropagationStatus(BaseModel):
    systems: list[SystemCounts] = Field(description="erasures per connected system, by state")
    erasures: list[ErasureOut]
