"""Calls used per provider per quota window, so an in-process limiter's quota survives restarts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UTCDateTime

__all__ = ["QuotaLedger"]


class QuotaLedger(Base):
    __tablename__ = "quota_ledger"

    provider: Mapped[str] = mapped_column(String(64), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    used: Mapped[int] = mapped_column(Integer, default=0)
