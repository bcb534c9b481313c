"""Cached upstream answers, keyed by (provider or checker name, identity key)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UTCDateTime

__all__ = ["CachedAnswer"]


class CachedAnswer(Base):
    """A score, a "no such user" or an existence answer; ``unavailable`` is never stored."""

    __tablename__ = "cached_answer"
    __table_args__ = (
        Index("ix_cached_answer_identity_key", "identity_key"),
        Index("ix_cached_answer_namespace_kind", "namespace", "kind"),
    )

    namespace: Mapped[str] = mapped_column(String(64), primary_key=True)
    identity_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    score: Mapped[float | None] = mapped_column(Float, default=None)
    fact: Mapped[str] = mapped_column(String(300))
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
