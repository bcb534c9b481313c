"""Rankings: resolve every item's status like a lookup does, then order by the policy's method.

The policy is the one a lookup would use (:func:`app.policy_versions.service.active_policy`);
a forbidden use case is refused before any provider is asked. Statuses come from
:func:`app.lookups.service.resolve` (registry, cache, provider, existence check), effective scores
from the policy, and the order from :func:`policies.rank` (``score``, ``fifo`` or FA*IR
``fair_topk``), which also says why each item sits where it does.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.errors import InvalidRequest
from app.lookups import service as lookups
from app.lookups.schemas import ContactIn, PolicyRef
from app.rankings.schemas import RankedOut, RankingRequest, RankingResponse
from app.runtime import Runtime
from policies.ranking import RankItem, rank

__all__ = ["rank_items"]


def rank_items(
    session: Session, runtime: Runtime, request: RankingRequest, *, actor: str
) -> RankingResponse:
    """Rank ``request.items``; commits what resolution recorded (provider-signalled opt-outs)."""
    ids = [item.id for item in request.items]
    if len(set(ids)) != len(ids):
        duplicate = next(item_id for item_id in ids if ids.count(item_id) > 1)
        raise InvalidRequest(
            f"items: the id {duplicate!r} appears more than once; ids must be unique",
            code="duplicate_id",
            field="items",
        )
    active, evaluated = lookups.evaluate_contacts(
        session,
        runtime,
        [ContactIn(id=item.id, identities=item.identities) for item in request.items],
        policy=request.policy,
        use_case=request.use_case,
        deadline_ms=request.deadline_ms,
        actor=actor,
    )
    results = {result.id: result for result in evaluated}
    ranked = rank(
        active.document,
        [
            RankItem(
                id=item.id,
                status=results[item.id].status,
                effective_score=results[item.id].effective_score,
                arrived_at=item.arrived_at,
            )
            for item in request.items
        ],
    )
    return RankingResponse(
        policy=PolicyRef(name=active.name, version=active.version),
        method=active.document.ranking.method,
        items=[
            RankedOut(
                id=placed.id,
                rank=placed.rank,
                status=placed.status,
                score=results[placed.id].score,
                effective_score=placed.effective_score,
                segment=results[placed.id].segment,
                reason=placed.reason,
                explanation=results[placed.id].explanation,
                evidence=results[placed.id].evidence,
                retry_after=results[placed.id].retry_after,
            )
            for placed in ranked
        ],
    )
