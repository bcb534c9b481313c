"""Policy documents: the named, versioned rule sets that turn statuses into effective scores.

A :class:`PolicyDocument` is what an administrator writes (JSON or YAML) and what the service stores
for each version. Validation is strict (`extra="forbid"`) and every error names the field it is
about, so the REST layer can hand pydantic's error locations straight back to the caller.

Decisions encoded here (see DESIGN section 3):

- ``use_case`` is one of the closed :class:`UseCase` vocabulary; ``forbidden_use_cases`` is
  free-form (slugs such as ``hiring``) because a policy may forbid purposes the service does not
  serve at all.
  A policy cannot forbid its own use case.
- Each non-scored status has one missing-score rule; a rule left out is ``neutral`` (the median of
  the scored population), the one treatment that neither promotes nor demotes anybody.
- Segments are ordered by strictly descending ``min`` with unique names. The last segment is the
  floor: its ``min`` must be 0 or lower, and it also receives any effective score below its ``min``,
  so every effective score lands in a named segment and nobody falls into an unnamed remainder.
- ``ranking.p`` and ``ranking.k`` belong to ``fair_topk`` only; ``protected`` lists non-scored
  statuses (FA*IR protects the groups without a provider score, never the scored one).
- ``allow_demotion`` needs a non-blank ``demotion_reason``, and a reason without ``allow_demotion``
  is refused as well, so a document never carries a reason that does nothing.
"""

from __future__ import annotations

from enum import StrEnum
from itertools import pairwise
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from policies.status import Status

__all__ = [
    "DEFAULT_ALPHA",
    "ExcludeRule",
    "FixedRule",
    "MissingRule",
    "MissingRules",
    "NeutralRule",
    "PercentileRule",
    "PolicyDocument",
    "RankingMethod",
    "RankingSpec",
    "Segment",
    "Strategy",
    "UseCase",
    "default_policy",
]

#: FA*IR significance used when a policy names none (Zehlike et al. use 0.1 throughout)
DEFAULT_ALPHA = 0.1

_SLUG = r"^[a-z0-9]+(?:[-_][a-z0-9]+)*$"


class UseCase(StrEnum):
    """What a score is handed out for; a lookup names one of these."""

    PRIORITY_QUEUE = "priority_queue"
    SEGMENTATION = "segmentation"
    ENRICHMENT = "enrichment"


class Strategy(StrEnum):
    """How a non-scored status gets its effective score."""

    #: the median of the scored population of the policy's provider
    NEUTRAL = "neutral"
    #: a given percentile (0..100) of the scored population
    PERCENTILE = "percentile"
    #: a fixed number chosen by the policy
    FIXED = "fixed"
    #: no effective score at all; ordered by the tie-breaker (arrival) alone
    EXCLUDE = "exclude"


class RankingMethod(StrEnum):
    """How a ranking orders items."""

    #: effective score descending, then arrival ascending
    SCORE = "score"
    #: arrival ascending only; scores are ignored
    FIFO = "fifo"
    #: FA*IR fair top-k over the items that have an effective score
    FAIR_TOPK = "fair_topk"


class _Document(BaseModel):
    """Base of every document part: frozen, strict about unknown fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NeutralRule(_Document):
    """Treat the group as the median of the scored population."""

    strategy: Literal[Strategy.NEUTRAL] = Strategy.NEUTRAL


class PercentileRule(_Document):
    """Treat the group as the ``p``-th percentile of the scored population (below 50 demotes)."""

    strategy: Literal[Strategy.PERCENTILE] = Strategy.PERCENTILE
    p: float = Field(ge=0, le=100, allow_inf_nan=False)


class FixedRule(_Document):
    """Give the group a fixed effective score (below the scored median demotes)."""

    strategy: Literal[Strategy.FIXED] = Strategy.FIXED
    value: float = Field(allow_inf_nan=False)


class ExcludeRule(_Document):
    """Give the group no effective score and no segment; rankings place it by arrival alone."""

    strategy: Literal[Strategy.EXCLUDE] = Strategy.EXCLUDE


#: one missing-score rule, told apart by its ``strategy`` field
MissingRule = Annotated[
    NeutralRule | PercentileRule | FixedRule | ExcludeRule, Field(discriminator="strategy")
]


class MissingRules(_Document):
    """One rule per non-scored status; a status left out is treated as ``neutral``."""

    opted_out: MissingRule = Field(default_factory=NeutralRule)
    unscored: MissingRule = Field(default_factory=NeutralRule)
    not_found: MissingRule = Field(default_factory=NeutralRule)
    unavailable: MissingRule = Field(default_factory=NeutralRule)

    def rule_for(self, status: Status) -> MissingRule:
        """The rule for a non-scored ``status``; ``ValueError`` for ``scored``, which has none."""
        if status is Status.SCORED:
            raise ValueError("scored contacts keep their score; there is no missing-score rule")
        rule: MissingRule = getattr(self, status.value)
        return rule


class Segment(_Document):
    """A named band of effective scores: every score at or above ``min`` (and below the previous
    segment's ``min``) belongs to it."""

    name: str = Field(min_length=1, max_length=64, pattern=_SLUG)
    min: float = Field(allow_inf_nan=False)


class RankingSpec(_Document):
    """How rankings under this policy are ordered.

    ``alpha`` is FA*IR's significance in (0, 0.5]; ``p`` (the minimum protected proportion, in
    (0, 1)) defaults to the protected share of the pool; ``k`` (how many top positions FA*IR
    guarantees) defaults to the whole ranking. ``p`` and ``k`` are refused for other methods so a
    document never carries settings that do nothing; ``protected`` may stay listed (it also names
    the groups an administrator watches) and only ``fair_topk`` acts on it.
    """

    method: RankingMethod = RankingMethod.SCORE
    protected: list[Status] = Field(default_factory=list, validate_default=True)
    alpha: float = Field(default=DEFAULT_ALPHA, gt=0, le=0.5, allow_inf_nan=False)
    p: float | None = Field(default=None, gt=0, lt=1, allow_inf_nan=False, validate_default=True)
    k: int | None = Field(default=None, ge=1, validate_default=True)

    @field_validator("protected")
    @classmethod
    def _protected_are_non_scored(cls, value: list[Status], info: ValidationInfo) -> list[Status]:
        if Status.SCORED in value:
            raise ValueError("only non-scored statuses can be protected; 'scored' is not one")
        if len(set(value)) != len(value):
            raise ValueError("protected statuses must be unique")
        if info.data.get("method") is RankingMethod.FAIR_TOPK and not value:
            raise ValueError("fair_topk needs at least one protected status")
        return value

    @field_validator("p", "k")
    @classmethod
    def _fair_topk_only(cls, value: float | None, info: ValidationInfo) -> float | None:
        method = info.data.get("method")
        if value is not None and method is not None and method is not RankingMethod.FAIR_TOPK:
            raise ValueError(f"{info.field_name} is a fair_topk parameter; method is {method}")
        return value


class PolicyDocument(_Document):
    """One version of a fairness policy, as stored and as written by an administrator.

    The document is immutable (versions never change once written), which lets
    :func:`policies.evaluate` compile it once and reuse the result for as long as it lives.
    """

    name: str = Field(min_length=1, max_length=64, pattern=_SLUG)
    use_case: UseCase
    provider: str = Field(min_length=1, max_length=64, pattern=_SLUG)
    missing: MissingRules = Field(default_factory=MissingRules)
    segments: list[Segment] = Field(min_length=1)
    ranking: RankingSpec = Field(default_factory=RankingSpec)
    forbidden_use_cases: list[str] = Field(default_factory=list, validate_default=True)
    allow_demotion: bool = False
    demotion_reason: str | None = Field(default=None, max_length=1000, validate_default=True)

    @field_validator("segments")
    @classmethod
    def _segments_are_ordered(cls, value: list[Segment]) -> list[Segment]:
        names = [segment.name for segment in value]
        if len(set(names)) != len(names):
            raise ValueError(f"segment names must be unique, got {names}")
        for upper, lower in pairwise(value):
            if lower.min >= upper.min:
                raise ValueError(
                    "segments must be ordered by strictly descending min: "
                    f"{lower.name!r} (min {lower.min:g}) follows {upper.name!r} "
                    f"(min {upper.min:g})"
                )
        if value and value[-1].min > 0:
            raise ValueError(
                f"the last segment {value[-1].name!r} is the floor and must have min 0 or lower, "
                f"got {value[-1].min:g}"
            )
        return value

    @field_validator("forbidden_use_cases")
    @classmethod
    def _forbidden_use_cases_are_consistent(
        cls, value: list[str], info: ValidationInfo
    ) -> list[str]:
        cleaned = [item.strip().lower() for item in value]
        for item in cleaned:
            if not item or not all(ch.isalnum() or ch in "_-" for ch in item):
                raise ValueError(f"use case names are slugs (a-z, 0-9, '_', '-'), got {item!r}")
        if len(set(cleaned)) != len(cleaned):
            raise ValueError("forbidden use cases must be unique")
        use_case = info.data.get("use_case")
        if use_case is not None and use_case.value in cleaned:
            raise ValueError(f"the policy's own use case {use_case.value!r} cannot be forbidden")
        return cleaned

    @field_validator("demotion_reason")
    @classmethod
    def _reason_matches_allow_demotion(cls, value: str | None, info: ValidationInfo) -> str | None:
        allow = info.data.get("allow_demotion")
        reason = value.strip() if value is not None else None
        if allow and not reason:
            raise ValueError("allow_demotion is true, so a demotion_reason is required")
        if allow is False and reason is not None:
            raise ValueError("a demotion_reason needs allow_demotion: true")
        return reason

    def is_use_case_allowed(self, use_case: str) -> bool:
        """Whether scores may be handed out for ``use_case`` (any string a caller names)."""
        return use_case.strip().lower() not in self.forbidden_use_cases

    def segment_mins(self) -> tuple[float, ...]:
        """The segments' ``min`` values, in document (descending) order."""
        return tuple(segment.min for segment in self.segments)

    def with_updates(self, **changes: Any) -> Self:
        """A validated copy with top-level fields replaced (``model_copy`` skips validation)."""
        data = self.model_dump(mode="json")
        data.update(changes)
        return self.model_validate(data)


def default_policy(
    provider: str, *, name: str | None = None, use_case: UseCase = UseCase.PRIORITY_QUEUE
) -> PolicyDocument:
    """The policy a provider gets before anyone writes one.

    Every non-scored status is ``neutral``; segments are high >= 60, mid >= 30, standard >= 0;
    ranking is by score. The name defaults to ``<provider>-default``.
    """
    return PolicyDocument(
        name=name or f"{provider}-default",
        use_case=use_case,
        provider=provider,
        missing=MissingRules(),
        segments=[
            Segment(name="high", min=60),
            Segment(name="mid", min=30),
            Segment(name="standard", min=0),
        ],
        ranking=RankingSpec(method=RankingMethod.SCORE),
    )
