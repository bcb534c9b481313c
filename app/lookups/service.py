"""Status resolution: registry -> cache -> provider -> existence check, for every contact.

Every contact ends in exactly one of the five statuses with the evidence behind it. Nothing here
turns a failure into a number: an answer that could not be had is ``unavailable`` with a
``retry_after``, and its effective score comes from the policy like every other missing score.
"""

from __future__ import annotations

import functools
import logging
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import Future, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from app.identities import Identity, IdentityError
from app.lookups.schemas import ContactIn, ContactResult, Evidence, PolicyRef
from app.models import OptOutSource
from app.opt_outs import service as opt_outs
from app.policy_versions import service as policy_versions
from app.policy_versions.service import ActivePolicy
from app.runtime import Runtime
from connectors.base import AnswerKind, CallBudget, Priority
from connectors.cache import StoredAnswer
from connectors.errors import (
    CircuitOpenError,
    NoCapacityError,
    QuotaExhaustedError,
    TransientUpstreamError,
    UpstreamError,
)
from connectors.gateway import ExistenceGateway, ProviderGateway
from policies.explain import explain
from policies.model import PolicyDocument
from policies.population import ScoredPopulation
from policies.status import Status
from policies.strategies import evaluate

__all__ = ["Resolution", "evaluate_contacts", "resolve", "to_results"]

log = logging.getLogger("scoregate.lookups")

#: extra time allowed past the deadline for an HTTP call that already started
_GRACE_SECONDS = 0.5


@dataclass(slots=True)
class Resolution:
    """One contact's resolved status, before a policy turns it into an effective score."""

    id: str
    identities: list[Identity]
    malformed: list[IdentityError]
    status: Status | None = None
    score: float | None = None
    evidence: list[Evidence] = field(default_factory=list)
    retry_after: float | None = None
    query: Identity | None = None
    provider: str = ""

    def settle(self, status: Status, source: str, fact: str) -> None:
        self.status = status
        self.evidence.append(Evidence(source=source, fact=fact))


def _prepare(runtime: Runtime, contact: ContactIn) -> Resolution:
    identities: list[Identity] = []
    malformed: list[IdentityError] = []
    for kind, value in contact.identities.items():
        try:
            identities.append(runtime.keyer.identity(kind, value))
        except IdentityError as exc:
            malformed.append(exc)
    return Resolution(id=contact.id, identities=identities, malformed=malformed)


def resolve(
    session: Session,
    runtime: Runtime,
    contacts: Sequence[ContactIn],
    *,
    gateway: ProviderGateway,
    deadline_seconds: float,
    priority: Priority = Priority.INTERACTIVE,
    actor: str = "lookup",
) -> list[Resolution]:
    """Resolve every contact's status. Records provider-signalled opt-outs; the caller commits."""
    deadline = time.monotonic() + deadline_seconds
    budget = CallBudget(priority, deadline)
    resolutions = [_prepare(runtime, contact) for contact in contacts]
    for resolution in resolutions:
        resolution.provider = gateway.name

    _apply_registry(session, resolutions)
    pending = [r for r in resolutions if r.status is None]
    _choose_queries(gateway, pending)
    pending = [r for r in pending if r.status is None]

    answers = _answers(runtime, gateway, pending, budget)
    needs_existence: list[Resolution] = []
    for resolution in pending:
        outcome = answers[resolution.query.key]  # type: ignore[union-attr]
        _apply_answer(session, runtime, gateway, resolution, outcome, actor)
        if resolution.status is None:
            needs_existence.append(resolution)
    _apply_existence(runtime, gateway, needs_existence, budget)

    counts = Counter(str(r.status) for r in resolutions)
    log.info("lookup.resolve.ok", extra={"provider": gateway.name, "statuses": dict(counts)})
    return resolutions


def _apply_registry(session: Session, resolutions: list[Resolution]) -> None:
    keys = {identity.key for r in resolutions for identity in r.identities}
    entries = opt_outs.registry_entries(session, keys)
    if not entries:
        return
    for resolution in resolutions:
        for identity in resolution.identities:
            entry = entries.get(identity.key)
            if entry is not None:
                day = entry.created_at.date().isoformat()
                resolution.settle(
                    Status.OPTED_OUT,
                    "registry",
                    f"opt-out of the {identity.kind} identity recorded {day} from {entry.source}",
                )
        if resolution.status is Status.OPTED_OUT:
            resolution.evidence.append(
                Evidence(source="scoregate", fact="no provider was asked about this person")
            )


def _choose_queries(gateway: ProviderGateway, pending: list[Resolution]) -> None:
    kinds = gateway.identity_kinds
    for resolution in pending:
        usable = [identity for identity in resolution.identities if identity.kind in kinds]
        if usable:
            resolution.query = usable[0]
            continue
        broken = [error for error in resolution.malformed if error.kind in kinds]
        if broken or (resolution.malformed and not resolution.identities):
            error = (broken or resolution.malformed)[0]
            resolution.settle(
                Status.NOT_FOUND, "scoregate", f"the {error.kind} identity is malformed: {error}"
            )
            continue
        resolution.settle(
            Status.UNSCORED,
            "scoregate",
            f"none of this contact's identities can be looked up at {gateway.name} "
            f"(it takes {', '.join(sorted(kinds))})",
        )


_Outcome = StoredAnswer | UpstreamError


def _answers(
    runtime: Runtime,
    gateway: ProviderGateway,
    pending: list[Resolution],
    budget: CallBudget,
) -> dict[str, _Outcome]:
    """Cached answers, then parallel fetches of the misses under one deadline."""
    queries = {r.query.key: r.query for r in pending if r.query is not None}
    outcomes: dict[str, _Outcome] = dict(gateway.cached(list(queries)))
    misses = [identity for key, identity in queries.items() if key not in outcomes]
    futures: dict[str, Future[StoredAnswer]] = {
        identity.key: runtime.fetch_pool.submit(
            gateway.fetch, identity.key, identity.kind, identity.value, budget
        )
        for identity in misses
    }
    _collect(futures, outcomes, budget, gateway.name)
    for identity in misses:
        if isinstance(outcomes[identity.key], NoCapacityError):
            runtime.background.submit(
                gateway.name,
                identity.key,
                functools.partial(gateway.fetch, identity.key, identity.kind, identity.value),
            )
    return outcomes


def _collect(
    futures: dict[str, Future[StoredAnswer]],
    outcomes: dict[str, _Outcome],
    budget: CallBudget,
    upstream: str,
) -> None:
    if not futures:
        return
    remaining = 0.0 if budget.deadline is None else budget.deadline - time.monotonic()
    wait(futures.values(), timeout=max(0.0, remaining) + _GRACE_SECONDS)
    for key, future in futures.items():
        if not future.done():
            outcomes[key] = TransientUpstreamError(
                f"{upstream} had not answered by the deadline; the answer will be cached when it "
                "arrives",
                upstream=upstream,
                retry_after=1.0,
            )
            continue
        exc = future.exception()
        if exc is None:
            outcomes[key] = future.result()
        elif isinstance(exc, UpstreamError):
            outcomes[key] = exc
        else:
            log.error(
                "lookup.fetch.bug",
                extra={"provider": upstream, "error_type": type(exc).__name__},
                exc_info=exc,
            )
            outcomes[key] = TransientUpstreamError(
                f"{upstream} lookup failed unexpectedly", upstream=upstream
            )


def _unavailable(resolution: Resolution, exc: UpstreamError, upstream: str) -> None:
    if isinstance(exc, QuotaExhaustedError):
        reset = exc.reset_at or datetime.now(UTC)
        resolution.retry_after = max(1.0, (reset - datetime.now(UTC)).total_seconds())
        fact = f"{upstream}'s quota is used up until {reset.isoformat(timespec='minutes')}"
    elif isinstance(exc, CircuitOpenError):
        resolution.retry_after = exc.retry_after or 30.0
        fact = f"{upstream} is failing repeatedly; calls are paused (circuit open)"
    elif isinstance(exc, NoCapacityError):
        resolution.retry_after = exc.retry_after or 1.0
        fact = f"no {upstream} call slot was free before the deadline; a background fetch is queued"
    elif isinstance(exc, TransientUpstreamError):
        resolution.retry_after = exc.retry_after or 5.0
        fact = f"{upstream} could not answer now: {exc.message}"
    else:
        resolution.retry_after = 60.0
        fact = f"{upstream} refused the call: {exc.message}"
    resolution.settle(Status.UNAVAILABLE, upstream, fact)


def _apply_answer(
    session: Session,
    runtime: Runtime,
    gateway: ProviderGateway,
    resolution: Resolution,
    outcome: _Outcome,
    actor: str,
) -> None:
    if isinstance(outcome, UpstreamError):
        _unavailable(resolution, outcome, gateway.name)
        return
    if outcome.kind == AnswerKind.SCORE:
        resolution.score = outcome.score
        resolution.settle(Status.SCORED, gateway.name, outcome.fact)
    elif outcome.kind == AnswerKind.OPTED_OUT:
        resolution.settle(Status.OPTED_OUT, gateway.name, outcome.fact)
        query = resolution.query
        assert query is not None
        opt_outs.record_keys(
            session,
            runtime.populations,
            [query.key],
            source=OptOutSource.PROVIDER,
            actor=actor,
            note=f"{gateway.name} said this person opted out",
        )
    else:
        resolution.evidence.append(Evidence(source=gateway.name, fact=outcome.fact))


def _apply_existence(
    runtime: Runtime,
    gateway: ProviderGateway,
    resolutions: list[Resolution],
    budget: CallBudget,
) -> None:
    checker: ExistenceGateway | None = runtime.providers.existence_for(gateway.name)
    to_check: list[Resolution] = []
    for resolution in resolutions:
        query = resolution.query
        assert query is not None
        if checker is None or query.kind != checker.identity_kind:
            resolution.settle(
                Status.UNSCORED,
                "scoregate",
                f"no existence check for {query.kind} identities is configured, and "
                f"{gateway.name} cannot tell a handle that does not exist from a person who "
                "opted out there",
            )
        else:
            to_check.append(resolution)
    if checker is None or not to_check:
        return
    keys = {r.query.key: r.query for r in to_check if r.query is not None}
    outcomes: dict[str, _Outcome] = dict(checker.cached(list(keys)))
    futures: dict[str, Future[StoredAnswer]] = {
        key: runtime.fetch_pool.submit(checker.check, key, identity.value, budget)
        for key, identity in keys.items()
        if key not in outcomes
    }
    _collect(futures, outcomes, budget, checker.name)
    for key, identity in keys.items():
        if isinstance(outcomes[key], NoCapacityError):
            runtime.background.submit(
                checker.name, key, functools.partial(checker.check, key, identity.value)
            )
    for resolution in to_check:
        outcome = outcomes[resolution.query.key]  # type: ignore[union-attr]
        if isinstance(outcome, UpstreamError):
            resolution.settle(
                Status.UNSCORED,
                checker.name,
                f"the existence check could not answer now ({type(outcome).__name__}); "
                f"{gateway.name} cannot tell a missing handle from an opted-out person",
            )
        elif outcome.kind == "exists":
            resolution.settle(Status.UNSCORED, checker.name, outcome.fact)
        else:
            resolution.settle(Status.NOT_FOUND, checker.name, outcome.fact)


def to_results(
    resolutions: Sequence[Resolution],
    doc: PolicyDocument,
    version: int,
    population: ScoredPopulation,
) -> list[ContactResult]:
    """Apply a policy version to resolved contacts: effective score, segment, explanation."""
    ref = PolicyRef(name=doc.name, version=version)
    results = []
    for resolution in resolutions:
        status = resolution.status or Status.UNAVAILABLE
        score = resolution.score if status is Status.SCORED else None
        evaluation = evaluate(doc, status, score, population)
        explanation = explain(status, evaluation, doc.name, version)
        if resolution.retry_after is not None:
            explanation += f" Try again in about {max(1, round(resolution.retry_after))} s."
        results.append(
            ContactResult(
                id=resolution.id,
                status=status,
                score=score,
                effective_score=evaluation.effective_score,
                segment=evaluation.segment,
                explanation=explanation,
                evidence=resolution.evidence,
                policy=ref,
                retry_after=resolution.retry_after,
            )
        )
    return results


def evaluate_contacts(
    session: Session,
    runtime: Runtime,
    contacts: Sequence[ContactIn],
    *,
    policy: str | None,
    use_case: str | None,
    deadline_ms: int | None,
    actor: str,
) -> tuple[ActivePolicy, list[ContactResult]]:
    """Resolve contacts and apply the named (or default) policy's active version; commit.

    Refuses a use case the policy forbids before any provider is asked.
    """
    active = policy_versions.active_policy(
        session, list(runtime.providers.providers), runtime.providers.default, policy
    )
    policy_versions.check_use_case(active, use_case)
    gateway = runtime.providers.gateway(active.document.provider)
    deadline = (
        deadline_ms / 1000
        if deadline_ms is not None
        else runtime.settings.lookup_deadline.total_seconds()
    )
    resolutions = resolve(
        session, runtime, contacts, gateway=gateway, deadline_seconds=deadline, actor=actor
    )
    session.commit()
    population = runtime.populations.get(gateway.name)
    return active, to_results(resolutions, active.document, active.version, population)
