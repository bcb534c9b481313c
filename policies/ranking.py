"""Rankings: score order, arrival order, and FA*IR fair top-k (Zehlike et al., CIKM 2017).

Ordering rules, precisely:

- **Arrival order** is ``arrived_at`` ascending, then ``id`` ascending. It is the tie-breaker of
  every method.
- **fifo** ranks every item by arrival order; scores are not used.
- **score** ranks the items *with* an effective score by effective score descending, then arrival
  order. Items **without** an effective score (``exclude``, or no scored population yet) are ordered
  by the tie-breaker alone: each keeps exactly the position arrival order (fifo) would give it, and
  the items with a score fill the remaining positions in score order. So a contact without a score
  is neither pushed to the end (the old "unknown sorts last" habit) nor lifted by a number; its
  place is the one a queue without scores would give it.
- **fair_topk** is like ``score`` but the items with an effective score are merged by FA*IR:
  protected items (status in ``ranking.protected``) and the others are each sorted by score (then
  arrival); at each of the first ``k`` positions, if fewer protected items have been placed than
  the adjusted minimum table demands, the best protected item is placed; otherwise the better of the
  two heads, ties going to the protected item. When one group runs out the other fills in. Beyond
  ``k`` the rest follow in score order. ``p`` defaults to the protected share of the items with an
  effective score; with no protected item (or no other item) there is nothing to balance and the
  order is the score order. ``k`` defaults to every item with an effective score. The minimum table
  counts items with an effective score, so the guarantee holds for every prefix of that sequence;
  items without a score sit at their arrival positions in between.

FA*IR tables:

- ``mtable(k, p, alpha)[i-1] = max(0, binom.ppf(alpha, i, p))``: the fewest protected items a
  prefix of length ``i`` may hold before a one-sided binomial test at level ``alpha`` says the
  ranking under-represents them.
- ``fail_probability(table, p)``: the probability that a ranking whose items are protected
  independently with probability ``p`` (a truly fair ranking) fails *some* prefix of ``table``.
  Computed exactly by dynamic programming over prefixes: the distribution of the protected count
  is carried from one position to the next and the mass below the table's minimum is dropped.
  Counts at or above the table's largest minimum can never fail again and are kept in one
  absorbing cell, so each step costs O(max(table)).
- ``adjusted_alpha(k, p, alpha)``: testing ``k`` prefixes inflates the family-wise failure
  probability, so ``alpha`` is replaced by ``alpha_c`` in (0, alpha] chosen by bisection such that
  the table's failure probability is as close to ``alpha`` as the (step-shaped) tables allow. The
  bisection narrows an interval whose lower table fails less often than ``alpha`` and whose upper
  table fails more often, stops when the two tables differ in one entry, and returns the end whose
  failure probability is nearer ``alpha`` (the lower one on a tie). This reproduces the published
  example: k=20, p=0.25, alpha=0.1 gives alpha_c = 0.078125.
- **Cap**: the exact adjustment costs O(k * max(table)) per bisection step. For ``k`` above
  :data:`ADJUSTMENT_CAP` (1000) ``alpha_c`` is computed for the first 1000 positions and used for
  the whole table. The guarantee per prefix is unchanged (every prefix still passes its binomial
  test at ``alpha_c``); only the family-wise failure probability over positions beyond the cap
  may exceed ``alpha``. This keeps a 100,000-item ranking within a second or two.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from functools import lru_cache

import numpy as np
import numpy.typing as npt
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from scipy.stats import binom

from policies.model import PolicyDocument, RankingMethod
from policies.numbers import format_score
from policies.status import Status

__all__ = [
    "ADJUSTMENT_CAP",
    "RankItem",
    "RankedItem",
    "adjusted_alpha",
    "adjusted_mtable",
    "fail_probability",
    "mtable",
    "rank",
]

#: the longest prefix the multiple-testing adjustment is computed over exactly
ADJUSTMENT_CAP = 1000

_MAX_BISECTIONS = 100
_INT_TABLE = npt.NDArray[np.int64]


class RankItem(BaseModel):
    """One item to rank: its id, status, effective score (``None``: none) and arrival time."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    status: Status
    effective_score: float | None = Field(default=None, allow_inf_nan=False)
    arrived_at: AwareDatetime


class RankedItem(BaseModel):
    """One ranked item: its 1-based ``rank`` and the reason it sits there."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    rank: int
    status: Status
    effective_score: float | None
    reason: str


def _check_table_parameters(k: int, p: float, alpha: float) -> None:
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if not 0 <= p <= 1:
        raise ValueError(f"p must be within [0, 1], got {p}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be within (0, 1), got {alpha}")


@lru_cache(maxsize=256)
def _mtable_array(k: int, p: float, alpha: float) -> _INT_TABLE:
    quantiles = np.asarray(binom.ppf(alpha, np.arange(1, k + 1), p), dtype=np.float64)
    table = np.maximum(np.nan_to_num(quantiles, nan=0.0), 0).astype(np.int64)
    table.setflags(write=False)
    return table


def mtable(k: int, p: float, alpha: float) -> tuple[int, ...]:
    """The unadjusted FA*IR minimum table: entry ``i-1`` is the minimum protected count in the
    top ``i`` (``k`` >= 1, ``p`` in [0, 1], ``alpha`` in (0, 1)). Vectorised and cached."""
    _check_table_parameters(k, p, alpha)
    return tuple(_mtable_array(k, p, alpha).tolist())


def _fail_probability(table: npt.NDArray[np.int64], p: float) -> float:
    top = int(table.max()) if table.size else 0
    if top <= 0:
        return 0.0
    # mass[c] = probability that c protected items have been seen (c == top: "top or more")
    mass = np.zeros(top + 1, dtype=np.float64)
    mass[0] = 1.0
    step = np.empty_like(mass)
    q = 1.0 - p
    for minimum in table.tolist():
        np.multiply(mass, q, out=step)
        step[1:] += mass[:-1] * p
        step[top] += mass[top] * p
        if minimum > 0:
            step[:minimum] = 0.0
        mass, step = step, mass
    return float(min(max(1.0 - mass.sum(), 0.0), 1.0))


def fail_probability(table: Sequence[int], p: float) -> float:
    """The probability that a fair ranking (each item protected with probability ``p``,
    independently) fails at least one prefix of ``table``; exact, O(len(table) * max(table))."""
    if not 0 <= p <= 1:
        raise ValueError(f"p must be within [0, 1], got {p}")
    return _fail_probability(np.asarray(table, dtype=np.int64), p)


@lru_cache(maxsize=256)
def _adjusted_alpha(k: int, p: float, alpha: float) -> float:
    def failing(candidate: float) -> tuple[float, int]:
        table = _mtable_array(k, p, candidate)
        return _fail_probability(table, p), int(table.sum())

    high, (fail_high, mass_high) = alpha, failing(alpha)
    if fail_high <= alpha:
        return alpha
    low, fail_low, mass_low = 0.0, 0.0, 0
    for _ in range(_MAX_BISECTIONS):
        if mass_high - mass_low <= 1:
            break
        middle = (low + high) / 2
        fail_middle, mass_middle = failing(middle)
        if fail_middle == alpha:
            return middle
        if fail_middle < alpha:
            low, fail_low, mass_low = middle, fail_middle, mass_middle
        else:
            high, fail_high, mass_high = middle, fail_middle, mass_middle
    if abs(fail_low - alpha) > abs(fail_high - alpha):
        return high
    if low > 0:
        return low
    # The all-zero table is nearer, but alpha_c = 0 is outside (0, alpha]: any alpha_c at or below
    # (1 - p)^k gives that table, so return half of it (or ``high`` if that underflows to zero).
    zero_table_alpha = (1 - p) ** k / 2
    return zero_table_alpha if zero_table_alpha > 0 else high


def adjusted_alpha(k: int, p: float, alpha: float) -> float:
    """``alpha_c``: the significance whose table fails a fair ranking with probability nearest
    ``alpha`` (see the module docstring; computed over ``min(k, ADJUSTMENT_CAP)`` positions)."""
    _check_table_parameters(k, p, alpha)
    return _adjusted_alpha(min(k, ADJUSTMENT_CAP), p, alpha)


def adjusted_mtable(k: int, p: float, alpha: float) -> tuple[int, ...]:
    """The FA*IR minimum table at the adjusted significance ``adjusted_alpha(k, p, alpha)``."""
    return mtable(k, p, adjusted_alpha(k, p, alpha))


class _Why(StrEnum):
    SCORE = "score"
    FIFO = "fifo"
    NO_SCORE = "no_score"
    FAIR_MINIMUM = "fair_minimum"
    FAIR_SCORE = "fair_score"
    BEYOND_K = "beyond_k"


def _merge_fair(
    doc: PolicyDocument, items: Sequence[RankItem], bearing: list[tuple[float, int]]
) -> tuple[list[int], list[tuple[_Why, int, int]]]:
    """FA*IR over the score-bearing items, given as ``(score, index)`` in score order.

    Returns the order (item indexes) and, per placed item, why it was placed with the table entry
    (minimum, prefix length) that applied.
    """
    protected_statuses = set(doc.ranking.protected)
    protected = [entry for entry in bearing if items[entry[1]].status in protected_statuses]
    others = [entry for entry in bearing if items[entry[1]].status not in protected_statuses]
    total = len(bearing)
    k = min(doc.ranking.k or total, total)
    p = doc.ranking.p if doc.ranking.p is not None else (len(protected) / total if total else 0.0)
    if 0 < p < 1 and protected and k > 0:
        table: list[int] = _mtable_array(k, p, adjusted_alpha(k, p, doc.ranking.alpha)).tolist()
    else:
        table = [0] * k
    order: list[int] = []
    whys: list[tuple[_Why, int, int]] = []
    next_protected = next_other = 0
    for position in range(k):
        minimum = table[position]
        why = _Why.FAIR_SCORE
        if next_other >= len(others):
            take_protected = True
        elif next_protected >= len(protected):
            take_protected = False
        elif next_protected < minimum:
            take_protected = True
            why = _Why.FAIR_MINIMUM
        else:
            take_protected = protected[next_protected][0] >= others[next_other][0]
        if take_protected:
            order.append(protected[next_protected][1])
            next_protected += 1
        else:
            order.append(others[next_other][1])
            next_other += 1
        whys.append((why, minimum, position + 1))
    placed = set(order)
    for _, index in bearing:
        if index not in placed:
            order.append(index)
            whys.append((_Why.BEYOND_K, 0, k))
    return order, whys


def _reason(why: _Why, item: RankItem, minimum: int, prefix: int, rank: int, gaps: bool) -> str:
    score = item.effective_score
    scored = f"effective score {format_score(score)}" if score is not None else "no score"
    top = f"the top {prefix}" + (" of the items with an effective score" if gaps else "")
    match why:
        case _Why.FIFO:
            text = "ordered by arrival time; this policy ranks first come, first served"
        case _Why.NO_SCORE:
            text = "no effective score under this policy, so it keeps its arrival-order place"
        case _Why.SCORE:
            text = f"ordered by {scored}"
        case _Why.FAIR_MINIMUM:
            text = (
                f"protected item placed to meet the FA*IR minimum of {minimum} protected in {top}"
            )
        case _Why.FAIR_SCORE if minimum > 0:
            text = f"ordered by {scored}; the FA*IR minimum of {minimum} protected in {top} is met"
        case _Why.FAIR_SCORE:
            text = f"ordered by {scored}"
        case _Why.BEYOND_K:
            text = f"after the fair top {prefix}, ordered by {scored}"
    return f"position {rank}: {text}"


def rank(doc: PolicyDocument, items: Sequence[RankItem]) -> list[RankedItem]:
    """Rank ``items`` under ``doc.ranking`` (see the module docstring for the exact rules).

    The output is a permutation of the input, in rank order, ranks 1..n. Ids must be unique
    (``ValueError``). Pure: nothing is changed.
    """
    count = len(items)
    if len({item.id for item in items}) != count:
        raise ValueError("item ids must be unique within a ranking")
    arrival = sorted(range(count), key=lambda index: (items[index].arrived_at, items[index].id))
    method = doc.ranking.method
    if method is RankingMethod.FIFO:
        return [
            RankedItem(
                id=items[index].id,
                rank=position + 1,
                status=items[index].status,
                effective_score=items[index].effective_score,
                reason=_reason(_Why.FIFO, items[index], 0, 0, position + 1, gaps=False),
            )
            for position, index in enumerate(arrival)
        ]
    arrival_position = [0] * count
    for position, index in enumerate(arrival):
        arrival_position[index] = position

    bearing = sorted(
        (-score, arrival_position[index], index)
        for index, item in enumerate(items)
        if (score := item.effective_score) is not None
    )
    scored = [(-negated, index) for negated, _, index in bearing]
    gaps = len(scored) < count
    order: list[int]
    whys: list[tuple[_Why, int, int]]
    if method is RankingMethod.FAIR_TOPK:
        order, whys = _merge_fair(doc, items, scored)
    else:
        order = [index for _, index in scored]
        whys = [(_Why.SCORE, 0, 0)] * len(order)
    ranked: list[RankedItem] = []
    next_bearing = 0
    for position, arrival_index in enumerate(arrival):
        if items[arrival_index].effective_score is None:
            index, why, minimum, prefix = arrival_index, _Why.NO_SCORE, 0, 0
        else:
            index = order[next_bearing]
            why, minimum, prefix = whys[next_bearing]
            next_bearing += 1
        item = items[index]
        ranked.append(
            RankedItem(
                id=item.id,
                rank=position + 1,
                status=item.status,
                effective_score=item.effective_score,
                reason=_reason(why, item, minimum, prefix, position + 1, gaps),
            )
        )
    return ranked
