"""Queries on policies, versions, activations, subscriptions and deliveries. Only flushes.

Locking: :func:`lock_policy` serialises every change to one policy's versions. On PostgreSQL it is
``SELECT ... FOR UPDATE`` on the policy row; SQLite has no row locks, so a no-op ``UPDATE`` of the
row takes the database's write lock first (the driver starts the transaction at the first write,
so nothing read before it can go stale). The partial unique index on active versions stays the
last word either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.models import (
    ActivationState,
    DeliveryState,
    Policy,
    PolicyActivation,
    PolicyDelivery,
    PolicyDeliveryAttempt,
    PolicySubscription,
    PolicyVersion,
    VersionState,
)

__all__ = [
    "activations",
    "active_version",
    "add",
    "attempts_of",
    "claim_delivery",
    "deliveries_of",
    "due_activations",
    "get_policy",
    "get_subscription",
    "get_version",
    "latest_version_number",
    "list_policies",
    "live_subscriptions",
    "lock_policy",
    "pending_deliveries",
    "requeue_stalled",
    "set_version_state",
    "versions_of",
]


def add(session: Session, *rows: object) -> None:
    """Add rows to the unit of work and flush them (ids assigned, constraints checked)."""
    session.add_all(rows)
    session.flush()


def get_policy(session: Session, name: str) -> Policy | None:
    return session.scalars(select(Policy).where(Policy.name == name)).one_or_none()


def lock_policy(session: Session, name: str) -> Policy | None:
    """The policy row, locked against concurrent changes until the transaction ends."""
    bind = session.get_bind()
    if bind.dialect.name == "sqlite":
        session.execute(update(Policy).where(Policy.name == name).values(name=Policy.name))
    return session.scalars(
        select(Policy).where(Policy.name == name).with_for_update()
    ).one_or_none()


def list_policies(session: Session) -> Sequence[Policy]:
    return session.scalars(select(Policy).order_by(Policy.name)).all()


def versions_of(session: Session, policy_id: int) -> Sequence[PolicyVersion]:
    return session.scalars(
        select(PolicyVersion)
        .where(PolicyVersion.policy_id == policy_id)
        .order_by(PolicyVersion.version)
    ).all()


def get_version(session: Session, policy_id: int, version: int) -> PolicyVersion | None:
    return session.scalars(
        select(PolicyVersion).where(
            PolicyVersion.policy_id == policy_id, PolicyVersion.version == version
        )
    ).one_or_none()


def active_version(session: Session, policy_id: int) -> PolicyVersion | None:
    return session.scalars(
        select(PolicyVersion).where(
            PolicyVersion.policy_id == policy_id, PolicyVersion.state == VersionState.ACTIVE
        )
    ).one_or_none()


def latest_version_number(session: Session, policy_id: int) -> int:
    latest = session.scalar(
        select(func.max(PolicyVersion.version)).where(PolicyVersion.policy_id == policy_id)
    )
    return int(latest or 0)


def set_version_state(session: Session, row: PolicyVersion, state: VersionState) -> None:
    """Change one version's state in its own statement, so the one-active index sees each step."""
    row.state = state
    session.flush()


def activations(
    session: Session, policy_id: int, state: ActivationState | None = None
) -> Sequence[PolicyActivation]:
    """A policy's activations, newest request first."""
    query = select(PolicyActivation).where(PolicyActivation.policy_id == policy_id)
    if state is not None:
        query = query.where(PolicyActivation.state == state)
    return session.scalars(
        query.order_by(PolicyActivation.requested_at.desc(), PolicyActivation.id.desc())
    ).all()


def due_activations(session: Session, now: datetime) -> Sequence[tuple[int, str]]:
    """``(activation id, policy name)`` of scheduled activations now due, oldest first."""
    rows = session.execute(
        select(PolicyActivation.id, Policy.name)
        .join(Policy, Policy.id == PolicyActivation.policy_id)
        .where(
            PolicyActivation.state == ActivationState.SCHEDULED,
            PolicyActivation.effective_at <= now,
        )
        .order_by(PolicyActivation.effective_at, PolicyActivation.id)
    ).all()
    return [(row[0], row[1]) for row in rows]


def live_subscriptions(session: Session) -> Sequence[PolicySubscription]:
    return session.scalars(
        select(PolicySubscription)
        .where(PolicySubscription.deleted_at.is_(None))
        .order_by(PolicySubscription.id)
    ).all()


def get_subscription(session: Session, subscription_id: int) -> PolicySubscription | None:
    row = session.get(PolicySubscription, subscription_id)
    if row is None or row.deleted_at is not None:
        return None
    return row


def deliveries_of(
    session: Session, subscription_ids: Sequence[int], limit_each: int
) -> dict[int, list[PolicyDelivery]]:
    """The newest ``limit_each`` deliveries of each subscription."""
    out: dict[int, list[PolicyDelivery]] = {sid: [] for sid in subscription_ids}
    if not subscription_ids:
        return out
    rows = session.scalars(
        select(PolicyDelivery)
        .where(PolicyDelivery.subscription_id.in_(list(subscription_ids)))
        .order_by(PolicyDelivery.id.desc())
    )
    for row in rows:
        bucket = out[row.subscription_id]
        if len(bucket) < limit_each:
            bucket.append(row)
    return out


def attempts_of(
    session: Session, delivery_ids: Sequence[int]
) -> dict[int, list[PolicyDeliveryAttempt]]:
    out: dict[int, list[PolicyDeliveryAttempt]] = {did: [] for did in delivery_ids}
    if not delivery_ids:
        return out
    rows = session.scalars(
        select(PolicyDeliveryAttempt)
        .where(PolicyDeliveryAttempt.delivery_id.in_(list(delivery_ids)))
        .order_by(PolicyDeliveryAttempt.delivery_id, PolicyDeliveryAttempt.attempt)
    )
    for row in rows:
        out[row.delivery_id].append(row)
    return out


def pending_deliveries(session: Session, limit: int) -> Sequence[int]:
    """Ids of deliveries waiting to be sent, oldest first."""
    return session.scalars(
        select(PolicyDelivery.id)
        .where(PolicyDelivery.state == DeliveryState.PENDING)
        .order_by(PolicyDelivery.id)
        .limit(limit)
    ).all()


def requeue_stalled(session: Session, before: datetime) -> int:
    """Put back to pending every delivery left "sending" with no attempt since ``before``: its
    sender died mid-send. Delivery is at least once; receivers dedupe by the notice id."""
    last_attempt = (
        select(func.max(PolicyDeliveryAttempt.at))
        .where(PolicyDeliveryAttempt.delivery_id == PolicyDelivery.id)
        .scalar_subquery()
    )
    result = session.execute(
        update(PolicyDelivery)
        .where(
            PolicyDelivery.state == DeliveryState.SENDING,
            func.coalesce(last_attempt, PolicyDelivery.created_at) < before,
        )
        .values(state=DeliveryState.PENDING)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def claim_delivery(session: Session, delivery_id: int) -> bool:
    """Mark a pending delivery as being sent; false when another worker claimed it first."""
    result = session.execute(
        update(PolicyDelivery)
        .where(PolicyDelivery.id == delivery_id, PolicyDelivery.state == DeliveryState.PENDING)
        .values(state=DeliveryState.SENDING)
    )
    return int(getattr(result, "rowcount", 0) or 0) == 1
