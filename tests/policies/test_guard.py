"""The fairness guard: figures per group, its three checks, demotion allowance, property (a)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from policies import (
    NON_SCORED,
    GroupFigures,
    GuardCheck,
    GuardContact,
    GuardReport,
    PolicyDocument,
    ScoredPopulation,
    Status,
    evaluate,
    find_demotions,
    guard,
)
from tests.policies.factories import document_data, policy, population

SCORED_SAMPLE = [10, 40, 55, 70, 90]


def sample(unscored: int = 4, opted_out: int = 2) -> list[GuardContact]:
    contacts = [GuardContact(status=Status.SCORED, score=score) for score in SCORED_SAMPLE]
    contacts += [GuardContact(status=Status.UNSCORED)] * unscored
    contacts += [GuardContact(status=Status.OPTED_OUT)] * opted_out
    return contacts


def group(report: GuardReport, status: Status) -> GroupFigures:
    return next(figures for figures in report.groups if figures.status is status)


def rates(figures: GroupFigures) -> list[tuple[str, float | None, float | None, bool]]:
    return [(s.segment, s.selection_rate, s.ratio, s.checked) for s in figures.segments]


class TestGuardFigures:
    def test_neutral_policy_passes(self) -> None:
        report = guard(policy(), sample(), population())
        assert (report.passed, report.acceptable, report.violations) == (True, True, [])
        assert (report.scored_median, report.pool_size) == (50, 11)

    def test_scored_group_figures(self) -> None:
        scored = group(guard(policy(), sample(), population()), Status.SCORED)
        assert (scored.count, scored.with_effective_score, scored.median_effective_score) == (
            5,
            5,
            55,
        )
        assert scored.mean_percentile == pytest.approx(55.45, abs=0.01)
        assert rates(scored) == [
            ("high", 0.4, 1.0, False),
            ("mid", 0.8, 1.0, False),
            ("standard", 1.0, 1.0, False),
        ]

    def test_neutral_group_figures(self) -> None:
        unscored = group(guard(policy(), sample(), population()), Status.UNSCORED)
        assert (unscored.count, unscored.median_effective_score) == (4, 50)
        assert unscored.mean_percentile == pytest.approx(45.45, abs=0.01)
        assert rates(unscored) == [
            ("high", 0.0, 0.0, False),
            ("mid", 1.0, 1.25, True),
            ("standard", 1.0, 1.0, True),
        ]

    def test_absent_group_is_reported_empty(self) -> None:
        absent = group(guard(policy(), sample(), population()), Status.NOT_FOUND)
        assert (absent.count, absent.mean_percentile, absent.segments, absent.note) == (
            0,
            None,
            [],
            None,
        )

    def test_report_is_json_ready(self) -> None:
        report = guard(policy(), sample(), population())
        data = json.loads(json.dumps(report.model_dump(mode="json")))
        assert GuardReport.model_validate(data) == report


class TestGuardChecks:
    def test_fixed_below_median_fails_median_and_four_fifths(self) -> None:
        doc = policy(missing={"unscored": {"strategy": "fixed", "value": 20}})
        report = guard(doc, sample(), population())
        found = [(v.group, v.check, v.segment, v.figure, v.threshold) for v in report.violations]
        assert found == [
            (Status.UNSCORED, GuardCheck.FOUR_FIFTHS, "mid", 0.0, 0.8),
            (Status.UNSCORED, GuardCheck.MEDIAN, None, 20, 50),
        ]
        assert (report.passed, report.allowed_by_demotion, report.acceptable) == (
            False,
            False,
            False,
        )

    def test_excluded_group_is_reported_not_failed(self) -> None:
        doc = policy(missing={"opted_out": {"strategy": "exclude"}})
        report = guard(doc, sample(), population())
        excluded = group(report, Status.OPTED_OUT)
        assert (excluded.count, excluded.with_effective_score) == (2, 0)
        assert excluded.note == "no effective score under this policy; reported, not checked"
        assert report.passed

    def test_demoting_rule_fails_without_contacts_of_that_status(self) -> None:
        doc = policy(missing={"unavailable": {"strategy": "percentile", "p": 25}})
        report = guard(doc, sample(), population())
        (violation,) = report.violations
        assert (violation.group, violation.check, violation.figure, violation.threshold) == (
            Status.UNAVAILABLE,
            GuardCheck.DEMOTION_RULE,
            25,
            50,
        )
        assert report.demotions == find_demotions(doc, population())

    def test_allow_demotion_with_reason_is_acceptable(self) -> None:
        doc = policy(
            missing={"unscored": {"strategy": "fixed", "value": 20}},
            allow_demotion=True,
            demotion_reason="approved by the works council, ticket 88",
        )
        report = guard(doc, sample(), population())
        assert (report.passed, report.allowed_by_demotion, report.acceptable) == (False, True, True)
        assert report.demotion_reason == "approved by the works council, ticket 88"

    def test_allow_demotion_without_violations_is_just_passed(self) -> None:
        doc = policy(allow_demotion=True, demotion_reason="not needed")
        report = guard(doc, sample(), population())
        assert (report.passed, report.allowed_by_demotion) == (True, False)

    def test_empty_population_uses_the_sample_median(self) -> None:
        doc = policy(missing={"unscored": {"strategy": "fixed", "value": 54}})
        report = guard(doc, sample(), ScoredPopulation("klout"))
        assert report.scored_median == 55
        assert [v.check for v in report.violations] == [GuardCheck.MEDIAN]
        assert group(report, Status.OPTED_OUT).note is not None

    def test_no_scored_contacts_leaves_ratios_unchecked(self) -> None:
        contacts = [GuardContact(status=Status.UNSCORED)] * 3
        report = guard(policy(), contacts, population())
        assert report.passed
        assert {s.ratio for s in group(report, Status.UNSCORED).segments} == {None}


class TestGuardContact:
    def test_scored_needs_a_score(self) -> None:
        with pytest.raises(ValidationError, match="needs its score"):
            GuardContact(status=Status.SCORED)

    def test_non_scored_carries_no_score(self) -> None:
        with pytest.raises(ValidationError, match="carries no score"):
            GuardContact(status=Status.OPTED_OUT, score=3)


RULES = st.one_of(
    st.just({"strategy": "neutral"}),
    st.just({"strategy": "exclude"}),
    st.builds(lambda p: {"strategy": "percentile", "p": p}, st.integers(0, 100)),
    st.builds(lambda v: {"strategy": "fixed", "value": v}, st.floats(-10, 110).map(round)),
)


@st.composite
def guarded_case(draw: st.DrawFn) -> tuple[PolicyDocument, ScoredPopulation, list[GuardContact]]:
    missing: dict[str, Any] = {status.value: draw(RULES) for status in NON_SCORED}
    doc = PolicyDocument.model_validate(document_data(missing=missing))
    scores = draw(st.lists(st.floats(0, 100), max_size=40))
    statuses = draw(st.lists(st.sampled_from(list(Status)), max_size=40))
    contacts = [
        GuardContact(status=s, score=draw(st.floats(0, 100)) if s is Status.SCORED else None)
        for s in statuses
    ]
    return doc, population(scores), contacts


class TestGuardProperty:
    @settings(derandomize=True, deadline=None, max_examples=150)
    @given(case=guarded_case())
    def test_no_group_below_the_median_passes(
        self, case: tuple[PolicyDocument, ScoredPopulation, list[GuardContact]]
    ) -> None:
        doc, scores, contacts = case
        report = guard(doc, contacts, scores)
        if find_demotions(doc, scores):
            assert not report.passed
        if not report.passed:
            return
        median = scores.median()
        for status in NON_SCORED:
            effective = evaluate(doc, status, None, scores).effective_score
            if effective is not None and median is not None:
                assert effective >= round(median, 2)
        for contact in contacts:
            effective = evaluate(doc, contact.status, contact.score, scores).effective_score
            reference = report.scored_median
            if contact.status is Status.SCORED or effective is None or reference is None:
                continue
            assert effective >= reference
