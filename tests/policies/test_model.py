"""Policy documents: validation names the field, defaults are neutral, JSON round-trips."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from policies import (
    ExcludeRule,
    FixedRule,
    NeutralRule,
    PercentileRule,
    PolicyDocument,
    RankingMethod,
    Status,
    UseCase,
    default_policy,
)
from tests.policies.factories import document_data


def error_locations(data: dict[str, Any]) -> list[tuple[str | int, ...]]:
    with pytest.raises(ValidationError) as caught:
        PolicyDocument.model_validate(data)
    return [tuple(error["loc"]) for error in caught.value.errors()]


class TestDefaultPolicy:
    def test_every_missing_status_is_neutral(self) -> None:
        doc = default_policy("klout")
        rules = [doc.missing.rule_for(status) for status in Status if status is not Status.SCORED]
        assert rules == [NeutralRule()] * 4

    def test_segments_and_ranking(self) -> None:
        doc = default_policy("klout")
        assert [(s.name, s.min) for s in doc.segments] == [
            ("high", 60),
            ("mid", 30),
            ("standard", 0),
        ]
        assert doc.ranking.method is RankingMethod.SCORE
        assert doc.name == "klout-default"
        assert doc.use_case is UseCase.PRIORITY_QUEUE

    def test_json_round_trip(self) -> None:
        doc = default_policy("klout", name="support-queue", use_case=UseCase.SEGMENTATION)
        assert PolicyDocument.model_validate_json(doc.model_dump_json()) == doc


class TestDesignExample:
    def test_the_documented_policy_validates(self) -> None:
        doc = PolicyDocument.model_validate(
            {
                "name": "support-queue",
                "use_case": "priority_queue",
                "provider": "klout",
                "missing": {
                    "opted_out": {"strategy": "neutral"},
                    "unscored": {"strategy": "neutral"},
                    "not_found": {"strategy": "neutral"},
                    "unavailable": {"strategy": "neutral"},
                },
                "segments": [
                    {"name": "high", "min": 60},
                    {"name": "mid", "min": 30},
                    {"name": "standard", "min": 0},
                ],
                "ranking": {
                    "method": "fair_topk",
                    "protected": ["opted_out", "unscored", "not_found", "unavailable"],
                    "alpha": 0.1,
                },
                "forbidden_use_cases": ["hiring"],
            }
        )
        assert doc.ranking.method is RankingMethod.FAIR_TOPK
        assert not doc.is_use_case_allowed("hiring")


class TestMissingRules:
    def test_strategies_are_told_apart_by_their_field(self) -> None:
        doc = PolicyDocument.model_validate(
            document_data(
                missing={
                    "opted_out": {"strategy": "exclude"},
                    "unscored": {"strategy": "percentile", "p": 75},
                    "not_found": {"strategy": "fixed", "value": 55},
                }
            )
        )
        assert doc.missing.opted_out == ExcludeRule()
        assert doc.missing.unscored == PercentileRule(p=75)
        assert doc.missing.not_found == FixedRule(value=55)
        assert doc.missing.unavailable == NeutralRule()

    def test_scored_has_no_rule(self) -> None:
        with pytest.raises(ValueError, match="scored contacts keep their score"):
            default_policy("klout").missing.rule_for(Status.SCORED)

    def test_unknown_strategy_names_the_status(self) -> None:
        data = document_data(missing={"unscored": {"strategy": "zero"}})
        assert error_locations(data) == [("missing", "unscored")]

    def test_percentile_above_100_names_p(self) -> None:
        data = document_data(missing={"unscored": {"strategy": "percentile", "p": 101}})
        assert error_locations(data) == [("missing", "unscored", "percentile", "p")]

    def test_fixed_needs_a_finite_value(self) -> None:
        data = document_data(missing={"not_found": {"strategy": "fixed", "value": "nan"}})
        assert error_locations(data) == [("missing", "not_found", "fixed", "value")]

    def test_extra_key_in_a_rule_is_refused(self) -> None:
        data = document_data(missing={"opted_out": {"strategy": "neutral", "value": 3}})
        assert error_locations(data) == [("missing", "opted_out", "neutral", "value")]


class TestSegmentsValidation:
    def test_ascending_order_is_refused(self) -> None:
        data = document_data(segments=[{"name": "low", "min": 0}, {"name": "high", "min": 60}])
        assert error_locations(data) == [("segments",)]

    def test_duplicate_min_is_refused(self) -> None:
        data = document_data(segments=[{"name": "a", "min": 30}, {"name": "b", "min": 30}])
        assert error_locations(data) == [("segments",)]

    def test_duplicate_name_is_refused(self) -> None:
        data = document_data(segments=[{"name": "a", "min": 30}, {"name": "a", "min": 0}])
        assert error_locations(data) == [("segments",)]

    def test_floor_must_cover_the_bottom(self) -> None:
        data = document_data(segments=[{"name": "high", "min": 60}, {"name": "mid", "min": 30}])
        with pytest.raises(ValidationError, match="floor"):
            PolicyDocument.model_validate(data)
        assert error_locations(data) == [("segments",)]

    def test_no_segment_is_refused(self) -> None:
        assert error_locations(document_data(segments=[])) == [("segments",)]

    def test_segment_name_must_be_a_slug(self) -> None:
        data = document_data(segments=[{"name": "Top Tier", "min": 0}])
        assert error_locations(data) == [("segments", 0, "name")]


class TestRankingValidation:
    def test_fair_topk_needs_protected(self) -> None:
        data = document_data(ranking={"method": "fair_topk"})
        assert error_locations(data) == [("ranking", "protected")]

    def test_alpha_above_half_is_refused(self) -> None:
        data = document_data(
            ranking={"method": "fair_topk", "protected": ["unscored"], "alpha": 0.6}
        )
        assert error_locations(data) == [("ranking", "alpha")]

    def test_alpha_zero_is_refused(self) -> None:
        data = document_data(ranking={"method": "fair_topk", "protected": ["unscored"], "alpha": 0})
        assert error_locations(data) == [("ranking", "alpha")]

    def test_p_outside_open_unit_interval_is_refused(self) -> None:
        data = document_data(ranking={"method": "fair_topk", "protected": ["unscored"], "p": 1})
        assert error_locations(data) == [("ranking", "p")]

    def test_k_below_one_is_refused(self) -> None:
        data = document_data(ranking={"method": "fair_topk", "protected": ["unscored"], "k": 0})
        assert error_locations(data) == [("ranking", "k")]

    def test_p_with_score_method_is_refused(self) -> None:
        data = document_data(ranking={"method": "score", "p": 0.3})
        assert error_locations(data) == [("ranking", "p")]

    def test_k_with_fifo_method_is_refused(self) -> None:
        data = document_data(ranking={"method": "fifo", "k": 10})
        assert error_locations(data) == [("ranking", "k")]

    def test_scored_cannot_be_protected(self) -> None:
        data = document_data(ranking={"method": "fair_topk", "protected": ["scored"]})
        assert error_locations(data) == [("ranking", "protected")]

    def test_duplicate_protected_status_is_refused(self) -> None:
        data = document_data(ranking={"method": "fair_topk", "protected": ["unscored", "unscored"]})
        assert error_locations(data) == [("ranking", "protected")]

    def test_valid_fair_topk(self) -> None:
        data = document_data(
            ranking={"method": "fair_topk", "protected": ["unscored"], "p": 0.2, "k": 50}
        )
        ranking = PolicyDocument.model_validate(data).ranking
        assert (ranking.p, ranking.k, ranking.alpha) == (0.2, 50, 0.1)


class TestDocumentValidation:
    def test_unknown_top_level_field_is_refused(self) -> None:
        assert error_locations(document_data(weights=[1, 2])) == [("weights",)]

    def test_name_must_be_a_slug(self) -> None:
        assert error_locations(document_data(name="Support Queue")) == [("name",)]

    def test_unknown_use_case_is_refused(self) -> None:
        assert error_locations(document_data(use_case="hiring")) == [("use_case",)]

    def test_provider_is_required(self) -> None:
        data = document_data()
        del data["provider"]
        assert error_locations(data) == [("provider",)]

    def test_own_use_case_cannot_be_forbidden(self) -> None:
        data = document_data(forbidden_use_cases=["hiring", "priority_queue"])
        assert error_locations(data) == [("forbidden_use_cases",)]

    def test_forbidden_use_cases_must_be_unique(self) -> None:
        data = document_data(forbidden_use_cases=["hiring", "Hiring"])
        assert error_locations(data) == [("forbidden_use_cases",)]

    def test_forbidden_use_case_must_be_a_slug(self) -> None:
        data = document_data(forbidden_use_cases=["credit scoring!"])
        assert error_locations(data) == [("forbidden_use_cases",)]

    def test_allow_demotion_needs_a_reason(self) -> None:
        assert error_locations(document_data(allow_demotion=True)) == [("demotion_reason",)]

    def test_blank_reason_is_no_reason(self) -> None:
        data = document_data(allow_demotion=True, demotion_reason="   ")
        assert error_locations(data) == [("demotion_reason",)]

    def test_reason_without_allow_demotion_is_refused(self) -> None:
        data = document_data(demotion_reason="we want to")
        assert error_locations(data) == [("demotion_reason",)]

    def test_demotion_with_reason_is_accepted(self) -> None:
        data = document_data(allow_demotion=True, demotion_reason=" legal review 2026-03 ")
        assert PolicyDocument.model_validate(data).demotion_reason == "legal review 2026-03"

    def test_documents_are_immutable(self) -> None:
        doc = default_policy("klout")
        with pytest.raises(ValidationError):
            doc.name = "other"  # type: ignore[misc]


class TestIsUseCaseAllowed:
    def test_forbidden_use_case_is_refused_whatever_its_case(self) -> None:
        doc = PolicyDocument.model_validate(document_data(forbidden_use_cases=["hiring"]))
        assert not doc.is_use_case_allowed(" Hiring ")

    def test_other_use_cases_are_allowed(self) -> None:
        doc = PolicyDocument.model_validate(document_data(forbidden_use_cases=["hiring"]))
        assert doc.is_use_case_allowed("segmentation")
        assert doc.is_use_case_allowed("lending")
