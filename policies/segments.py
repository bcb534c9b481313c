"""Segments: which named band an effective score falls into.

A policy's segments are ordered by strictly descending ``min`` (validated in
:class:`policies.model.PolicyDocument`). A score belongs to the first segment whose ``min`` it
reaches; the last segment is the floor and also takes scores below its own ``min``, so every
effective score has a segment. No effective score (``exclude``, or no scored population to take a
median from) means no segment.

Segment lookups sit on the hot path of evaluation, so a policy's segments are compiled once into a
:class:`SegmentTable` (a bisect over the ascending minimums) and the table is cached.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from functools import lru_cache

from policies.model import Segment

__all__ = ["SegmentTable", "segment_table"]


class SegmentTable:
    """Compiled segments: names and minimums, with O(log s) lookup.

    Segment *level* 0 is the top segment; "selected at segment j" means level <= j.
    """

    __slots__ = ("_ascending_mins", "_names_ascending", "mins", "names")

    def __init__(self, segments: Sequence[Segment]) -> None:
        if not segments:
            raise ValueError("a policy has at least one segment")
        self.names: tuple[str, ...] = tuple(segment.name for segment in segments)
        self.mins: tuple[float, ...] = tuple(segment.min for segment in segments)
        self._ascending_mins = self.mins[::-1]
        self._names_ascending = self.names[::-1]

    def level(self, score: float) -> int:
        """The level (0 = top) of ``score``'s segment; the floor takes everything below."""
        index = bisect_right(self._ascending_mins, score) - 1
        ascending_index = max(index, 0)
        return len(self.names) - 1 - ascending_index

    def name_for(self, score: float | None) -> str | None:
        """The segment name for an effective score, or ``None`` when there is no effective score."""
        if score is None:
            return None
        index = bisect_right(self._ascending_mins, score) - 1
        return self._names_ascending[max(index, 0)]

    def level_of(self, name: str) -> int:
        """The level of a segment by name; ``ValueError`` for an unknown name."""
        return self.names.index(name)


@lru_cache(maxsize=256)
def segment_table(segments: tuple[Segment, ...]) -> SegmentTable:
    """The compiled table for a policy's segments (cached; segments are immutable and hashable)."""
    return SegmentTable(segments)
