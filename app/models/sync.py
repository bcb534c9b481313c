"""Sync runs, their per-record errors and watermarks; contact links; the erasure outbox; webhook
events.

Nothing here holds a raw identity: contact links carry identity keys, webhook payloads are kept
sealed (AES-GCM under a key derived from the service secret) only until they are processed.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, Float, Index, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UTCDateTime, utcnow

__all__ = [
    "ConnectorWatermark",
    "ContactLink",
    "ErasureState",
    "OutboxErasure",
    "SyncRecordError",
    "SyncRun",
    "SyncRunState",
    "WebhookEvent",
    "WebhookEventState",
]


class SyncRunState(StrEnum):
    """Where a sync run stands. ``queued`` and stale ``running`` runs are claimed by workers."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class SyncRun(Base):
    """One run of one connector. Counters are committed with every batch, so they show progress
    and survive a crash; ``batches`` counts committed batches."""

    __tablename__ = "sync_run"
    __table_args__ = (Index("ix_sync_run_state_id", "state", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    connector: Mapped[str] = mapped_column(String(64))
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    state: Mapped[SyncRunState] = mapped_column(String(16), default=SyncRunState.QUEUED)
    actor: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    #: the last time the worker running it showed life; a stale one is claimed again
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    worker: Mapped[str | None] = mapped_column(String(120), default=None)
    #: the watermark the run started from (``None``: everything)
    since: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    read: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    written: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[int] = mapped_column(Integer, default=0)
    retried: Mapped[int] = mapped_column(Integer, default=0)
    batches: Mapped[int] = mapped_column(Integer, default=0)
    api_calls: Mapped[int] = mapped_column(Integer, default=0)
    #: status -> records, e.g. ``{"scored": 10, "opted_out": 1}``
    counts: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    message: Mapped[str | None] = mapped_column(String(500), default=None)


class SyncRecordError(Base):
    """A record a connector refused; the write is kept (it holds no identity) and sent again at
    the start of the next run. Removed once the record is written."""

    __tablename__ = "sync_record_error"
    __table_args__ = (UniqueConstraint("connector", "record_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    connector: Mapped[str] = mapped_column(String(64))
    record_id: Mapped[str] = mapped_column(String(255))
    run_id: Mapped[int] = mapped_column(Integer)
    code: Mapped[str] = mapped_column(String(120))
    message: Mapped[str] = mapped_column(String(500))
    transient: Mapped[bool] = mapped_column(Boolean, default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    status: Mapped[str] = mapped_column(String(16))
    score: Mapped[float | None] = mapped_column(Float, default=None)
    effective_score: Mapped[float | None] = mapped_column(Float, default=None)
    segment: Mapped[str | None] = mapped_column(String(80), default=None)
    explanation: Mapped[str] = mapped_column(String(500))
    policy: Mapped[str] = mapped_column(String(120))
    evaluated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ConnectorWatermark(Base):
    """How far a connector's changes have been synced (the last committed batch's newest)."""

    __tablename__ = "connector_watermark"

    connector: Mapped[str] = mapped_column(String(64), primary_key=True)
    watermark: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    run_id: Mapped[int | None] = mapped_column(Integer, default=None)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ContactLink(Base):
    """Which record of which connector belongs to which identity key, so an opt-out can find every
    record to erase. ``fingerprint`` (the same on every row of one record) says what the record's
    inputs were when it was last written; a re-read with the same fingerprint is skipped."""

    __tablename__ = "contact_link"
    __table_args__ = (Index("ix_contact_link_identity_key", "identity_key"),)

    connector: Mapped[str] = mapped_column(String(64), primary_key=True)
    record_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    identity_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), default="")
    status: Mapped[str | None] = mapped_column(String(16), default=None)
    linked_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ErasureState(StrEnum):
    """``pending`` until delivered; ``failed`` when the system refused the record for good."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class OutboxErasure(Base):
    """One erasure owed to one record of one connected system, written in the same transaction
    as the opt-out that caused it. ``next_attempt_at`` doubles as the claim lease."""

    __tablename__ = "outbox_erasure"
    __table_args__ = (
        Index("ix_outbox_erasure_state_next_attempt_at", "state", "next_attempt_at"),
        Index("ix_outbox_erasure_identity_key", "identity_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    connector: Mapped[str] = mapped_column(String(64))
    record_id: Mapped[str] = mapped_column(String(255))
    identity_key: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(32))
    state: Mapped[ErasureState] = mapped_column(String(16), default=ErasureState.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    last_error: Mapped[str | None] = mapped_column(String(500), default=None)


class WebhookEventState(StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class WebhookEvent(Base):
    """A received Mailchimp webhook delivery. ``dedupe_key`` is a keyed hash of type, fired_at and
    data, so a retried delivery is stored once; ``sealed`` is the encrypted form body, erased
    (set to ``None``) once the event is processed."""

    __tablename__ = "webhook_event"
    __table_args__ = (
        UniqueConstraint("dedupe_key"),
        Index("ix_webhook_event_state_next_attempt_at", "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(32))
    dedupe_key: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(32))
    fired_at: Mapped[str] = mapped_column(String(32))
    sealed: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    state: Mapped[WebhookEventState] = mapped_column(String(16), default=WebhookEventState.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    outcome: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    last_error: Mapped[str | None] = mapped_column(String(500), default=None)
