"""Preview: what activating a candidate policy version would change, before anything changes.

:func:`preview` evaluates and ranks the same contacts under the current version and under the
candidate, and reports:

- how many contacts change segment, with counts per ``from -> to`` pair;
- how many change rank, and the ten largest rank moves (by ``|delta|``, then id), with ids;
- the fairness guard's report for the candidate over the same contacts.

With no current version (the first activation) every contact's "before" is no segment and its
arrival-order rank (what a queue without a policy does). Both versions must be for the
population's provider. Pure: nothing is written, nothing is activated.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from policies.guard import GuardContact, GuardReport, guard
from policies.model import PolicyDocument
from policies.population import ScoredPopulation
from policies.ranking import RankItem, rank
from policies.status import Status
from policies.strategies import Evaluation, evaluate

__all__ = ["PreviewContact", "PreviewReport", "RankMove", "SegmentMove", "preview"]

#: how many of the largest rank moves a preview lists
TOP_MOVES = 10


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PreviewContact(_Part):
    """One contact to preview: id, status, score (exactly when ``scored``) and arrival time."""

    id: str = Field(min_length=1)
    status: Status
    score: float | None = Field(default=None, allow_inf_nan=False)
    arrived_at: AwareDatetime

    @model_validator(mode="after")
    def _score_matches_status(self) -> Self:
        if self.status is Status.SCORED and self.score is None:
            raise ValueError("a scored contact needs its score")
        if self.status is not Status.SCORED and self.score is not None:
            raise ValueError(f"a {self.status} contact carries no score")
        return self


class SegmentMove(_Part):
    """How many contacts move from one segment to another (``None``: no segment)."""

    from_segment: str | None
    to_segment: str | None
    count: int


class RankMove(_Part):
    """One contact's rank change; ``delta`` = old rank - new rank (positive: moves up)."""

    id: str
    status: Status
    old_rank: int
    new_rank: int
    delta: int


class PreviewReport(_Part):
    """The impact of activating ``candidate_policy`` instead of ``current_policy``."""

    current_policy: str | None
    candidate_policy: str
    contacts: int
    segment_changes: int
    segment_moves: list[SegmentMove]
    rank_changes: int
    largest_rank_moves: list[RankMove]
    guard: GuardReport


def _ranks(
    doc: PolicyDocument | None,
    contacts: Sequence[PreviewContact],
    evaluations: Sequence[Evaluation | None],
) -> dict[str, int]:
    if doc is None:
        arrival = sorted(contacts, key=lambda contact: (contact.arrived_at, contact.id))
        return {contact.id: position + 1 for position, contact in enumerate(arrival)}
    items = [
        RankItem(
            id=contact.id,
            status=contact.status,
            effective_score=evaluation.effective_score if evaluation is not None else None,
            arrived_at=contact.arrived_at,
        )
        for contact, evaluation in zip(contacts, evaluations, strict=True)
    ]
    return {item.id: item.rank for item in rank(doc, items)}


def preview(
    current: PolicyDocument | None,
    candidate: PolicyDocument,
    contacts: Sequence[PreviewContact],
    population: ScoredPopulation,
) -> PreviewReport:
    """Compare ``candidate`` with ``current`` over ``contacts`` (see the module docstring).

    Contact ids must be unique (``ValueError``).
    """
    if len({contact.id for contact in contacts}) != len(contacts):
        raise ValueError("contact ids must be unique within a preview")
    before: list[Evaluation | None] = [
        evaluate(current, contact.status, contact.score, population)
        if current is not None
        else None
        for contact in contacts
    ]
    after: list[Evaluation | None] = [
        evaluate(candidate, contact.status, contact.score, population) for contact in contacts
    ]
    moves: Counter[tuple[str | None, str | None]] = Counter()
    for old, new in zip(before, after, strict=True):
        old_segment = old.segment if old is not None else None
        new_segment = new.segment if new is not None else None
        if old_segment != new_segment:
            moves[(old_segment, new_segment)] += 1
    old_ranks = _ranks(current, contacts, before)
    new_ranks = _ranks(candidate, contacts, after)
    rank_moves = [
        RankMove(
            id=contact.id,
            status=contact.status,
            old_rank=old_ranks[contact.id],
            new_rank=new_ranks[contact.id],
            delta=old_ranks[contact.id] - new_ranks[contact.id],
        )
        for contact in contacts
        if old_ranks[contact.id] != new_ranks[contact.id]
    ]
    rank_moves.sort(key=lambda move: (-abs(move.delta), move.id))
    return PreviewReport(
        current_policy=current.name if current is not None else None,
        candidate_policy=candidate.name,
        contacts=len(contacts),
        segment_changes=sum(moves.values()),
        segment_moves=[
            SegmentMove(from_segment=old, to_segment=new, count=count)
            for (old, new), count in sorted(
                moves.items(), key=lambda entry: (-entry[1], str(entry[0][0]), str(entry[0][1]))
            )
        ],
        rank_changes=len(rank_moves),
        largest_rank_moves=rank_moves[:TOP_MOVES],
        guard=guard(
            candidate,
            [GuardContact(status=contact.status, score=contact.score) for contact in contacts],
            population,
        ),
    )
