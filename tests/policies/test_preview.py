"""Preview: segment moves, rank moves and the candidate's guard report; nothing changes."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from policies import PreviewContact, RankMove, SegmentMove, Status, preview
from tests.policies.factories import at, policy, population


def contacts() -> list[PreviewContact]:
    return [
        PreviewContact(id="a", status=Status.SCORED, score=70, arrived_at=at(0)),
        PreviewContact(id="b", status=Status.SCORED, score=40, arrived_at=at(1)),
        PreviewContact(id="c", status=Status.UNSCORED, arrived_at=at(2)),
        PreviewContact(id="d", status=Status.OPTED_OUT, arrived_at=at(3)),
        PreviewContact(id="e", status=Status.SCORED, score=10, arrived_at=at(4)),
    ]


CANDIDATE = policy(
    missing={"opted_out": {"strategy": "exclude"}, "unscored": {"strategy": "percentile", "p": 75}}
)


class TestPreviewAgainstCurrent:
    def test_segment_moves(self) -> None:
        report = preview(policy(), CANDIDATE, contacts(), population())
        assert (report.contacts, report.segment_changes) == (5, 2)
        assert report.segment_moves == [
            SegmentMove(from_segment="mid", to_segment=None, count=1),
            SegmentMove(from_segment="mid", to_segment="high", count=1),
        ]

    def test_rank_moves(self) -> None:
        report = preview(policy(), CANDIDATE, contacts(), population())
        assert report.rank_changes == 4
        assert report.largest_rank_moves == [
            RankMove(id="a", status=Status.SCORED, old_rank=1, new_rank=2, delta=-1),
            RankMove(id="b", status=Status.SCORED, old_rank=4, new_rank=3, delta=1),
            RankMove(id="c", status=Status.UNSCORED, old_rank=2, new_rank=1, delta=1),
            RankMove(id="d", status=Status.OPTED_OUT, old_rank=3, new_rank=4, delta=-1),
        ]

    def test_includes_the_candidate_guard_report(self) -> None:
        report = preview(policy(), CANDIDATE, contacts(), population())
        assert report.guard.passed
        assert report.guard.policy == CANDIDATE.name
        assert (report.current_policy, report.candidate_policy) == (
            "support-queue",
            "support-queue",
        )

    def test_same_policy_changes_nothing(self) -> None:
        report = preview(policy(), policy(), contacts(), population())
        assert (report.segment_changes, report.rank_changes, report.largest_rank_moves) == (
            0,
            0,
            [],
        )

    def test_lists_at_most_ten_largest_moves(self) -> None:
        many = [
            PreviewContact(id=f"c{i:02}", status=Status.SCORED, score=i, arrived_at=at(i))
            for i in range(30)
        ]
        report = preview(policy(ranking={"method": "fifo"}), policy(), many, population())
        assert report.rank_changes == 30
        assert [move.id for move in report.largest_rank_moves] == [
            "c00", "c29", "c01", "c28", "c02", "c27", "c03", "c26", "c04", "c25"
        ]  # fmt: skip
        assert report.largest_rank_moves[0].delta == -29

    def test_leaves_the_population_unchanged(self) -> None:
        scores = population()
        version = scores.version
        preview(policy(), CANDIDATE, contacts(), scores)
        assert scores.version == version


class TestPreviewFirstVersion:
    def test_before_is_no_segment_and_arrival_order(self) -> None:
        report = preview(None, policy(), contacts(), population())
        assert report.current_policy is None
        assert report.segment_moves == [
            SegmentMove(from_segment=None, to_segment="mid", count=3),
            SegmentMove(from_segment=None, to_segment="high", count=1),
            SegmentMove(from_segment=None, to_segment="standard", count=1),
        ]
        assert [(m.id, m.delta) for m in report.largest_rank_moves] == [
            ("b", -2),
            ("c", 1),
            ("d", 1),
        ]


class TestPreviewContacts:
    def test_duplicate_ids_are_refused(self) -> None:
        twice = [*contacts(), contacts()[0]]
        with pytest.raises(ValueError, match="unique"):
            preview(None, policy(), twice, population())

    def test_non_scored_contact_carries_no_score(self) -> None:
        with pytest.raises(ValidationError, match="carries no score"):
            PreviewContact(id="x", status=Status.UNSCORED, score=5, arrived_at=at(0))
