"""The scored population of each provider, kept current as answers arrive.

``neutral`` means the median of the scored population; recomputing it from the database on every
request would cost a full scan, so each provider's stored scores are held in a
:class:`policies.ScoredPopulation` that cache writes and erasures update, and that is reloaded
from the database periodically (other replicas write too).
"""

from __future__ import annotations

import contextlib
import threading
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from app.providers import repository
from policies.population import ScoredPopulation

__all__ = ["Populations"]


class Populations:
    """One :class:`ScoredPopulation` per provider name."""

    def __init__(self, sessions: sessionmaker[Session], providers: list[str]) -> None:
        self._sessions = sessions
        self._lock = threading.Lock()
        self._populations = {name: ScoredPopulation(name) for name in providers}

    def get(self, provider: str) -> ScoredPopulation:
        with self._lock:
            population = self._populations.get(provider)
            if population is None:
                population = self._populations[provider] = ScoredPopulation(provider)
            return population

    def added(self, provider: str, score: float) -> None:
        if provider in self._populations:
            self._populations[provider].add(score)

    def removed(self, provider: str, score: float) -> None:
        if provider in self._populations:
            # a score another replica stored may not be here; the next reload settles it
            with contextlib.suppress(KeyError, ValueError):
                self._populations[provider].remove(score)

    def reload(self) -> None:
        """Replace every population with the unexpired scores stored in the database."""
        now = datetime.now(UTC)
        with self._sessions() as session:
            fresh = {
                name: ScoredPopulation(name, repository.scored_scores(session, name, now))
                for name in list(self._populations)
            }
        with self._lock:
            self._populations.update(fresh)
