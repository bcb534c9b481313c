"""Fairness policies: named policies, immutable versions, activations and their announcements.

- A :class:`Policy` is a name bound to one provider. Its :class:`PolicyVersion` rows hold the
  documents (``policies.PolicyDocument`` as JSON); a version's document never changes once written.
- At most one version per policy is ``active``: the partial unique index
  ``uq_policy_version_one_active`` lets the database itself refuse a second one, so no race between
  activations (threads, replicas) can leave two.
- A :class:`PolicyActivation` is one request to make a version active: applied at once, or
  scheduled for ``effective_at`` (announced, then applied by the service's background worker). The
  changelog is this table.
- A :class:`PolicySubscription` is a webhook that is told when a version is scheduled and when it
  takes effect; each notice is a :class:`PolicyDelivery`, each HTTP try a
  :class:`PolicyDeliveryAttempt`.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UTCDateTime, utcnow

__all__ = [
    "ActivationState",
    "DeliveryState",
    "NoticeEvent",
    "Policy",
    "PolicyActivation",
    "PolicyDelivery",
    "PolicyDeliveryAttempt",
    "PolicySubscription",
    "PolicyVersion",
    "VersionState",
]


class VersionState(StrEnum):
    """Where a version is in its life: written, in force, or replaced."""

    DRAFT = "draft"
    ACTIVE = "active"
    RETIRED = "retired"


class ActivationState(StrEnum):
    """An activation request: waiting for its ``effective_at``, or done."""

    SCHEDULED = "scheduled"
    APPLIED = "applied"


class NoticeEvent(StrEnum):
    """What a webhook notice announces."""

    SCHEDULED = "policy.version_scheduled"
    ACTIVATED = "policy.version_activated"


class DeliveryState(StrEnum):
    """A notice's delivery: waiting, being sent by one worker, done, or given up."""

    PENDING = "pending"
    SENDING = "sending"
    DELIVERED = "delivered"
    FAILED = "failed"


_ONE_ACTIVE = text("state = 'active'")


class Policy(Base):
    __tablename__ = "policy"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    provider: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(120))


class PolicyVersion(Base):
    __tablename__ = "policy_version"
    __table_args__ = (
        UniqueConstraint("policy_id", "version", name="uq_policy_version_policy_id_version"),
        Index(
            "uq_policy_version_one_active",
            "policy_id",
            unique=True,
            sqlite_where=_ONE_ACTIVE,
            postgresql_where=_ONE_ACTIVE,
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    policy_id: Mapped[int] = mapped_column(ForeignKey("policy.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[VersionState] = mapped_column(String(16), default=VersionState.DRAFT)
    note: Mapped[str | None] = mapped_column(String(500), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(120))


class PolicyActivation(Base):
    """One activation (or rollback) with who, when, why, the guard's figures and the diff."""

    __tablename__ = "policy_activation"
    __table_args__ = (
        Index("ix_policy_activation_state_effective_at", "state", "effective_at"),
        Index("ix_policy_activation_policy_id_requested_at", "policy_id", "requested_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    policy_id: Mapped[int] = mapped_column(ForeignKey("policy.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    previous_version: Mapped[int | None] = mapped_column(Integer, default=None)
    state: Mapped[ActivationState] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(120))
    reason: Mapped[str] = mapped_column(String(1000))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    effective_at: Mapped[datetime] = mapped_column(UTCDateTime())
    applied_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    is_rollback: Mapped[bool] = mapped_column(Boolean, default=False)
    demotion_allowed: Mapped[bool] = mapped_column(Boolean, default=False)
    guard: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    diff: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    outcome: Mapped[str | None] = mapped_column(String(500), default=None)


class PolicySubscription(Base):
    """A webhook for policy announcements. The secret signs every notice, so it is kept as is."""

    __tablename__ = "policy_subscription"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    secret: Mapped[str] = mapped_column(String(128))
    description: Mapped[str | None] = mapped_column(String(500), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(120))
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class PolicyDelivery(Base):
    """One notice to one subscription; ``body`` is the exact JSON signed and sent."""

    __tablename__ = "policy_delivery"
    __table_args__ = (
        Index("ix_policy_delivery_state_created_at", "state", "created_at"),
        Index("ix_policy_delivery_subscription_id", "subscription_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subscription_id: Mapped[int] = mapped_column(
        ForeignKey("policy_subscription.id", ondelete="CASCADE")
    )
    activation_id: Mapped[int] = mapped_column(
        ForeignKey("policy_activation.id", ondelete="CASCADE")
    )
    event: Mapped[NoticeEvent] = mapped_column(String(32))
    body: Mapped[str] = mapped_column(Text)
    state: Mapped[DeliveryState] = mapped_column(String(16), default=DeliveryState.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class PolicyDeliveryAttempt(Base):
    """One HTTP try of a delivery: the status the subscriber answered, or the error."""

    __tablename__ = "policy_delivery_attempt"
    __table_args__ = (Index("ix_policy_delivery_attempt_delivery_id", "delivery_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("policy_delivery.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    error: Mapped[str | None] = mapped_column(String(500), default=None)
