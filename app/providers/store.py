"""The database-backed answer cache and quota ledger the gateway uses.

Each call is its own short transaction: cache writes are not part of any request's unit of work.
A write for an identity that is (or has just been) opted out is refused or undone, so the cache
never keeps a score for a person in the registry.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from app.db import session_scope
from app.models import CachedAnswer
from app.opt_outs import repository as registry
from app.providers import repository
from connectors.base import AnswerKind
from connectors.cache import StoredAnswer

__all__ = ["DbAnswerStore", "DbQuotaLedger"]

log = logging.getLogger("scoregate.providers.store")


class DbAnswerStore:
    """``connectors.cache.AnswerStore`` on the ``cached_answer`` table."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        on_score_added: Callable[[str, float], None] | None = None,
        on_score_removed: Callable[[str, float], None] | None = None,
    ) -> None:
        self._sessions = sessions
        self._added = on_score_added
        self._removed = on_score_removed

    def get_many(
        self, namespace: str, keys: Sequence[str], now: datetime
    ) -> dict[str, StoredAnswer]:
        with self._sessions() as session:
            rows = repository.get_answers(session, namespace, keys, now)
            return {
                row.identity_key: StoredAnswer(
                    kind=row.kind,
                    fact=row.fact,
                    score=row.score,
                    fetched_at=row.fetched_at,
                    expires_at=row.expires_at,
                )
                for row in rows
            }

    def put(self, namespace: str, key: str, answer: StoredAnswer) -> bool:
        if answer.kind == AnswerKind.OPTED_OUT:
            return False  # the registry records it; nothing about the person is cached
        with session_scope(self._sessions) as session:
            if registry.opted_out_keys(session, [key]):
                return False
            previous = session.get(CachedAnswer, (namespace, key))
            old_score = previous.score if previous is not None else None
            repository.upsert_answer(
                session,
                CachedAnswer(
                    namespace=namespace,
                    identity_key=key,
                    kind=answer.kind,
                    score=answer.score,
                    fact=answer.fact[:300],
                    fetched_at=answer.fetched_at,
                    expires_at=answer.expires_at,
                ),
            )
        with session_scope(self._sessions) as session:
            if registry.opted_out_keys(session, [key]):
                repository.delete_answers(session, [key])
                log.info("cache.put.undone", extra={"identity_key": key, "namespace": namespace})
                return False
        if old_score is not None and self._removed is not None:
            self._removed(namespace, old_score)
        if answer.score is not None and answer.kind == AnswerKind.SCORE and self._added is not None:
            self._added(namespace, answer.score)
        return True


class DbQuotaLedger:
    """``connectors.pacing.QuotaLedger`` on the ``quota_ledger`` table."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def load(self, name: str, window_start: datetime) -> int:
        with self._sessions() as session:
            return repository.ledger_used(session, name, window_start)

    def record(self, name: str, window_start: datetime, used: int) -> None:
        with session_scope(self._sessions) as session:
            repository.set_ledger(session, name, window_start, used)
