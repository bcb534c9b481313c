"""The scored population of one provider: the reference every missing-score strategy measures by.

``neutral`` means "the median of the people the provider did score", ``percentile: p`` means a
percentile of them, and the fairness guard compares groups against their median. The population is
kept current incrementally as scores arrive, change and are erased (an opt-out erases a score), so
each change costs O(log n) on a sorted list instead of a re-sort.

Definitions (fixed here so every figure in the service agrees):

- ``percentile(p)`` interpolates linearly between closest ranks: position ``p/100 * (n - 1)`` in the
  ascending order (the "linear" method of numpy and of most spreadsheets). ``median()`` is exactly
  ``percentile(50)``, so ``percentile: 50`` and ``neutral`` always give the same number.
- ``percentile_rank(x)`` is the share of scores below ``x`` plus half the share equal to it, times
  100 (the "mean" kind of ``scipy.stats.percentileofscore``): a value equal to every score ranks 50.
- An **empty** population has no median, no percentile and no rank: these return ``None``. The
  strategies then give no effective score (``neutral`` and ``percentile`` never fall back to 0);
  see :mod:`policies.strategies`.

Thread safety: every method takes the instance lock; statistics are cached per ``version`` (which
changes on every mutation), so readers between two changes share one computation.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Iterable

from sortedcontainers import SortedList

__all__ = ["ScoredPopulation"]

_instance_ids = itertools.count(1)


def _checked(score: float) -> float:
    value = float(score)
    if not math.isfinite(value):
        raise ValueError(f"a score must be a finite number, got {score!r}")
    return value


class ScoredPopulation:
    """The scores one provider gave, as a thread-safe sorted multiset with cached statistics.

    ``uid`` identifies the instance and ``version`` its state; together they key caches elsewhere
    (a policy document caches its evaluations per ``(uid, version)``).
    """

    def __init__(self, provider: str, scores: Iterable[float] = ()) -> None:
        """Start from ``scores`` (any iterable of finite numbers; O(n log n))."""
        self.provider = provider
        self.uid = next(_instance_ids)
        self._lock = threading.RLock()
        self._scores = SortedList(_checked(score) for score in scores)
        self._version = 0
        self._percentiles: dict[float, float] = {}

    @property
    def version(self) -> int:
        """Increases by one on every change."""
        return self._version

    @property
    def count(self) -> int:
        """How many scores the population holds."""
        return len(self._scores)

    def __len__(self) -> int:
        return len(self._scores)

    def _changed(self) -> None:
        self._version += 1
        self._percentiles = {}

    def add(self, score: float) -> None:
        """Add one score (O(log n))."""
        value = _checked(score)
        with self._lock:
            self._scores.add(value)
            self._changed()

    def remove(self, score: float) -> None:
        """Remove one occurrence of ``score`` (O(log n)); ``KeyError`` when it is not held."""
        value = _checked(score)
        with self._lock:
            if value not in self._scores:
                raise KeyError(f"score {value:g} is not in the population")
            self._scores.remove(value)
            self._changed()

    def replace(self, old: float, new: float) -> None:
        """Replace one ``old`` by ``new`` atomically; ``KeyError`` if ``old`` is absent.

        Readers never see the population with the old score gone and the new one not yet added.
        """
        old_value, new_value = _checked(old), _checked(new)
        with self._lock:
            if old_value not in self._scores:
                raise KeyError(f"score {old_value:g} is not in the population")
            self._scores.remove(old_value)
            self._scores.add(new_value)
            self._changed()

    def percentile(self, p: float) -> float | None:
        """The ``p``-th percentile (0..100, linear interpolation); ``None`` when empty."""
        if not 0 <= p <= 100:
            raise ValueError(f"a percentile is between 0 and 100, got {p!r}")
        with self._lock:
            cached = self._percentiles.get(p)
            if cached is not None:
                return cached
            n = len(self._scores)
            if n == 0:
                return None
            position = p / 100 * (n - 1)
            below = math.floor(position)
            above = min(below + 1, n - 1)
            low: float = self._scores[below]
            high: float = self._scores[above]
            value = low + (high - low) * (position - below)
            self._percentiles[p] = value
            return value

    def median(self) -> float | None:
        """The median (``percentile(50)``); ``None`` when the population is empty."""
        return self.percentile(50)

    def percentile_rank(self, score: float) -> float | None:
        """Where ``score`` sits in the population, 0..100 (ties count half); ``None`` if empty."""
        value = _checked(score)
        with self._lock:
            n = len(self._scores)
            if n == 0:
                return None
            below: int = self._scores.bisect_left(value)
            equal: int = self._scores.bisect_right(value) - below
            return (below + equal / 2) / n * 100

    def snapshot(self) -> tuple[int, list[float]]:
        """The current version and a copy of the scores in ascending order (for reports)."""
        with self._lock:
            return self._version, list(self._scores)
