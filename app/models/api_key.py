"""API keys: stored as SHA-256 hashes (the keys are 256-bit random tokens)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UTCDateTime, utcnow

__all__ = ["ApiKey", "Role"]


class Role(StrEnum):
    """``read`` < ``sync`` < ``admin``: each role may do everything the weaker ones may."""

    READ = "read"
    SYNC = "sync"
    ADMIN = "admin"

    @property
    def level(self) -> int:
        return _LEVELS[self]

    def allows(self, required: Role) -> bool:
        return self.level >= required.level


_LEVELS = {Role.READ: 0, Role.SYNC: 1, Role.ADMIN: 2}


class ApiKey(Base):
    __tablename__ = "api_key"

    id: Mapped[int] = mapped_column(primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[Role] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
