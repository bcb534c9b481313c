"""Provider visibility shapes."""

from __future__ import annotations

from pydantic import BaseModel

from app.providers.service import ProviderStatus

__all__ = ["ProvidersOut"]


class ProvidersOut(BaseModel):
    default: str | None
    providers: list[ProviderStatus]
