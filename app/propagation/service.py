"""Opt-out propagation: a durable outbox of erasures owed to connected CRMs and lists.

``queue_erasures`` runs inside the opt-out's own transaction (``app.opt_outs.service.record_keys``
calls it), so an opt-out is never committed without its erasures, and a crash before delivery
loses nothing: the rows wait in ``outbox_erasure`` for whichever worker runs next. An erasure is a
:class:`~connectors.downstream.ScoreWrite` with status ``opted_out`` and every score field blank.

Delivery (``deliver_due``) claims due rows with a lease, writes them per connector in batches,
and settles each: ``delivered``; ``failed`` when the system refused that record for good (e.g. the
member left the list); otherwise ``pending`` again after an exponential backoff.

This module imports neither the runtime nor the lookup service (the opt-out service imports it).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Collection, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from app.config import PropagationSettings
from app.models import ErasureState, OptOutSource, OutboxErasure, utcnow
from app.propagation import repository
from connectors.downstream import DownstreamConnector, ScoreWrite, WriteReport
from connectors.errors import UpstreamError
from policies.status import Status

__all__ = [
    "ERASURE_EXPLANATION",
    "DeliveryReport",
    "ErasureView",
    "SystemStatus",
    "deliver_due",
    "erasure_write",
    "queue_erasures",
    "status_by_keys",
    "status_listing",
    "system_counts",
]

log = logging.getLogger("scoregate.propagation")

#: written to a record's explanation field when its scores are erased
ERASURE_EXPLANATION = (
    "This person has chosen not to be scored; no score is kept or written for them."
)

OpenConnector = Callable[[str], AbstractContextManager[DownstreamConnector]]


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    claimed: int
    delivered: int
    failed: int
    retrying: int


@dataclass(frozen=True, slots=True)
class ErasureView:
    """One erasure as ``GET /v1/opt-outs/status`` shows it (no identity, only its key)."""

    id: int
    connector: str
    record_id: str
    identity_key: str
    source: str
    state: ErasureState
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class SystemStatus:
    connector: str
    pending: int
    delivered: int
    failed: int


def erasure_write(record_id: str, at: datetime) -> ScoreWrite:
    """The write that erases one record's scores: status ``opted_out``, every score field blank."""
    return ScoreWrite(
        record_id=record_id,
        status=Status.OPTED_OUT.value,
        score=None,
        effective_score=None,
        segment=None,
        explanation=ERASURE_EXPLANATION,
        policy="",
        evaluated_at=at,
    )


def queue_erasures(session: Session, keys: Collection[str], *, source: OptOutSource) -> int:
    """Queue an erasure for every linked record of these identity keys; the caller commits.

    A record that already has a pending erasure gets no second one. Returns how many were queued.
    """
    links = repository.links_for_keys(session, keys)
    if not links:
        return 0
    first_key: dict[tuple[str, str], str] = {}
    for link in links:
        first_key.setdefault((link.connector, link.record_id), link.identity_key)
    already = repository.pending_pairs(session, first_key.keys())
    now = utcnow()
    rows = [
        OutboxErasure(
            connector=connector,
            record_id=record_id,
            identity_key=key,
            source=source.value,
            state=ErasureState.PENDING,
            attempts=0,
            created_at=now,
            next_attempt_at=now,
        )
        for (connector, record_id), key in first_key.items()
        if (connector, record_id) not in already
    ]
    repository.add_erasures(session, rows)
    repository.forget_fingerprints(session, first_key.keys())
    if rows:
        log.info(
            "propagation.queue.ok",
            extra={"erasures": len(rows), "source": source.value, "identity_keys": list(keys)},
        )
    return len(rows)


def _backoff(attempts: int, settings: PropagationSettings) -> timedelta:
    initial = settings.backoff_initial.total_seconds()
    seconds = min(initial * 2 ** max(0, attempts - 1), settings.backoff_max.total_seconds())
    return timedelta(seconds=seconds)


def deliver_due(
    sessions: sessionmaker[Session],
    open_connector: OpenConnector,
    settings: PropagationSettings,
    *,
    limit: int = 1000,
) -> DeliveryReport:
    """Claim the due erasures, write them, settle each. Safe to run from several processes."""
    now = utcnow()
    with sessions() as session:
        claimed = repository.claim_due(
            session, now=now, lease_until=now + settings.lease, limit=limit
        )
        work = [(row.id, row.connector, row.record_id) for row in claimed]
        session.commit()
    if not work:
        return DeliveryReport(0, 0, 0, 0)
    by_connector: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for row_id, connector, record_id in work:
        by_connector[connector].append((row_id, record_id))
    outcomes: dict[int, tuple[ErasureState | None, str | None]] = {}
    for connector, items in by_connector.items():
        outcomes.update(_deliver_to(connector, items, open_connector, settings))
    delivered = failed = retrying = 0
    with sessions() as session:
        settled = utcnow()
        for row in repository.by_ids(session, list(outcomes)):
            state, error = outcomes[row.id]
            row.attempts += 1
            row.last_error = error
            if state is ErasureState.DELIVERED:
                row.state, row.delivered_at = ErasureState.DELIVERED, settled
                delivered += 1
            elif state is ErasureState.FAILED:
                row.state = ErasureState.FAILED
                failed += 1
            else:
                row.next_attempt_at = settled + _backoff(row.attempts, settings)
                retrying += 1
        session.commit()
    log.info(
        "propagation.deliver.ok",
        extra={"claimed": len(work), "delivered": delivered, "failed": failed, "retry": retrying},
    )
    return DeliveryReport(len(work), delivered, failed, retrying)


def _deliver_to(
    connector: str,
    items: Sequence[tuple[int, str]],
    open_connector: OpenConnector,
    settings: PropagationSettings,
) -> dict[int, tuple[ErasureState | None, str | None]]:
    """Write one connector's erasures; ``None`` as state means "try again later"."""
    outcomes: dict[int, tuple[ErasureState | None, str | None]] = {}
    try:
        with open_connector(connector) as target:
            size = min(settings.batch_size, target.max_batch)
            for start in range(0, len(items), size):
                chunk = items[start : start + size]
                now = utcnow()
                try:
                    report = target.write_results(
                        [erasure_write(record_id, now) for _, record_id in chunk]
                    )
                except UpstreamError as exc:
                    log.warning(
                        "propagation.deliver.retry",
                        extra={"connector": connector, "error_type": type(exc).__name__},
                    )
                    outcomes.update((row_id, (None, exc.message[:500])) for row_id, _ in chunk)
                    continue
                outcomes.update(_settle(chunk, report))
    except KeyError:
        message = f"no connector named {connector!r} is configured"
        outcomes.update((row_id, (ErasureState.FAILED, message)) for row_id, _ in items)
    return outcomes


def _settle(
    chunk: Sequence[tuple[int, str]], report: WriteReport
) -> dict[int, tuple[ErasureState | None, str | None]]:
    written = set(report.written)
    errors = {error.record_id: error for error in report.errors}
    outcomes: dict[int, tuple[ErasureState | None, str | None]] = {}
    for row_id, record_id in chunk:
        error = errors.get(record_id)
        if record_id in written and error is None:
            outcomes[row_id] = (ErasureState.DELIVERED, None)
        elif error is not None and not error.transient:
            outcomes[row_id] = (ErasureState.FAILED, f"{error.code}: {error.message}"[:500])
        else:
            message = "not confirmed by the connector" if error is None else error.message
            outcomes[row_id] = (None, message[:500])
    return outcomes


def _view(row: OutboxErasure) -> ErasureView:
    return ErasureView(
        id=row.id,
        connector=row.connector,
        record_id=row.record_id,
        identity_key=row.identity_key,
        source=row.source,
        state=ErasureState(row.state),
        attempts=row.attempts,
        created_at=row.created_at,
        next_attempt_at=row.next_attempt_at if row.state == ErasureState.PENDING else None,
        delivered_at=row.delivered_at,
        last_error=row.last_error,
    )


def status_by_keys(session: Session, keys: Collection[str]) -> list[ErasureView]:
    """Every erasure queued for these identity keys, oldest first."""
    return [_view(row) for row in repository.by_identity_keys(session, keys)]


def status_listing(
    session: Session, states: Collection[ErasureState], *, limit: int
) -> list[ErasureView]:
    return [_view(row) for row in repository.list_by_states(session, states, limit=limit)]


def system_counts(session: Session) -> list[SystemStatus]:
    """Per connected system: erasures pending, delivered and failed."""
    counts = repository.state_counts(session)
    names = sorted({connector for connector, _ in counts})
    return [
        SystemStatus(
            connector=name,
            pending=counts.get((name, ErasureState.PENDING.value), 0),
            delivered=counts.get((name, ErasureState.DELIVERED.value), 0),
            failed=counts.get((name, ErasureState.FAILED.value), 0),
        )
        for name in names
    ]
