"""Segment tables: the first segment reached, the floor catches everything below."""

from __future__ import annotations

import pytest

from policies import Segment
from policies.segments import SegmentTable, segment_table

SEGMENTS = (Segment(name="high", min=60), Segment(name="mid", min=30), Segment(name="low", min=0))


class TestNameFor:
    @pytest.mark.parametrize(
        ("score", "name"),
        [(100, "high"), (60, "high"), (59.99, "mid"), (30, "mid"), (0, "low"), (-5, "low")],
    )
    def test_boundaries(self, score: float, name: str) -> None:
        assert segment_table(SEGMENTS).name_for(score) == name

    def test_no_effective_score_has_no_segment(self) -> None:
        assert segment_table(SEGMENTS).name_for(None) is None


class TestLevel:
    def test_levels_count_from_the_top(self) -> None:
        table = segment_table(SEGMENTS)
        assert [table.level(s) for s in (75, 45, 10, -1)] == [0, 1, 2, 2]
        assert table.level_of("mid") == 1

    def test_empty_segments_are_refused(self) -> None:
        with pytest.raises(ValueError, match="at least one segment"):
            SegmentTable(())
