"""Provider visibility shapes."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

__all__ = ["ProviderOut", "ProvidersOut"]


class ProviderOut(BaseModel):
    name: str
    kind: str
    role: str
    rate: str | None
    quota: str | None
    used_this_second: int
    used_today: int
    quota_left: int | None
    quota_resets_at: datetime | None
    blocked_until: datetime | None
    waiting: int
    circuit: str
    cache_hit_rate: float | None
    calls: int
    credentials_ok: bool
    last_error: str | None
    last_error_at: datetime | None


class ProvidersOut(BaseModel):
    default: str | None
    providers: list[ProviderOut]
