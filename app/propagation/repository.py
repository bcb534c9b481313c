"""Queries on contact links and the erasure outbox."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.models import ContactLink, ErasureState, OutboxErasure

__all__ = [
    "add_erasures",
    "by_identity_keys",
    "by_ids",
    "claim_due",
    "forget_fingerprints",
    "links_for_keys",
    "list_by_states",
    "pending_pairs",
    "state_counts",
]

_CHUNK = 900


def links_for_keys(session: Session, keys: Collection[str]) -> list[ContactLink]:
    """Every contact link of these identity keys."""
    ordered = list(keys)
    found: list[ContactLink] = []
    for start in range(0, len(ordered), _CHUNK):
        chunk = ordered[start : start + _CHUNK]
        found.extend(
            session.scalars(select(ContactLink).where(ContactLink.identity_key.in_(chunk)))
        )
    return found


def forget_fingerprints(session: Session, pairs: Collection[tuple[str, str]]) -> None:
    """Make the next sync of these records compute them again instead of skipping them."""
    for connector, record_id in pairs:
        session.execute(
            update(ContactLink)
            .where(ContactLink.connector == connector, ContactLink.record_id == record_id)
            .values(fingerprint="")
        )


def pending_pairs(session: Session, pairs: Collection[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which of these ``(connector, record_id)`` already have a pending erasure."""
    if not pairs:
        return set()
    record_ids = list({record_id for _, record_id in pairs})
    found: set[tuple[str, str]] = set()
    for start in range(0, len(record_ids), _CHUNK):
        rows = session.execute(
            select(OutboxErasure.connector, OutboxErasure.record_id).where(
                OutboxErasure.state == ErasureState.PENDING,
                OutboxErasure.record_id.in_(record_ids[start : start + _CHUNK]),
            )
        )
        found.update((connector, record_id) for connector, record_id in rows)
    return found & set(pairs)


def add_erasures(session: Session, rows: Sequence[OutboxErasure]) -> None:
    session.add_all(rows)
    session.flush()


def claim_due(
    session: Session, *, now: datetime, lease_until: datetime, limit: int
) -> list[OutboxErasure]:
    """Take up to ``limit`` due erasures: their ``next_attempt_at`` moves to ``lease_until``, so no
    other worker takes them before the lease ends. On PostgreSQL rows another worker is claiming
    are skipped (``FOR UPDATE SKIP LOCKED``); SQLite serialises writers anyway."""
    rows = list(
        session.scalars(
            select(OutboxErasure)
            .where(
                OutboxErasure.state == ErasureState.PENDING,
                OutboxErasure.next_attempt_at <= now,
            )
            .order_by(OutboxErasure.next_attempt_at, OutboxErasure.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    for row in rows:
        row.next_attempt_at = lease_until
    session.flush()
    return rows


def by_ids(session: Session, ids: Collection[int]) -> list[OutboxErasure]:
    if not ids:
        return []
    return list(session.scalars(select(OutboxErasure).where(OutboxErasure.id.in_(list(ids)))))


def by_identity_keys(session: Session, keys: Collection[str]) -> list[OutboxErasure]:
    ordered = list(keys)
    found: list[OutboxErasure] = []
    for start in range(0, len(ordered), _CHUNK):
        found.extend(
            session.scalars(
                select(OutboxErasure)
                .where(OutboxErasure.identity_key.in_(ordered[start : start + _CHUNK]))
                .order_by(OutboxErasure.id)
            )
        )
    return found


def list_by_states(
    session: Session, states: Collection[ErasureState], *, limit: int
) -> list[OutboxErasure]:
    return list(
        session.scalars(
            select(OutboxErasure)
            .where(OutboxErasure.state.in_([str(state) for state in states]))
            .order_by(OutboxErasure.id)
            .limit(limit)
        )
    )


def state_counts(session: Session) -> dict[tuple[str, str], int]:
    """``(connector, state) -> erasures``."""
    rows = session.execute(
        select(OutboxErasure.connector, OutboxErasure.state, func.count()).group_by(
            OutboxErasure.connector, OutboxErasure.state
        )
    )
    return {(connector, str(state)): int(count) for connector, state, count in rows}
