"""Sync run API shapes."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.models import SyncRecordError, SyncRun, SyncRunState

__all__ = ["RecordErrorOut", "SyncRunDetail", "SyncRunList", "SyncRunOut", "SyncRunRequest"]


class SyncRunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    connector: str = Field(min_length=1, max_length=64, description="a configured connector")
    dry_run: bool = Field(default=False, description="compute and report, write nothing")


class SyncProgress(BaseModel):
    read: int = Field(description="records read from the connector")
    skipped: int = Field(description="records whose inputs had not changed since their last write")
    written: int = Field(description="records the connector accepted (retries included)")
    errors: int = Field(description="records the connector refused; retried next run")
    retried: int = Field(description="refused records of earlier runs sent again")
    batches: int = Field(description="batches committed")
    api_calls: int = Field(description="calls made to the connector for writes")


class SyncRunOut(BaseModel):
    id: int
    connector: str
    dry_run: bool
    state: SyncRunState
    actor: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    since: datetime | None = Field(description="the watermark the run read changes from")
    counts: dict[str, int] = Field(description="records per status")
    progress: SyncProgress
    message: str | None

    @classmethod
    def of(cls, run: SyncRun) -> SyncRunOut:
        return cls(
            id=run.id,
            connector=run.connector,
            dry_run=run.dry_run,
            state=SyncRunState(run.state),
            actor=run.actor,
            created_at=run.created_at,
            started_at=run.started_at,
            finished_at=run.finished_at,
            since=run.since,
            counts=dict(run.counts),
            progress=SyncProgress(
                read=run.read,
                skipped=run.skipped,
                written=run.written,
                errors=run.errors,
                retried=run.retried,
                batches=run.batches,
                api_calls=run.api_calls,
            ),
            message=run.message,
        )


class RecordErrorOut(BaseModel):
    record_id: str
    code: str
    message: str
    transient: bool
    attempts: int
    last_seen_at: datetime

    @classmethod
    def of(cls, row: SyncRecordError) -> RecordErrorOut:
        return cls(
            record_id=row.record_id,
            code=row.code,
            message=row.message,
            transient=row.transient,
            attempts=row.attempts,
            last_seen_at=row.last_seen_at,
        )


class SyncRunDetail(SyncRunOut):
    record_errors: list[RecordErrorOut] = Field(
        default_factory=list, description="refused records last seen by this run (first 100)"
    )


class SyncRunList(BaseModel):
    runs: list[SyncRunOut]
