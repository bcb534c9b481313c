"""Explanations: one plain sentence per status, naming the treatment and the policy version."""

from __future__ import annotations

import pytest

from policies import ScoredPopulation, Status, evaluate, explain
from tests.policies.factories import policy

MEDIAN_54 = ScoredPopulation("klout", [20, 54, 80])


class TestExplain:
    def test_opted_out_reads_like_the_design(self) -> None:
        evaluation = evaluate(policy(), Status.OPTED_OUT, None, MEDIAN_54)
        assert explain(Status.OPTED_OUT, evaluation, "support-queue", 3) == (
            "This person has chosen not to be scored; treated as the median (54) "
            "under policy support-queue v3."
        )

    def test_scored_names_the_score(self) -> None:
        evaluation = evaluate(policy(), Status.SCORED, 71.2, MEDIAN_54)
        assert explain(Status.SCORED, evaluation, "support-queue", 3) == (
            "This person was scored by the provider; the score of 71.2 is used as given "
            "under policy support-queue v3."
        )

    @pytest.mark.parametrize("status", list(Status))
    def test_one_sentence_that_never_judges_the_person(self, status: Status) -> None:
        score = 71.2 if status is Status.SCORED else None
        sentence = explain(status, evaluate(policy(), status, score, MEDIAN_54), "q", 1)
        assert sentence.endswith(" under policy q v1.")
        assert ". " not in sentence
        for word in ("low", "bad", "poor", "worse", "penal"):
            assert word not in sentence.lower()

    def test_not_found_is_a_data_quality_matter(self) -> None:
        evaluation = evaluate(policy(), Status.NOT_FOUND, None, MEDIAN_54)
        assert "data-quality" in explain(Status.NOT_FOUND, evaluation, "q", 2)

    def test_exclude_says_arrival_order(self) -> None:
        doc = policy(missing={"unscored": {"strategy": "exclude"}})
        sentence = explain(Status.UNSCORED, evaluate(doc, Status.UNSCORED, None, MEDIAN_54), "q", 2)
        assert sentence == (
            "The provider holds no score for this person, which says nothing about them; "
            "no score is used and the order follows arrival time under policy q v2."
        )

    def test_empty_population_says_why_there_is_no_score(self) -> None:
        evaluation = evaluate(policy(), Status.UNAVAILABLE, None, ScoredPopulation("klout"))
        sentence = explain(Status.UNAVAILABLE, evaluation, "q", 4)
        assert "no scored population yet" in sentence
        assert "0" not in sentence.replace("v4", "")
