"""The opt-out registry: identity keys of people who asked not to be scored."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UTCDateTime, utcnow

__all__ = ["OptOut", "OptOutSource"]


class OptOutSource(StrEnum):
    """Where an opt-out came from."""

    API = "api"
    SELF_SERVICE = "self_service"
    MAILCHIMP = "mailchimp"
    SALESFORCE = "salesforce"
    ZOHO = "zoho"
    PROVIDER = "provider"


class OptOut(Base):
    """One opted-out identity. Only the keyed hash is stored, never the identity itself."""

    __tablename__ = "opt_out"

    identity_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    source: Mapped[OptOutSource] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(120))
    note: Mapped[str | None] = mapped_column(String(500), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
