"""Evaluation: a status (and, for ``scored``, a score) becomes an effective score and a segment.

Contract of :func:`evaluate`:

- ``scored`` keeps its provider score (rounded to two decimals) and gets the segment it reaches.
- every other status follows the policy's rule for it:
  - ``neutral``: the median of the provider's scored population;
  - ``percentile: p``: that percentile of the scored population;
  - ``fixed: value``: the value;
  - ``exclude``: no effective score and no segment; rankings place the contact by arrival alone.
- With an **empty** scored population, ``neutral`` and ``percentile`` have nothing to measure by:
  they give no effective score and no segment (never 0, which would read as "lowest"), and the
  reason says so. ``fixed`` and ``exclude`` do not need the population.
- A non-scored contact carries no score (``ValueError`` otherwise): an opted-out person's score is
  erased, and an unscored one has none, so a number arriving here is a caller's bug.

Speed: a document is compiled once (segment table, and per population ``(uid, version)`` the
outcome of each non-scored status, which depends on nothing else); the compiled form lives beside
the document, keyed by its identity, and is dropped when the document is garbage-collected. The
document itself stays untouched, so equality and JSON are unaffected. A scored evaluation is a
rounding and a bisect. One million evaluations take one to two seconds on one core (see
``bench/bench_policies.py``).

Demotions (:func:`find_demotions`): a rule that puts a group below the scored median. Statically,
``percentile`` below 50 always demotes; ``fixed`` demotes when its value is below the current
median (with an empty population that cannot be known yet, so it is not reported then). Neutral
and exclude never demote.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import asdict, dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

from policies.model import (
    ExcludeRule,
    FixedRule,
    MissingRule,
    NeutralRule,
    PercentileRule,
    PolicyDocument,
    Strategy,
)
from policies.numbers import format_score, round_score
from policies.population import ScoredPopulation
from policies.segments import SegmentTable, segment_table
from policies.status import NON_SCORED, Status

__all__ = ["Demotion", "Evaluation", "evaluate", "find_demotions"]

_CACHE_LIMIT = 256
_NO_POPULATION = (
    "there is no scored population yet to measure by, so no score is used "
    "and the order falls back to arrival time"
)


@dataclass(frozen=True, slots=True)
class Evaluation:
    """What a policy makes of one contact.

    ``effective_score`` is the only number a downstream system may sort or segment on; ``None``
    means "no score", never zero. ``rule`` names the rule applied (``"opted_out: neutral"``);
    ``reason`` is the clause :func:`policies.explain` puts into a sentence.
    """

    effective_score: float | None
    segment: str | None
    rule: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        """The evaluation as a JSON-friendly dict."""
        return asdict(self)


class Demotion(BaseModel):
    """A rule that places a non-scored group below the scored median.

    ``figure`` and ``threshold`` are the numbers compared: the percentile against 50 for a
    ``percentile`` rule, the value against the scored median for a ``fixed`` rule.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    status: Status
    strategy: Strategy
    effective_score: float | None
    scored_median: float | None
    figure: float
    threshold: float
    message: str


class _Compiled:
    """What evaluating under one document needs, computed once per document."""

    __slots__ = ("document", "evaluations", "segments")

    def __init__(self, doc: PolicyDocument) -> None:
        self.document = weakref.ref(doc)
        self.segments: SegmentTable = segment_table(tuple(doc.segments))
        self.evaluations: dict[tuple[int, int, Status], Evaluation] = {}


_compiled: dict[int, _Compiled] = {}
_compiled_lock = threading.Lock()


def _compiled_for(doc: PolicyDocument) -> _Compiled:
    entry = _compiled.get(id(doc))
    if entry is not None and entry.document() is doc:
        return entry
    with _compiled_lock:
        entry = _compiled.get(id(doc))
        if entry is None or entry.document() is not doc:
            entry = _Compiled(doc)
            _compiled[id(doc)] = entry
            weakref.finalize(doc, _compiled.pop, id(doc), None)
        return entry


def _ordinal(p: float) -> str:
    text = format_score(p)
    if "." in text:
        return f"{text}th"
    number = int(text)
    if 10 <= number % 100 <= 20:
        suffix = "th"
    else:
        suffix = {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{text}{suffix}"


def _rule_name(status: Status, rule: MissingRule) -> str:
    match rule:
        case PercentileRule(p=p):
            return f"{status}: percentile {format_score(p)}"
        case FixedRule(value=value):
            return f"{status}: fixed {format_score(value)}"
        case _:
            return f"{status}: {rule.strategy}"


def _evaluate_missing(
    doc: PolicyDocument, segments: SegmentTable, status: Status, population: ScoredPopulation
) -> Evaluation:
    rule = doc.missing.rule_for(status)
    name = _rule_name(status, rule)
    value: float | None
    match rule:
        case NeutralRule():
            median = population.median()
            if median is None:
                return Evaluation(None, None, name, f"treated as neutral, but {_NO_POPULATION}")
            value = round_score(median)
            reason = f"treated as the median ({format_score(value)})"
        case PercentileRule(p=p):
            raw = population.percentile(p)
            if raw is None:
                return Evaluation(
                    None,
                    None,
                    name,
                    f"treated as the {_ordinal(p)} percentile, but {_NO_POPULATION}",
                )
            value = round_score(raw)
            reason = (
                f"treated as the {_ordinal(p)} percentile of scored people ({format_score(value)})"
            )
        case FixedRule(value=fixed):
            value = round_score(fixed)
            reason = f"given the fixed score {format_score(value)} set by the policy"
        case ExcludeRule():
            return Evaluation(
                None, None, name, "no score is used and the order follows arrival time"
            )
    return Evaluation(value, segments.name_for(value), name, reason)


def evaluate(
    doc: PolicyDocument, status: Status, score: float | None, population: ScoredPopulation
) -> Evaluation:
    """Evaluate one contact under ``doc`` against the provider's scored ``population``.

    ``score`` is required for ``scored`` and must be ``None`` otherwise (``ValueError``); the
    population must belong to the policy's provider (``ValueError``).
    """
    if population.provider != doc.provider:
        raise ValueError(
            f"policy {doc.name!r} is for provider {doc.provider!r}, "
            f"the population is {population.provider!r}'s"
        )
    compiled = _compiled_for(doc)
    if status is Status.SCORED:
        if score is None:
            raise ValueError("a scored contact needs its score")
        value = round_score(score)
        return Evaluation(
            value,
            compiled.segments.name_for(value),
            "scored",
            "the provider's score is used as given",
        )
    if score is not None:
        raise ValueError(f"a {status} contact carries no score")
    cache = compiled.evaluations
    key = (population.uid, population.version, status)
    cached = cache.get(key)
    if cached is None:
        cached = _evaluate_missing(doc, compiled.segments, status, population)
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        cache[key] = cached
    return cached


def find_demotions(doc: PolicyDocument, population: ScoredPopulation) -> list[Demotion]:
    """Every missing-score rule of ``doc`` that puts its group below the scored median.

    Reported whether or not the document allows demotion: the caller (the fairness guard) decides
    what an allowed demotion means. Order follows :data:`policies.status.NON_SCORED`.
    """
    median_raw = population.median()
    median = round_score(median_raw) if median_raw is not None else None
    found: list[Demotion] = []
    for status in NON_SCORED:
        rule = doc.missing.rule_for(status)
        match rule:
            case PercentileRule(p=p) if p < 50:
                raw = population.percentile(p)
                value = round_score(raw) if raw is not None else None
                found.append(
                    Demotion(
                        status=status,
                        strategy=rule.strategy,
                        effective_score=value,
                        scored_median=median,
                        figure=p,
                        threshold=50,
                        message=(
                            f"{status} is treated as the {_ordinal(p)} percentile of scored "
                            "people, below their median (the 50th)"
                        ),
                    )
                )
            case FixedRule(value=fixed) if median is not None and round_score(fixed) < median:
                value = round_score(fixed)
                found.append(
                    Demotion(
                        status=status,
                        strategy=rule.strategy,
                        effective_score=value,
                        scored_median=median,
                        figure=value,
                        threshold=median,
                        message=(
                            f"{status} gets the fixed score {format_score(value)}, below the "
                            f"scored median ({format_score(median)})"
                        ),
                    )
                )
            case _:
                pass
    return found
