"""Fairness policies in the service: versions, activation with the fairness guard, announcements.

Contracts:

- **Versions are immutable.** A version's document is written once; a change is a new draft.
- **One active version per policy**, enforced by the database (partial unique index) and reached
  under a lock on the policy row (:func:`app.policy_versions.repository.lock_policy`), so racing
  activations queue up instead of failing or leaving two.
- **Which policy a lookup uses** (:func:`active_policy`): the active version of the policy named,
  or, with no name, of the stored policy ``<default provider>-default``. A ``<provider>-default``
  name that no stored version has taken over yet is the built-in :func:`policies.default_policy`,
  version 0. Any other unknown name is ``404 policy_not_found``.
- **Activation** needs a reason. The fairness guard runs over the stored population first; a
  version it refuses is ``409 fairness_guard_refused`` with the figures, unless the version carries
  ``allow_demotion`` (then the changelog entry is flagged ``demotion_allowed``). A future
  ``effective_at`` schedules the change (announced now, applied by the background worker when due).
  Every change writes an audit event and queues webhook notices in the same transaction; delivery
  happens later and never affects the activation.
- **Preview** writes nothing.

The stored population, for the guard and for a preview with no posted contacts, is the provider's
scored population (evenly thinned to at most :data:`SAMPLE_LIMIT` scores) plus one representative
contact per non-scored status: every member of a non-scored group gets the same effective score, so
one stands for all of them in the medians and selection rates the guard compares.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy.orm import Session

from app.audit import service as audit
from app.errors import Conflict, InvalidRequest, NotFound, UseCaseForbidden
from app.models import (
    ActivationState,
    DeliveryState,
    NoticeEvent,
    Policy,
    PolicyActivation,
    PolicyDelivery,
    PolicySubscription,
    PolicyVersion,
    VersionState,
    utcnow,
)
from app.policy_versions import repository
from app.policy_versions.schemas import (
    ActivationOut,
    AttemptOut,
    Changelog,
    DeliveryOut,
    PolicyDetail,
    PolicyList,
    PolicySummary,
    PreviewOut,
    PreviewSource,
    SubscriptionCreated,
    SubscriptionList,
    SubscriptionOut,
    VersionOut,
)
from app.providers.populations import Populations
from policies.diff import FieldChange, diff_documents
from policies.guard import GuardContact, GuardReport, guard
from policies.model import PolicyDocument, default_policy
from policies.population import ScoredPopulation
from policies.preview import PreviewContact, preview
from policies.status import NON_SCORED, Status

__all__ = [
    "DELIVERY_HEADER",
    "EVENT_HEADER",
    "SAMPLE_LIMIT",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "ActivePolicy",
    "activate",
    "active_policy",
    "add_version",
    "apply_scheduled",
    "changelog",
    "check_use_case",
    "create_policy",
    "create_subscription",
    "delete_subscription",
    "list_policies",
    "list_subscriptions",
    "policy_detail",
    "preview_version",
    "stored_sample",
]

log = logging.getLogger("scoregate.policies")

#: the most scores of the stored population the guard and previews look at
SAMPLE_LIMIT = 10_000
#: deliveries listed per subscription on GET
DELIVERIES_SHOWN = 20

SIGNATURE_HEADER = "X-Scoregate-Signature"
TIMESTAMP_HEADER = "X-Scoregate-Timestamp"
EVENT_HEADER = "X-Scoregate-Event"
DELIVERY_HEADER = "X-Scoregate-Delivery"

_DEFAULT_SUFFIX = "-default"
_SAMPLE_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class ActivePolicy:
    """The policy version a lookup or ranking applies; ``version`` 0 is the built-in default."""

    document: PolicyDocument
    version: int

    @property
    def name(self) -> str:
        return self.document.name


@lru_cache(maxsize=256)
def _parse(canonical_json: str) -> PolicyDocument:
    """A stored document, parsed once per process (it also keeps its evaluation cache)."""
    return PolicyDocument.model_validate_json(canonical_json)


def _document(data: dict[str, Any]) -> PolicyDocument:
    return _parse(json.dumps(data, sort_keys=True))


@lru_cache(maxsize=64)
def _built_in(provider: str) -> PolicyDocument:
    return default_policy(provider)


def _actor_subject(name: str) -> str:
    return f"policy:{name}"


def _not_found(name: str) -> NotFound:
    return NotFound(f"no policy named {name!r}", code="policy_not_found", policy=name)


def _require_policy(session: Session, name: str, *, lock: bool = False) -> Policy:
    policy = repository.lock_policy(session, name) if lock else repository.get_policy(session, name)
    if policy is None:
        raise _not_found(name)
    return policy


def _require_version(session: Session, policy: Policy, version: int) -> PolicyVersion:
    row = repository.get_version(session, policy.id, version)
    if row is None:
        raise NotFound(
            f"policy {policy.name!r} has no version {version}",
            code="version_not_found",
            policy=policy.name,
            version=version,
        )
    return row


def active_policy(
    session: Session, providers: Collection[str], default_provider: str | None, name: str | None
) -> ActivePolicy:
    """The version a lookup under ``name`` (or the default policy) applies; see the module doc."""
    wanted = name or (f"{default_provider}{_DEFAULT_SUFFIX}" if default_provider else None)
    if wanted is None:
        raise InvalidRequest(
            "no score provider is configured, so there is no default policy",
            code="provider_not_found",
            field="policy",
        )
    policy = repository.get_policy(session, wanted)
    built_in_provider = wanted.removesuffix(_DEFAULT_SUFFIX)
    is_built_in = wanted.endswith(_DEFAULT_SUFFIX) and built_in_provider in providers
    if policy is not None:
        row = repository.active_version(session, policy.id)
        if row is not None:
            return ActivePolicy(_document(row.document), row.version)
        if not is_built_in:
            raise Conflict(
                f"policy {wanted!r} has no active version yet; activate one first",
                code="policy_not_active",
                policy=wanted,
            )
    if is_built_in:
        return ActivePolicy(_built_in(built_in_provider), 0)
    raise _not_found(wanted)


def check_use_case(active: ActivePolicy, use_case: str | None) -> None:
    """Refuse (403) a use case the policy forbids, before any score is looked up."""
    if use_case is None or active.document.is_use_case_allowed(use_case):
        return
    raise UseCaseForbidden(
        f"policy {active.name} v{active.version} forbids handing out scores for "
        f"{use_case.strip().lower()!r}; it is written for {active.document.use_case.value} only",
        policy=active.name,
        version=active.version,
        use_case=use_case,
        forbidden_use_cases=active.document.forbidden_use_cases,
    )


def _check_provider(document: PolicyDocument, providers: Collection[str]) -> None:
    if document.provider not in providers:
        raise InvalidRequest(
            f"document.provider: no score provider named {document.provider!r} is configured "
            f"(configured: {', '.join(sorted(providers)) or 'none'})",
            code="unknown_provider",
            field="document.provider",
        )


def _version_out(row: PolicyVersion) -> VersionOut:
    return VersionOut(
        version=row.version,
        state=row.state,
        note=row.note,
        created_at=row.created_at,
        created_by=row.created_by,
        document=row.document,
    )


def _activation_out(
    policy: Policy, row: PolicyActivation, versions: dict[int, PolicyVersion]
) -> ActivationOut:
    target = versions.get(row.version)
    reason = target.document.get("demotion_reason") if target is not None else None
    return ActivationOut(
        id=row.id,
        policy=policy.name,
        version=row.version,
        previous_version=row.previous_version,
        state=row.state,
        announced=row.state == ActivationState.SCHEDULED,
        rollback=row.is_rollback,
        actor=row.actor,
        reason=row.reason,
        requested_at=row.requested_at,
        effective_at=row.effective_at,
        applied_at=row.applied_at,
        demotion_allowed=row.demotion_allowed,
        demotion_reason=reason if row.demotion_allowed else None,
        changes=[FieldChange.model_validate(change) for change in row.diff],
        outcome=row.outcome,
    )


def _versions_by_number(session: Session, policy: Policy) -> dict[int, PolicyVersion]:
    return {row.version: row for row in repository.versions_of(session, policy.id)}


def create_policy(
    session: Session,
    providers: Collection[str],
    document: PolicyDocument,
    *,
    note: str | None,
    actor: str,
) -> PolicyDetail:
    """Create a policy with ``document`` as draft version 1, and commit.

    ``409 policy_exists`` for a taken name; ``422 unknown_provider`` for a provider not configured.
    """
    _check_provider(document, providers)
    if repository.get_policy(session, document.name) is not None:
        raise Conflict(
            f"a policy named {document.name!r} exists; add a version to it instead",
            code="policy_exists",
            policy=document.name,
        )
    now = utcnow()
    policy = Policy(
        name=document.name, provider=document.provider, created_at=now, created_by=actor
    )
    repository.add(session, policy)
    version = PolicyVersion(
        policy_id=policy.id,
        version=1,
        document=document.model_dump(mode="json"),
        state=VersionState.DRAFT,
        note=note,
        created_at=now,
        created_by=actor,
    )
    repository.add(session, version)
    audit.record(
        session,
        actor=actor,
        action="policy.created",
        subject=_actor_subject(policy.name),
        details={"provider": policy.provider, "version": 1, "note": note},
    )
    session.commit()
    log.info("policy.create.ok", extra={"policy": policy.name, "provider": policy.provider})
    return policy_detail(session, policy.name)


def add_version(
    session: Session,
    providers: Collection[str],
    name: str,
    document: PolicyDocument,
    *,
    note: str | None,
    actor: str,
) -> VersionOut:
    """Add ``document`` as the next draft version of policy ``name``, and commit."""
    policy = _require_policy(session, name, lock=True)
    if document.name != policy.name:
        raise InvalidRequest(
            f"document.name: a version of policy {policy.name!r} must be named {policy.name!r}, "
            f"got {document.name!r}",
            code="name_mismatch",
            field="document.name",
        )
    if document.provider != policy.provider:
        raise InvalidRequest(
            f"document.provider: policy {policy.name!r} is for provider {policy.provider!r}; "
            "a provider change is a new policy",
            code="provider_mismatch",
            field="document.provider",
        )
    _check_provider(document, providers)
    number = repository.latest_version_number(session, policy.id) + 1
    row = PolicyVersion(
        policy_id=policy.id,
        version=number,
        document=document.model_dump(mode="json"),
        state=VersionState.DRAFT,
        note=note,
        created_at=utcnow(),
        created_by=actor,
    )
    repository.add(session, row)
    audit.record(
        session,
        actor=actor,
        action="policy.version_created",
        subject=_actor_subject(policy.name),
        details={"version": number, "note": note},
    )
    session.commit()
    log.info("policy.version.created", extra={"policy": policy.name, "version": number})
    return _version_out(row)


def list_policies(session: Session) -> PolicyList:
    summaries: list[PolicySummary] = []
    for policy in repository.list_policies(session):
        versions = repository.versions_of(session, policy.id)
        active = next((v.version for v in versions if v.state == VersionState.ACTIVE), None)
        scheduled = repository.activations(session, policy.id, ActivationState.SCHEDULED)
        summaries.append(
            PolicySummary(
                name=policy.name,
                provider=policy.provider,
                active_version=active,
                latest_version=max((v.version for v in versions), default=0),
                scheduled=len(scheduled),
                created_at=policy.created_at,
                created_by=policy.created_by,
            )
        )
    return PolicyList(policies=summaries)


def policy_detail(session: Session, name: str) -> PolicyDetail:
    """Active version, drafts, the versions once active (newest first) and scheduled changes."""
    policy = _require_policy(session, name)
    versions = _versions_by_number(session, policy)
    scheduled = repository.activations(session, policy.id, ActivationState.SCHEDULED)
    ordered = sorted(versions.values(), key=lambda row: row.version)
    active = next((row for row in ordered if row.state == VersionState.ACTIVE), None)
    return PolicyDetail(
        name=policy.name,
        provider=policy.provider,
        created_at=policy.created_at,
        created_by=policy.created_by,
        active=_version_out(active) if active is not None else None,
        drafts=[_version_out(row) for row in ordered if row.state == VersionState.DRAFT],
        history=[
            _version_out(row) for row in reversed(ordered) if row.state == VersionState.RETIRED
        ],
        scheduled=[
            _activation_out(policy, row, versions)
            for row in sorted(scheduled, key=lambda row: (row.effective_at, row.id))
        ],
    )


def changelog(session: Session, name: str) -> Changelog:
    """Every activation of policy ``name``, newest request first."""
    policy = _require_policy(session, name)
    versions = _versions_by_number(session, policy)
    return Changelog(
        policy=policy.name,
        entries=[
            _activation_out(policy, row, versions)
            for row in repository.activations(session, policy.id)
        ],
    )


def stored_sample(population: ScoredPopulation) -> list[PreviewContact]:
    """The stored population as preview contacts (see the module docstring).

    Arrival times are synthetic (one second apart, scored people first in ascending score, then
    one representative per non-scored status), so arrival order is deterministic.
    """
    _, scores = population.snapshot()
    if len(scores) > SAMPLE_LIMIT:
        step = (len(scores) - 1) / (SAMPLE_LIMIT - 1)
        scores = [scores[round(index * step)] for index in range(SAMPLE_LIMIT)]
    contacts = [
        PreviewContact(
            id=f"scored-{index + 1}",
            status=Status.SCORED,
            score=score,
            arrived_at=_SAMPLE_EPOCH + timedelta(seconds=index),
        )
        for index, score in enumerate(scores)
    ]
    contacts.extend(
        PreviewContact(
            id=f"{status}-representative",
            status=status,
            arrived_at=_SAMPLE_EPOCH + timedelta(seconds=len(scores) + offset),
        )
        for offset, status in enumerate(NON_SCORED)
    )
    return contacts


def preview_version(
    session: Session,
    populations: Populations,
    name: str,
    version: int,
    contacts: Sequence[PreviewContact] | None,
) -> PreviewOut:
    """What activating ``version`` would change, over ``contacts`` or the stored population.

    Reads only: nothing is written, flushed or committed.
    """
    policy = _require_policy(session, name)
    candidate_row = _require_version(session, policy, version)
    current_row = repository.active_version(session, policy.id)
    population = populations.get(policy.provider)
    source = PreviewSource.POSTED if contacts is not None else PreviewSource.STORED_POPULATION
    sample = list(contacts) if contacts is not None else stored_sample(population)
    if len({contact.id for contact in sample}) != len(sample):
        raise InvalidRequest(
            "contacts: contact ids must be unique within a preview",
            code="duplicate_id",
            field="contacts",
        )
    report = preview(
        _document(current_row.document) if current_row is not None else None,
        _document(candidate_row.document),
        sample,
        population,
    )
    return PreviewOut(
        policy=policy.name,
        version=version,
        current_version=current_row.version if current_row is not None else None,
        source=source,
        report=report,
    )


def _guard_report(document: PolicyDocument, population: ScoredPopulation) -> GuardReport:
    sample = [
        GuardContact(status=contact.status, score=contact.score)
        for contact in stored_sample(population)
    ]
    return guard(document, sample, population)


def activate(
    session: Session,
    populations: Populations,
    name: str,
    version: int,
    *,
    reason: str,
    effective_at: datetime | None,
    actor: str,
) -> ActivationOut:
    """Activate (or schedule, or roll back to) ``version`` of policy ``name``, and commit.

    Errors: ``404 policy_not_found`` / ``version_not_found``; ``409 version_already_active`` for
    an immediate activation of the active version; ``409 fairness_guard_refused`` with the guard's
    report in ``details.guard``.
    """
    policy = _require_policy(session, name, lock=True)
    target = _require_version(session, policy, version)
    current = repository.active_version(session, policy.id)
    now = utcnow()
    immediate = effective_at is None or effective_at <= now
    if immediate and current is not None and current.version == version:
        raise Conflict(
            f"version {version} of policy {name!r} is already active",
            code="version_already_active",
            policy=name,
            version=version,
        )
    document = _document(target.document)
    report = _guard_report(document, populations.get(policy.provider))
    if not report.acceptable:
        raise Conflict(
            f"the fairness guard refuses version {version} of policy {name!r}: "
            + "; ".join(violation.message for violation in report.violations),
            code="fairness_guard_refused",
            policy=name,
            version=version,
            guard=report.model_dump(mode="json"),
        )
    activation = PolicyActivation(
        policy_id=policy.id,
        version=version,
        previous_version=current.version if current is not None else None,
        state=ActivationState.SCHEDULED,
        actor=actor,
        reason=reason,
        requested_at=now,
        effective_at=now if immediate else effective_at,
        is_rollback=target.state == VersionState.RETIRED,
        demotion_allowed=report.allowed_by_demotion,
        guard=report.model_dump(mode="json"),
        diff=_diff(current, target),
    )
    repository.add(session, activation)
    if immediate:
        _apply(session, policy, activation, actor=actor, now=now)
    else:
        _announce(session, policy, activation, NoticeEvent.SCHEDULED)
        audit.record(
            session,
            actor=actor,
            action="policy.version_scheduled",
            subject=_actor_subject(policy.name),
            details=_audit_details(activation),
        )
    session.commit()
    log.info(
        "policy.activation.ok",
        extra={
            "policy": policy.name,
            "version": version,
            "state": str(activation.state),
            "demotion_allowed": activation.demotion_allowed,
        },
    )
    return _activation_out(policy, activation, {version: target})


def _diff(current: PolicyVersion | None, target: PolicyVersion) -> list[dict[str, Any]]:
    changes = diff_documents(current.document if current is not None else None, target.document)
    return [change.model_dump(mode="json") for change in changes]


def _audit_details(activation: PolicyActivation) -> dict[str, Any]:
    return {
        "activation_id": activation.id,
        "version": activation.version,
        "previous_version": activation.previous_version,
        "reason": activation.reason,
        "effective_at": activation.effective_at.isoformat(),
        "rollback": activation.is_rollback,
        "demotion_allowed": activation.demotion_allowed,
    }


def _apply(
    session: Session,
    policy: Policy,
    activation: PolicyActivation,
    *,
    actor: str,
    now: datetime,
) -> None:
    """Make the activation's version the active one (the caller holds the policy lock)."""
    target = _require_version(session, policy, activation.version)
    current = repository.active_version(session, policy.id)
    if current is not None and current.id == target.id:
        activation.outcome = "the version was already active; nothing changed"
    else:
        if current is not None:
            repository.set_version_state(session, current, VersionState.RETIRED)
        repository.set_version_state(session, target, VersionState.ACTIVE)
    activation.previous_version = current.version if current is not None else None
    activation.diff = _diff(current, target)
    activation.state = ActivationState.APPLIED
    activation.applied_at = now
    session.flush()
    _announce(session, policy, activation, NoticeEvent.ACTIVATED)
    audit.record(
        session,
        actor=actor,
        action="policy.version_activated",
        subject=_actor_subject(policy.name),
        details=_audit_details(activation),
    )


def apply_scheduled(session: Session, activation_id: int, policy_name: str) -> bool:
    """Apply one scheduled activation whose time has come; the caller commits.

    Takes the policy lock, then re-reads the activation, so two workers (replicas) never apply it
    twice. Returns whether it was applied by this call.
    """
    policy = repository.lock_policy(session, policy_name)
    if policy is None:
        return False
    session.expire_all()
    activation = session.get(PolicyActivation, activation_id)
    if activation is None or activation.state != ActivationState.SCHEDULED:
        return False
    _apply(session, policy, activation, actor="scheduler", now=utcnow())
    log.info(
        "policy.scheduled.applied",
        extra={"policy": policy.name, "version": activation.version, "id": activation.id},
    )
    return True


def _announce(
    session: Session, policy: Policy, activation: PolicyActivation, event: NoticeEvent
) -> None:
    """Queue one notice per live subscription; the background worker sends them."""
    now = utcnow()
    for subscription in repository.live_subscriptions(session):
        delivery = PolicyDelivery(
            subscription_id=subscription.id,
            activation_id=activation.id,
            event=event,
            body="",
            state=DeliveryState.PENDING,
            attempts=0,
            created_at=now,
        )
        repository.add(session, delivery)
        delivery.body = json.dumps(
            {
                "id": delivery.id,
                "event": event.value,
                "created_at": now.isoformat(),
                "policy": policy.name,
                "provider": policy.provider,
                "version": activation.version,
                "previous_version": activation.previous_version,
                "effective_at": activation.effective_at.isoformat(),
                "reason": activation.reason,
                "actor": activation.actor,
                "rollback": activation.is_rollback,
                "demotion_allowed": activation.demotion_allowed,
                "changes": activation.diff,
            },
            separators=(",", ":"),
            sort_keys=True,
        )
    session.flush()


def create_subscription(
    session: Session, url: str, *, description: str | None, actor: str
) -> SubscriptionCreated:
    """Store a webhook subscription with a fresh signing secret, and commit."""
    row = PolicySubscription(
        url=url,
        secret=f"whsec_{secrets.token_urlsafe(32)}",
        description=description,
        created_at=utcnow(),
        created_by=actor,
    )
    repository.add(session, row)
    audit.record(
        session,
        actor=actor,
        action="policy_subscription.created",
        subject=f"policy_subscription:{row.id}",
        details={"url": url},
    )
    session.commit()
    return SubscriptionCreated(
        id=row.id,
        url=row.url,
        description=row.description,
        created_at=row.created_at,
        secret=row.secret,
        signature_header=SIGNATURE_HEADER,
        timestamp_header=TIMESTAMP_HEADER,
    )


def list_subscriptions(session: Session) -> SubscriptionList:
    """Live subscriptions with their newest deliveries and every attempt of those."""
    rows = repository.live_subscriptions(session)
    deliveries = repository.deliveries_of(session, [row.id for row in rows], DELIVERIES_SHOWN)
    attempts = repository.attempts_of(
        session, [delivery.id for items in deliveries.values() for delivery in items]
    )
    return SubscriptionList(
        subscriptions=[
            SubscriptionOut(
                id=row.id,
                url=row.url,
                description=row.description,
                created_at=row.created_at,
                created_by=row.created_by,
                deliveries=[
                    DeliveryOut(
                        id=delivery.id,
                        event=delivery.event,
                        activation_id=delivery.activation_id,
                        state=delivery.state,
                        created_at=delivery.created_at,
                        finished_at=delivery.finished_at,
                        attempts=[
                            AttemptOut(
                                attempt=attempt.attempt,
                                at=attempt.at,
                                status_code=attempt.status_code,
                                error=attempt.error,
                            )
                            for attempt in attempts[delivery.id]
                        ],
                    )
                    for delivery in deliveries[row.id]
                ],
            )
            for row in rows
        ]
    )


def delete_subscription(session: Session, subscription_id: int, *, actor: str) -> None:
    """Stop announcing to a subscription (its delivery history stays), and commit."""
    row = repository.get_subscription(session, subscription_id)
    if row is None:
        raise NotFound(
            f"no policy subscription {subscription_id}",
            code="subscription_not_found",
            subscription_id=subscription_id,
        )
    row.deleted_at = utcnow()
    audit.record(
        session,
        actor=actor,
        action="policy_subscription.deleted",
        subject=f"policy_subscription:{row.id}",
        details={"url": row.url},
    )
    session.commit()
