"""Shared builders for the policy engine tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from policies import PolicyDocument, ScoredPopulation, default_policy

T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
PROVIDER = "klout"


def at(seconds: float) -> datetime:
    """A timezone-aware arrival time ``seconds`` after T0."""
    return T0 + timedelta(seconds=seconds)


def policy(**changes: Any) -> PolicyDocument:
    """The default policy for the test provider with top-level fields replaced (validated)."""
    return default_policy(PROVIDER, name="support-queue").with_updates(**changes)


def population(scores: Any = None) -> ScoredPopulation:
    """0, 1, ..., 100 by default: median 50, percentile p is p."""
    return ScoredPopulation(PROVIDER, range(101) if scores is None else scores)


def document_data(**changes: Any) -> dict[str, Any]:
    """The JSON form of the test policy with top-level fields replaced (not validated)."""
    data = policy().model_dump(mode="json")
    data.update(changes)
    return data
