"""Queries on cached provider answers and the quota ledger."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from app.models import CachedAnswer, OptOut, QuotaLedger

__all__ = [
    "delete_answers",
    "delete_answers_of_opted_out",
    "get_answers",
    "ledger_used",
    "scored_scores",
    "set_ledger",
    "upsert_answer",
]


def get_answers(
    session: Session, namespace: str, keys: Sequence[str], now: datetime
) -> list[CachedAnswer]:
    found: list[CachedAnswer] = []
    for start in range(0, len(keys), 900):
        chunk = list(keys[start : start + 900])
        found.extend(
            session.scalars(
                select(CachedAnswer).where(
                    CachedAnswer.namespace == namespace,
                    CachedAnswer.identity_key.in_(chunk),
                    CachedAnswer.expires_at > now,
                )
            )
        )
    return found


def upsert_answer(session: Session, answer: CachedAnswer) -> None:
    session.merge(answer)
    session.flush()


def delete_answers(session: Session, keys: Collection[str]) -> list[tuple[str, float | None]]:
    """Delete every namespace's answers for ``keys``; return ``(namespace, score)`` of each."""
    if not keys:
        return []
    rows = session.execute(
        select(CachedAnswer.namespace, CachedAnswer.score).where(
            CachedAnswer.identity_key.in_(list(keys))
        )
    ).all()
    session.execute(delete(CachedAnswer).where(CachedAnswer.identity_key.in_(list(keys))))
    return [(namespace, score) for namespace, score in rows]


def delete_answers_of_opted_out(session: Session) -> list[tuple[str, float | None]]:
    """Erase any answer whose identity is in the registry (closes a write race; see store)."""
    opted = select(OptOut.identity_key)
    rows = session.execute(
        select(CachedAnswer.namespace, CachedAnswer.score).where(
            CachedAnswer.identity_key.in_(opted)
        )
    ).all()
    if rows:
        session.execute(delete(CachedAnswer).where(CachedAnswer.identity_key.in_(opted)))
    return [(namespace, score) for namespace, score in rows]


def scored_scores(session: Session, namespace: str, now: datetime) -> list[float]:
    """Every unexpired stored score of one provider: its scored population."""
    return [
        score
        for score in session.scalars(
            select(CachedAnswer.score).where(
                CachedAnswer.namespace == namespace,
                CachedAnswer.kind == "score",
                CachedAnswer.expires_at > now,
            )
        )
        if score is not None
    ]


def ledger_used(session: Session, provider: str, window_start: datetime) -> int:
    row = session.get(QuotaLedger, (provider, window_start))
    return 0 if row is None else row.used


def set_ledger(session: Session, provider: str, window_start: datetime, used: int) -> None:
    """Raise the window's count to ``used`` (never lower it), atomically across writers."""
    insert = sqlite_insert if session.get_bind().dialect.name == "sqlite" else pg_insert
    statement = insert(QuotaLedger).values(provider=provider, window_start=window_start, used=used)
    statement = statement.on_conflict_do_update(
        index_elements=["provider", "window_start"],
        set_={"used": func.max(QuotaLedger.used, statement.excluded.used)}
        if insert is sqlite_insert
        else {"used": func.greatest(QuotaLedger.used, statement.excluded.used)},
    )
    session.execute(statement)
