"""The fairness guard: does a policy treat the groups without a score as well as the scored group?

:func:`guard` evaluates every contact of a sample (or the stored population's contacts) under the
policy and reports, per status group:

- ``count`` and how many have an effective score;
- ``mean_percentile``: the mean percentile rank of the group's effective scores within the
  evaluated pool (all effective scores of the sample; ties count half, so a pool of equal scores
  ranks everyone at 50);
- ``median_effective_score``;
- per segment, the **selection rate** ("selected" = in that segment or a higher one), the scored
  group's rate and their ratio.

Checks (non-scored groups only; the scored group is the reference):

- **median**: the group's median effective score must not be below the scored median. The scored
  median is the provider population's median (the same number ``neutral`` uses, rounded the same
  way), or the sample's scored median when the population is empty.
- **four_fifths**: the ratio to the scored group's selection rate must be at least 0.8 (29 CFR
  1607.4(D), borrowed as a heuristic). It is checked for the segments whose ``min`` is at or below
  the scored median. Reason: a group without scores gets one value (the treatment is per status),
  so it sits in one segment; a segment above the median is one that only some scored people reach
  and no neutral treatment can, and counting it would refuse every policy, the neutral default
  included. Those segments are still reported (``checked: false``); placement below the median is
  what the median check catches.
- **demotion_rule**: a rule that :func:`policies.strategies.find_demotions` reports (e.g.
  ``fixed`` below the median), even when the sample holds no contact of that status.

Groups without effective scores (``exclude``, or nothing to take a median from) are reported and
never failed. ``passed`` is true when there is no violation; when there are violations and the
policy carries ``allow_demotion`` (with its reason), ``allowed_by_demotion`` is true. A caller may
activate a version when ``acceptable`` (= passed or allowed_by_demotion).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from enum import StrEnum
from statistics import fmean
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from policies.model import PolicyDocument
from policies.numbers import format_score, round_score
from policies.population import ScoredPopulation
from policies.segments import segment_table
from policies.status import Status
from policies.strategies import Demotion, evaluate, find_demotions

__all__ = [
    "FOUR_FIFTHS",
    "GroupFigures",
    "GuardCheck",
    "GuardContact",
    "GuardReport",
    "SegmentFigures",
    "Violation",
    "guard",
    "linear_median",
]

#: the four-fifths threshold on selection-rate ratios
FOUR_FIFTHS = 0.8

_RATIO_DECIMALS = 4


class GuardCheck(StrEnum):
    """The checks the guard runs."""

    FOUR_FIFTHS = "four_fifths"
    MEDIAN = "median"
    DEMOTION_RULE = "demotion_rule"


class _Figures(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GuardContact(_Figures):
    """One contact of the guard's sample: a status, and a score exactly when ``scored``."""

    status: Status
    score: float | None = Field(default=None, allow_inf_nan=False)

    @model_validator(mode="after")
    def _score_matches_status(self) -> Self:
        if self.status is Status.SCORED and self.score is None:
            raise ValueError("a scored contact needs its score")
        if self.status is not Status.SCORED and self.score is not None:
            raise ValueError(f"a {self.status} contact carries no score")
        return self


class SegmentFigures(_Figures):
    """Selection at one segment: the share of a group in this segment or a higher one."""

    segment: str
    min: float
    selection_rate: float | None
    scored_rate: float | None
    ratio: float | None
    checked: bool
    passed: bool | None


class GroupFigures(_Figures):
    """One status group's figures; ``note`` says why a group was not checked, if it was not."""

    status: Status
    count: int
    with_effective_score: int
    mean_percentile: float | None
    median_effective_score: float | None
    segments: list[SegmentFigures]
    note: str | None = None


class Violation(_Figures):
    """One failed check: which group, which check, the figure and the threshold it missed."""

    group: Status
    check: GuardCheck
    figure: float
    threshold: float
    segment: str | None = None
    message: str


class GuardReport(_Figures):
    """The guard's verdict and every figure behind it (``model_dump()`` gives JSON-ready data)."""

    policy: str
    passed: bool
    allowed_by_demotion: bool
    acceptable: bool
    demotion_reason: str | None
    scored_median: float | None
    pool_size: int
    groups: list[GroupFigures]
    violations: list[Violation]
    demotions: list[Demotion]


def linear_median(sorted_values: Sequence[float]) -> float | None:
    """The median of ascending values, interpolated like :meth:`ScoredPopulation.median`."""
    n = len(sorted_values)
    if n == 0:
        return None
    middle = (n - 1) / 2
    below = int(middle)
    above = min(below + 1, n - 1)
    return sorted_values[below] + (sorted_values[above] - sorted_values[below]) * (middle - below)


def _rate(selected: int, total: int) -> float | None:
    return round(selected / total, _RATIO_DECIMALS) if total else None


class _Sample:
    """The evaluated sample: effective scores per group, the pool, the reference median."""

    def __init__(
        self, doc: PolicyDocument, contacts: Sequence[GuardContact], population: ScoredPopulation
    ) -> None:
        self.table = segment_table(tuple(doc.segments))
        self.counts = dict.fromkeys(Status, 0)
        self.scores: dict[Status, list[float]] = {status: [] for status in Status}
        for contact in contacts:
            evaluation = evaluate(doc, contact.status, contact.score, population)
            self.counts[contact.status] += 1
            if evaluation.effective_score is not None:
                self.scores[contact.status].append(evaluation.effective_score)
        for scores in self.scores.values():
            scores.sort()
        self.pool = sorted(score for scores in self.scores.values() for score in scores)
        reference = population.median()
        if reference is None:
            reference = linear_median(self.scores[Status.SCORED])
        self.scored_median = round_score(reference) if reference is not None else None
        self.scored_selected = self.selected_counts(self.scores[Status.SCORED])

    def percentile_in_pool(self, score: float) -> float:
        below = bisect_left(self.pool, score)
        equal = bisect_right(self.pool, score) - below
        return (below + equal / 2) / len(self.pool) * 100

    def selected_counts(self, scores: list[float]) -> list[int]:
        """Per segment level, how many of ``scores`` are in that segment or a higher one."""
        counts = [0] * len(self.table.names)
        for score in scores:
            counts[self.table.level(score)] += 1
        running = 0
        for level, count in enumerate(counts):
            running += count
            counts[level] = running
        return counts

    def segment_figures(self, status: Status, violations: list[Violation]) -> list[SegmentFigures]:
        """Selection figures per segment for one group; failed checks go to ``violations``."""
        scores = self.scores[status]
        scored_total = len(self.scores[Status.SCORED])
        selected = self.selected_counts(scores)
        figures: list[SegmentFigures] = []
        for level, (name, minimum) in enumerate(
            zip(self.table.names, self.table.mins, strict=True)
        ):
            scored_share = self.scored_selected[level] / scored_total if scored_total else 0.0
            raw_ratio = selected[level] / len(scores) / scored_share if scored_share else None
            checked = (
                status is not Status.SCORED
                and raw_ratio is not None
                and self.scored_median is not None
                and minimum <= self.scored_median
            )
            passed = raw_ratio >= FOUR_FIFTHS if checked and raw_ratio is not None else None
            ratio = round(raw_ratio, _RATIO_DECIMALS) if raw_ratio is not None else None
            figures.append(
                SegmentFigures(
                    segment=name,
                    min=minimum,
                    selection_rate=_rate(selected[level], len(scores)),
                    scored_rate=_rate(self.scored_selected[level], scored_total),
                    ratio=ratio,
                    checked=checked,
                    passed=passed,
                )
            )
            if passed is False and ratio is not None:
                violations.append(
                    Violation(
                        group=status,
                        check=GuardCheck.FOUR_FIFTHS,
                        figure=ratio,
                        threshold=FOUR_FIFTHS,
                        segment=name,
                        message=(
                            f"{status}: the selection rate at segment {name} or higher is "
                            f"{ratio:.2f} times the scored group's, below four fifths"
                        ),
                    )
                )
        return figures

    def median_violation(self, status: Status, median: float) -> Violation | None:
        """The median check for one non-scored group."""
        if status is Status.SCORED or self.scored_median is None or median >= self.scored_median:
            return None
        return Violation(
            group=status,
            check=GuardCheck.MEDIAN,
            figure=median,
            threshold=self.scored_median,
            message=(
                f"{status}: median effective score {format_score(median)} is below "
                f"the scored median {format_score(self.scored_median)}"
            ),
        )


def guard(
    doc: PolicyDocument, contacts: Sequence[GuardContact], population: ScoredPopulation
) -> GuardReport:
    """Run the fairness guard for ``doc`` over ``contacts`` (see the module docstring). Pure."""
    sample = _Sample(doc, contacts, population)
    groups: list[GroupFigures] = []
    violations: list[Violation] = []
    median_failed: set[Status] = set()
    for status in Status:
        scores = sample.scores[status]
        count = sample.counts[status]
        if not scores:
            note = "no effective score under this policy; reported, not checked" if count else None
            groups.append(
                GroupFigures(
                    status=status,
                    count=count,
                    with_effective_score=0,
                    mean_percentile=None,
                    median_effective_score=None,
                    segments=[],
                    note=note,
                )
            )
            continue
        segment_figures = sample.segment_figures(status, violations)
        raw_median = linear_median(scores)
        median = round_score(raw_median) if raw_median is not None else None
        if median is not None and (violation := sample.median_violation(status, median)):
            median_failed.add(status)
            violations.append(violation)
        groups.append(
            GroupFigures(
                status=status,
                count=count,
                with_effective_score=len(scores),
                mean_percentile=round(fmean(sample.percentile_in_pool(s) for s in scores), 2),
                median_effective_score=median,
                segments=segment_figures,
            )
        )
    demotions = find_demotions(doc, population)
    violations.extend(
        Violation(
            group=demotion.status,
            check=GuardCheck.DEMOTION_RULE,
            figure=demotion.figure,
            threshold=demotion.threshold,
            message=demotion.message,
        )
        for demotion in demotions
        if demotion.status not in median_failed
    )
    passed = not violations
    allowed = bool(violations) and doc.allow_demotion
    return GuardReport(
        policy=doc.name,
        passed=passed,
        allowed_by_demotion=allowed,
        acceptable=passed or allowed,
        demotion_reason=doc.demotion_reason,
        scored_median=sample.scored_median,
        pool_size=len(sample.pool),
        groups=groups,
        violations=violations,
        demotions=demotions,
    )
