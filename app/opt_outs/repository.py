"""Queries on the opt-out registry. Every opt-out filter of the service lives here."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.models import OptOut

__all__ = ["add_many", "by_keys", "delete_keys", "opted_out_keys"]


def by_keys(session: Session, keys: Collection[str]) -> dict[str, OptOut]:
    if not keys:
        return {}
    rows = session.scalars(select(OptOut).where(OptOut.identity_key.in_(list(keys))))
    return {row.identity_key: row for row in rows}


def opted_out_keys(session: Session, keys: Collection[str]) -> set[str]:
    """Which of ``keys`` are in the registry (one query, chunked for very long lists)."""
    found: set[str] = set()
    ordered = list(keys)
    for start in range(0, len(ordered), 900):
        chunk = ordered[start : start + 900]
        found.update(
            session.scalars(select(OptOut.identity_key).where(OptOut.identity_key.in_(chunk)))
        )
    return found


def add_many(session: Session, rows: Sequence[OptOut]) -> None:
    session.add_all(rows)
    session.flush()


def delete_keys(session: Session, keys: Collection[str]) -> int:
    if not keys:
        return 0
    result = session.execute(delete(OptOut).where(OptOut.identity_key.in_(list(keys))))
    return int(getattr(result, "rowcount", 0) or 0)
