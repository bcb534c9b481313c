"""Queries on sync runs, watermarks, per-record sync errors and contact links."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.orm import Session

from app.models import ConnectorWatermark, ContactLink, SyncRecordError, SyncRun, SyncRunState

__all__ = [
    "active_run",
    "add_run",
    "claim",
    "delete_errors",
    "errors_for",
    "errors_of_run",
    "fingerprints",
    "get_run",
    "keys_of_records",
    "list_runs",
    "next_claimable",
    "replace_links",
    "set_watermark",
    "touch",
    "upsert_errors",
    "watermark",
]

_CHUNK = 900


def add_run(session: Session, run: SyncRun) -> SyncRun:
    session.add(run)
    session.flush()
    return run


def get_run(session: Session, run_id: int) -> SyncRun | None:
    return session.get(SyncRun, run_id)


def list_runs(
    session: Session, *, connector: str | None, before_id: int | None, limit: int
) -> list[SyncRun]:
    query = select(SyncRun).order_by(SyncRun.id.desc()).limit(limit)
    if connector is not None:
        query = query.where(SyncRun.connector == connector)
    if before_id is not None:
        query = query.where(SyncRun.id < before_id)
    return list(session.scalars(query))


def active_run(session: Session, connector: str) -> SyncRun | None:
    """The connector's queued or running run, if any."""
    return session.scalars(
        select(SyncRun)
        .where(
            SyncRun.connector == connector,
            SyncRun.state.in_([SyncRunState.QUEUED.value, SyncRunState.RUNNING.value]),
        )
        .order_by(SyncRun.id)
        .limit(1)
    ).first()


def _claimable(stale_before: datetime) -> Any:
    return or_(
        SyncRun.state == SyncRunState.QUEUED,
        (SyncRun.state == SyncRunState.RUNNING) & (SyncRun.heartbeat_at < stale_before),
    )


def next_claimable(session: Session, stale_before: datetime) -> int | None:
    """The oldest queued run, or a running one whose worker stopped showing life.

    On PostgreSQL a row another transaction is claiming is skipped (``FOR UPDATE SKIP LOCKED``).
    """
    return session.scalars(
        select(SyncRun.id)
        .where(_claimable(stale_before))
        .order_by(SyncRun.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    ).first()


def claim(
    session: Session, run_id: int, *, worker: str, now: datetime, stale_before: datetime
) -> bool:
    """Mark the run ``running`` for ``worker`` if it is still claimable (compare-and-set, so two
    workers racing on a database without row locks cannot both win)."""
    result = session.execute(
        update(SyncRun)
        .where(SyncRun.id == run_id, _claimable(stale_before))
        .values(state=SyncRunState.RUNNING, worker=worker, heartbeat_at=now)
    )
    return int(getattr(result, "rowcount", 0) or 0) == 1


def touch(session: Session, run_id: int, now: datetime) -> None:
    session.execute(update(SyncRun).where(SyncRun.id == run_id).values(heartbeat_at=now))


def watermark(session: Session, connector: str) -> datetime | None:
    row = session.get(ConnectorWatermark, connector)
    return None if row is None else row.watermark


def set_watermark(
    session: Session, connector: str, value: datetime, *, run_id: int, now: datetime
) -> None:
    """Move the connector's watermark forward to ``value`` (never back)."""
    row = session.get(ConnectorWatermark, connector)
    if row is None:
        row = ConnectorWatermark(connector=connector)
        session.add(row)
    if row.watermark is None or value > row.watermark:
        row.watermark = value
    row.run_id = run_id
    row.updated_at = now
    session.flush()


def fingerprints(session: Session, connector: str, record_ids: Sequence[str]) -> dict[str, str]:
    """``record_id -> fingerprint`` of the records last written (one row per record suffices)."""
    found: dict[str, str] = {}
    for start in range(0, len(record_ids), _CHUNK):
        rows = session.execute(
            select(ContactLink.record_id, ContactLink.fingerprint).where(
                ContactLink.connector == connector,
                ContactLink.record_id.in_(list(record_ids[start : start + _CHUNK])),
            )
        )
        for record_id, fingerprint in rows:
            found[record_id] = fingerprint
    return found


def keys_of_records(
    session: Session, connector: str, record_ids: Sequence[str]
) -> dict[str, list[str]]:
    """``record_id -> identity keys`` linked to those records."""
    found: dict[str, list[str]] = {}
    for start in range(0, len(record_ids), _CHUNK):
        rows = session.execute(
            select(ContactLink.record_id, ContactLink.identity_key).where(
                ContactLink.connector == connector,
                ContactLink.record_id.in_(list(record_ids[start : start + _CHUNK])),
            )
        )
        for record_id, key in rows:
            found.setdefault(record_id, []).append(key)
    return found


def replace_links(
    session: Session,
    connector: str,
    links: Mapping[str, tuple[Collection[str], str, str | None]],
    now: datetime,
) -> None:
    """Set each record's links to exactly its current identity keys.

    ``links`` maps a record id to ``(identity keys, fingerprint, status)``; keys a record no
    longer has are dropped, so an erasure never goes to a record that is no longer that person's.
    """
    record_ids = list(links)
    for start in range(0, len(record_ids), _CHUNK):
        session.execute(
            delete(ContactLink).where(
                ContactLink.connector == connector,
                ContactLink.record_id.in_(record_ids[start : start + _CHUNK]),
            )
        )
    rows = [
        {
            "connector": connector,
            "record_id": record_id,
            "identity_key": key,
            "fingerprint": fingerprint,
            "status": status,
            "linked_at": now,
        }
        for record_id, (keys, fingerprint, status) in links.items()
        for key in dict.fromkeys(keys)
    ]
    if rows:
        session.execute(insert(ContactLink), rows)


def errors_for(session: Session, connector: str, *, limit: int) -> list[SyncRecordError]:
    return list(
        session.scalars(
            select(SyncRecordError)
            .where(SyncRecordError.connector == connector)
            .order_by(SyncRecordError.id)
            .limit(limit)
        )
    )


def errors_of_run(session: Session, run_id: int, *, limit: int) -> list[SyncRecordError]:
    return list(
        session.scalars(
            select(SyncRecordError)
            .where(SyncRecordError.run_id == run_id)
            .order_by(SyncRecordError.id)
            .limit(limit)
        )
    )


def delete_errors(session: Session, connector: str, record_ids: Collection[str]) -> None:
    ordered = list(record_ids)
    for start in range(0, len(ordered), _CHUNK):
        session.execute(
            delete(SyncRecordError).where(
                SyncRecordError.connector == connector,
                SyncRecordError.record_id.in_(ordered[start : start + _CHUNK]),
            )
        )


def upsert_errors(session: Session, connector: str, rows: Sequence[SyncRecordError]) -> None:
    """Add or refresh one error per record (``attempts`` counts the failures)."""
    existing = {
        row.record_id: row
        for start in range(0, len(rows), _CHUNK)
        for row in session.scalars(
            select(SyncRecordError).where(
                SyncRecordError.connector == connector,
                SyncRecordError.record_id.in_([r.record_id for r in rows[start : start + _CHUNK]]),
            )
        )
    }
    for row in rows:
        old = existing.get(row.record_id)
        if old is None:
            session.add(row)
            continue
        old.run_id, old.code, old.message = row.run_id, row.code, row.message
        old.transient, old.last_seen_at = row.transient, row.last_seen_at
        old.attempts += 1
        old.status, old.score, old.effective_score = row.status, row.score, row.effective_score
        old.segment, old.explanation = row.segment, row.explanation
        old.policy, old.evaluated_at = row.policy, row.evaluated_at
    session.flush()
