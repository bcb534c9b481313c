"""Evaluation per strategy, the empty population, caching, and static demotion detection."""

from __future__ import annotations

import gc

import pytest

from policies import (
    Evaluation,
    ScoredPopulation,
    Status,
    Strategy,
    evaluate,
    find_demotions,
    strategies,
)
from tests.policies.factories import policy, population


class TestEvaluateScored:
    def test_keeps_the_score_rounded(self) -> None:
        result = evaluate(policy(), Status.SCORED, 71.2349, population())
        assert result == Evaluation(
            71.23, "high", "scored", "the provider's score is used as given"
        )

    def test_needs_a_score(self) -> None:
        with pytest.raises(ValueError, match="needs its score"):
            evaluate(policy(), Status.SCORED, None, population())

    def test_segment_boundary_uses_the_rounded_score(self) -> None:
        assert evaluate(policy(), Status.SCORED, 59.996, population()).segment == "high"


class TestEvaluateNeutral:
    def test_is_the_median(self) -> None:
        result = evaluate(policy(), Status.OPTED_OUT, None, population())
        assert (result.effective_score, result.segment) == (50, "mid")
        assert result.rule == "opted_out: neutral"
        assert result.reason == "treated as the median (50)"

    def test_empty_population_gives_no_score_never_zero(self) -> None:
        result = evaluate(policy(), Status.UNSCORED, None, ScoredPopulation("klout"))
        assert (result.effective_score, result.segment) == (None, None)
        assert "no scored population yet" in result.reason

    def test_non_scored_contact_carries_no_score(self) -> None:
        with pytest.raises(ValueError, match="carries no score"):
            evaluate(policy(), Status.UNSCORED, 12, population())


class TestEvaluatePercentile:
    def test_is_that_percentile(self) -> None:
        doc = policy(missing={"unscored": {"strategy": "percentile", "p": 75}})
        result = evaluate(doc, Status.UNSCORED, None, population())
        assert (result.effective_score, result.segment) == (75, "high")
        assert result.rule == "unscored: percentile 75"
        assert result.reason == "treated as the 75th percentile of scored people (75)"

    def test_percentile_50_equals_neutral(self) -> None:
        scores = ScoredPopulation("klout", [3.3, 8.1, 2.2, 9.7])
        doc = policy(missing={"unscored": {"strategy": "percentile", "p": 50}})
        assert (
            evaluate(doc, Status.UNSCORED, None, scores).effective_score
            == evaluate(doc, Status.OPTED_OUT, None, scores).effective_score
        )

    def test_empty_population_gives_no_score(self) -> None:
        doc = policy(missing={"unscored": {"strategy": "percentile", "p": 80}})
        result = evaluate(doc, Status.UNSCORED, None, ScoredPopulation("klout"))
        assert result.effective_score is None
        assert "80th percentile" in result.reason


class TestEvaluateFixed:
    def test_is_the_value(self) -> None:
        doc = policy(missing={"not_found": {"strategy": "fixed", "value": 64.5}})
        result = evaluate(doc, Status.NOT_FOUND, None, population())
        assert (result.effective_score, result.segment) == (64.5, "high")
        assert result.rule == "not_found: fixed 64.5"
        assert result.reason == "given the fixed score 64.5 set by the policy"

    def test_needs_no_population(self) -> None:
        doc = policy(missing={"not_found": {"strategy": "fixed", "value": 40}})
        result = evaluate(doc, Status.NOT_FOUND, None, ScoredPopulation("klout"))
        assert (result.effective_score, result.segment) == (40, "mid")


class TestEvaluateExclude:
    def test_no_score_no_segment(self) -> None:
        doc = policy(missing={"opted_out": {"strategy": "exclude"}})
        result = evaluate(doc, Status.OPTED_OUT, None, population())
        assert result == Evaluation(
            None, None, "opted_out: exclude", "no score is used and the order follows arrival time"
        )


class TestEvaluateCaching:
    def test_follows_population_changes(self) -> None:
        doc = policy()
        scores = ScoredPopulation("klout", [10, 20, 30])
        assert evaluate(doc, Status.UNSCORED, None, scores).effective_score == 20
        scores.add(90)
        scores.add(80)
        assert evaluate(doc, Status.UNSCORED, None, scores).effective_score == 30

    def test_populations_do_not_share_entries(self) -> None:
        doc = policy()
        first = ScoredPopulation("klout", [10])
        second = ScoredPopulation("klout", [70])
        assert evaluate(doc, Status.UNSCORED, None, first).effective_score == 10
        assert evaluate(doc, Status.UNSCORED, None, second).effective_score == 70

    def test_document_is_untouched(self) -> None:
        doc = policy()
        evaluate(doc, Status.UNSCORED, None, population())
        assert doc == policy()
        assert doc.model_dump() == policy().model_dump()

    def test_compiled_form_is_released_with_the_document(self) -> None:
        doc = policy()
        evaluate(doc, Status.UNSCORED, None, population())
        key = id(doc)
        assert key in strategies._compiled
        del doc
        gc.collect()
        assert key not in strategies._compiled

    def test_provider_must_match(self) -> None:
        with pytest.raises(ValueError, match="provider"):
            evaluate(policy(), Status.UNSCORED, None, ScoredPopulation("kred", [1]))


class TestFindDemotions:
    def test_neutral_and_exclude_never_demote(self) -> None:
        doc = policy(missing={"opted_out": {"strategy": "exclude"}})
        assert find_demotions(doc, population()) == []

    def test_percentile_below_50_demotes_even_without_population(self) -> None:
        doc = policy(missing={"unscored": {"strategy": "percentile", "p": 10}})
        (demotion,) = find_demotions(doc, ScoredPopulation("klout"))
        assert (demotion.status, demotion.strategy, demotion.figure, demotion.threshold) == (
            Status.UNSCORED,
            Strategy.PERCENTILE,
            10,
            50,
        )
        assert demotion.effective_score is None

    def test_fixed_below_median_demotes(self) -> None:
        doc = policy(missing={"not_found": {"strategy": "fixed", "value": 0}})
        (demotion,) = find_demotions(doc, population())
        assert (demotion.status, demotion.effective_score, demotion.scored_median) == (
            Status.NOT_FOUND,
            0,
            50,
        )
        assert "below the scored median (50)" in demotion.message

    def test_fixed_at_the_median_does_not_demote(self) -> None:
        doc = policy(missing={"not_found": {"strategy": "fixed", "value": 50}})
        assert find_demotions(doc, population()) == []

    def test_fixed_with_empty_population_cannot_be_judged(self) -> None:
        doc = policy(missing={"not_found": {"strategy": "fixed", "value": 0}})
        assert find_demotions(doc, ScoredPopulation("klout")) == []

    def test_reports_every_demoting_rule_in_status_order(self) -> None:
        doc = policy(
            missing={
                "unavailable": {"strategy": "fixed", "value": 1},
                "opted_out": {"strategy": "percentile", "p": 49.9},
            }
        )
        assert [d.status for d in find_demotions(doc, population())] == [
            Status.OPTED_OUT,
            Status.UNAVAILABLE,
        ]
