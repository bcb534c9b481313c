"""Sync runs: read a CRM's changed records, resolve and score them, write the results back.

A run is a row in ``sync_run``; the queue carries nothing but its id. A worker claims it, reads the
records changed since the connector's watermark, and works them in batches of the connector's
``max_batch``. Each batch, in order:

1. Records whose inputs (identity keys and do-not-score flag, under the same policy) are what they
   were at their last successful write are skipped: our own writes change the records' modification
   stamps, so every incremental read returns what the previous run wrote.
2. A do-not-score flag is recorded as an opt-out (source: the CRM) and committed before anything
   else, so no later failure can lose it; such records are ``opted_out`` without any provider call.
3. The others are resolved at ``bulk`` priority (``app.lookups.service.resolve``) and the policy
   applied (``to_results``). An opted-out record gets the erasure (every score field blank); an
   unscored one a blank score, never 0.
4. The batch is written (not in a dry run). Per-record refusals are kept in ``sync_record_error``
   with the write itself (it holds no identity) and sent again at the start of the next run.
5. In one transaction: contact links (identity keys only), errors, the run's counters and the
   watermark (the batch's newest modification stamp). A crash loses at most the batch in flight;
   the next run starts from the last committed batch, and re-reading a record is harmless
   (writes are upserts by record id).

A whole-call failure of the connector (``UpstreamError``) ends the run ``failed`` with the
watermark where the last committed batch left it.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from app.errors import Conflict, InvalidRequest, NotFound, ScoregateError
from app.identities import Identity, IdentityError
from app.lookups import service as lookups
from app.lookups.schemas import ContactIn, ContactResult, Evidence
from app.models import OptOutSource, SyncRecordError, SyncRun, SyncRunState, utcnow
from app.opt_outs import service as opt_outs
from app.policy_versions import service as policy_versions
from app.propagation import service as propagation
from app.sync_runs import repository
from connectors.base import Priority
from connectors.downstream import CrmRecord, DownstreamConnector, ScoreWrite, WriteReport
from connectors.errors import UpstreamError
from connectors.gateway import ProviderGateway
from policies.model import PolicyDocument
from policies.status import Status

if TYPE_CHECKING:
    from app.runtime import Runtime

__all__ = [
    "PolicyChoice",
    "choose_policy",
    "claim_next",
    "execute",
    "get_run",
    "list_runs",
    "opt_out_source",
    "record_errors",
    "run_now",
    "start_run",
]

log = logging.getLogger("scoregate.sync")

_SOURCES = {
    "salesforce": OptOutSource.SALESFORCE,
    "zoho": OptOutSource.ZOHO,
    "mailchimp": OptOutSource.MAILCHIMP,
}

Progress = Callable[[SyncRun], None]


def opt_out_source(kind: str) -> OptOutSource:
    """The registry source of an opt-out read from a connector of this kind."""
    return _SOURCES[kind]


@dataclass(frozen=True, slots=True)
class PolicyChoice:
    """The policy a run applies, with the gateway of its provider."""

    doc: PolicyDocument
    version: int
    gateway: ProviderGateway

    @property
    def label(self) -> str:
        """``name vN``, the form written to CRM policy fields."""
        return f"{self.doc.name} v{self.version}"


def choose_policy(session: Session, runtime: Runtime) -> PolicyChoice:
    """The policy sync runs and webhooks apply: the active version of ``[sync] policy``, or of
    the default policy, chosen as ``POST /v1/lookups`` chooses it."""
    active = policy_versions.active_policy(
        session,
        list(runtime.providers.providers),
        runtime.providers.default,
        runtime.settings.sync.policy,
    )
    gateway = runtime.providers.gateway(active.document.provider)
    return PolicyChoice(active.document, active.version, gateway)


# ----- the API side ---------------------------------------------------------------------------


def start_run(
    session: Session,
    runtime: Runtime,
    *,
    connector: str,
    dry_run: bool,
    actor: str,
    claim_as: str | None = None,
) -> SyncRun:
    """Queue a run and commit. One queued or running run per connector at a time.

    With ``claim_as`` the run is created already claimed by that worker (the CLI runs it in its
    own process, and no other worker may take it in between).
    """
    if connector not in runtime.connectors.configs:
        raise InvalidRequest(
            f"no connector named {connector!r} is configured",
            code="connector_not_found",
            field="connector",
        )
    active = repository.active_run(session, connector)
    if active is not None:
        raise Conflict(
            f"sync run {active.id} of {connector} is {active.state}",
            code="sync_run_active",
            run_id=active.id,
        )
    run = repository.add_run(
        session,
        SyncRun(
            connector=connector,
            dry_run=dry_run,
            state=SyncRunState.QUEUED if claim_as is None else SyncRunState.RUNNING,
            worker=claim_as,
            heartbeat_at=None if claim_as is None else utcnow(),
            actor=actor,
            created_at=utcnow(),
            counts={},
        ),
    )
    session.commit()
    log.info("sync.run.queued", extra={"run_id": run.id, "connector": connector})
    return run


def get_run(session: Session, run_id: int) -> SyncRun:
    run = repository.get_run(session, run_id)
    if run is None:
        raise NotFound(f"no sync run {run_id}", code="sync_run_not_found", run_id=run_id)
    return run


def list_runs(
    session: Session, *, connector: str | None, before_id: int | None, limit: int
) -> list[SyncRun]:
    return repository.list_runs(session, connector=connector, before_id=before_id, limit=limit)


def record_errors(session: Session, run_id: int, *, limit: int = 100) -> list[SyncRecordError]:
    """The per-record errors last seen by this run and not yet resolved."""
    return repository.errors_of_run(session, run_id, limit=limit)


# ----- the worker side ------------------------------------------------------------------------


def claim_next(runtime: Runtime, worker: str) -> int | None:
    """Claim the oldest queued (or abandoned) run for ``worker``; ``None`` when there is none."""
    now = utcnow()
    stale_before = now - runtime.settings.sync.stale_after
    with runtime.sessions() as session:
        run_id = repository.next_claimable(session, stale_before)
        if run_id is None:
            return None
        won = repository.claim(session, run_id, worker=worker, now=now, stale_before=stale_before)
        session.commit()
    return run_id if won else None


def run_now(
    runtime: Runtime,
    connector: str,
    *,
    dry_run: bool,
    actor: str,
    progress: Progress | None = None,
) -> SyncRun:
    """Queue a run, claim it and execute it in this thread (the CLI's ``sync run``)."""
    with runtime.sessions() as session:
        run = start_run(
            session, runtime, connector=connector, dry_run=dry_run, actor=actor, claim_as=actor
        )
    return execute(runtime, run.id, progress=progress)


def execute(runtime: Runtime, run_id: int, *, progress: Progress | None = None) -> SyncRun:
    """Work one claimed run to its end; returns the finished run. Never raises for upstream
    failures: they end the run ``failed`` with a message."""
    with runtime.sessions() as session:
        run = get_run(session, run_id)
        connector_name, dry_run = run.connector, run.dry_run
        since = repository.watermark(session, connector_name)
        if run.started_at is None:
            run.started_at, run.since = utcnow(), since
        session.commit()
    log.info(
        "sync.run.started",
        extra={"run_id": run_id, "connector": connector_name, "dry_run": dry_run},
    )
    state, message = SyncRunState.SUCCEEDED, None
    try:
        with (
            _heartbeat(runtime, run_id),
            runtime.connectors.use(connector_name) as connector,
        ):
            batch = _Batcher(runtime, run_id, connector_name, connector, dry_run, progress)
            if not dry_run:
                batch.retry_errors()
            # pages are gathered up to the connector's batch size: a Salesforce read page
            # (2,000) is below its Bulk API threshold, a whole batch is not
            size = max(1, connector.max_batch)
            pending: list[CrmRecord] = []
            for page in connector.read_changed(since):
                pending.extend(page)
                while len(pending) >= size:
                    batch.process(pending[:size])
                    pending = pending[size:]
            if pending:
                batch.process(pending)
    except KeyError:
        state, message = SyncRunState.FAILED, f"connector {connector_name!r} is not configured"
    except ScoregateError as exc:
        state, message = SyncRunState.FAILED, exc.message
    except UpstreamError as exc:
        state, message = SyncRunState.FAILED, f"{type(exc).__name__}: {exc.message}"
        log.warning(
            "sync.run.failed",
            extra={"run_id": run_id, "connector": connector_name, "error_type": type(exc).__name__},
        )
    except Exception as exc:
        state, message = SyncRunState.FAILED, f"internal error ({type(exc).__name__})"
        log.exception("sync.run.error", extra={"run_id": run_id, "connector": connector_name})
    with runtime.sessions() as session:
        run = get_run(session, run_id)
        run.state, run.message, run.finished_at = state, message, utcnow()
        session.commit()
    if progress is not None:
        progress(run)
    log.info(
        "sync.run.finished",
        extra={
            "run_id": run_id,
            "connector": connector_name,
            "state": str(state),
            "read": run.read,
            "written": run.written,
            "errors": run.errors,
        },
    )
    return run


@contextmanager
def _heartbeat(runtime: Runtime, run_id: int) -> Iterator[None]:
    """Show life while a run works, so a long batch is not taken for an abandoned run."""
    stop = threading.Event()
    interval = max(0.5, runtime.settings.sync.stale_after.total_seconds() / 4)

    def beat() -> None:
        while not stop.wait(interval):
            try:
                with runtime.sessions() as session:
                    repository.touch(session, run_id, utcnow())
                    session.commit()
            except Exception:
                log.exception("sync.heartbeat.error", extra={"run_id": run_id})

    thread = threading.Thread(target=beat, name=f"scoregate-sync-beat-{run_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


@dataclass(slots=True)
class _Prepared:
    record: CrmRecord
    identities: list[Identity]
    malformed: list[IdentityError]
    fingerprint: str

    @property
    def keys(self) -> list[str]:
        return [identity.key for identity in self.identities]


@dataclass(slots=True)
class _Tally:
    read: int = 0
    skipped: int = 0
    written: int = 0
    errors: int = 0
    retried: int = 0
    api_calls: int = 0
    counts: Counter[str] = field(default_factory=Counter)


class _Batcher:
    """Works the batches of one run (see the module docstring for the steps)."""

    def __init__(
        self,
        runtime: Runtime,
        run_id: int,
        connector_name: str,
        connector: DownstreamConnector,
        dry_run: bool,
        progress: Progress | None,
    ) -> None:
        self.runtime = runtime
        self.run_id = run_id
        self.name = connector_name
        self.connector = connector
        self.dry_run = dry_run
        self.progress = progress
        self.source = opt_out_source(runtime.connectors.kind(connector_name))
        with runtime.sessions() as session:
            self.policy = choose_policy(session, runtime)
        self.actor = f"sync run {run_id}"
        self.deadline = runtime.settings.sync.resolve_deadline.total_seconds()

    # -- retry of last run's refused records ---------------------------------------------------

    def retry_errors(self) -> None:
        """Send again the writes the connector refused before; an opted-out person's pending
        write becomes the erasure."""
        limit = max(self.connector.max_batch, 1)
        seen: set[str] = set()
        while True:
            with self.runtime.sessions() as session:
                rows = [
                    row
                    for row in repository.errors_for(session, self.name, limit=limit + len(seen))
                    if row.record_id not in seen
                ][:limit]
                if not rows:
                    return
                ids = [row.record_id for row in rows]
                keys = repository.keys_of_records(session, self.name, ids)
                opted = opt_outs.registry_entries(session, {k for ks in keys.values() for k in ks})
            now = utcnow()
            writes = [
                propagation.erasure_write(row.record_id, now)
                if any(key in opted for key in keys.get(row.record_id, []))
                else _stored_write(row)
                for row in rows
            ]
            seen.update(ids)
            report = self.connector.write_results(writes)
            with self.runtime.sessions() as session:
                repository.delete_errors(session, self.name, report.written)
                repository.upsert_errors(session, self.name, self._error_rows(report, writes, now))
                run = get_run(session, self.run_id)
                run.retried += len(writes)
                run.written += len(report.written)
                run.api_calls += report.api_calls
                session.commit()
            log.info(
                "sync.retry.ok",
                extra={"run_id": self.run_id, "retried": len(writes), "ok": len(report.written)},
            )

    # -- one batch -----------------------------------------------------------------------------

    def process(self, records: Sequence[CrmRecord]) -> None:
        if not records:
            return
        prepared = [self._prepare(record) for record in records]
        tally = _Tally(read=len(records))
        with self.runtime.sessions() as session:
            stored = repository.fingerprints(session, self.name, [p.record.id for p in prepared])
            todo = [p for p in prepared if stored.get(p.record.id) != p.fingerprint]
            tally.skipped = len(prepared) - len(todo)
            if not self.dry_run:
                self._record_flags(session, [p for p in todo if p.record.do_not_score])
            results = self._results(session, todo)
            session.commit()
        now = utcnow()
        writes = [self._write(result, now) for result in results]
        tally.counts.update(str(result.status) for result in results)
        report = WriteReport()
        if writes and not self.dry_run:
            report = self.connector.write_results(writes)
        tally.written, tally.errors = len(report.written), len(report.errors)
        tally.api_calls = report.api_calls
        with self.runtime.sessions() as session:
            if not self.dry_run:
                self._commit_batch(session, todo, results, writes, report, now)
                newest = max(record.modified_at for record in records)
                repository.set_watermark(session, self.name, newest, run_id=self.run_id, now=now)
            run = self._count(session, tally, now)
            session.commit()
        if self.progress is not None:
            self.progress(run)

    def _prepare(self, record: CrmRecord) -> _Prepared:
        identities: list[Identity] = []
        malformed: list[IdentityError] = []
        for kind, value in record.identities.items():
            try:
                identities.append(self.runtime.keyer.identity(kind, value))
            except IdentityError as exc:
                malformed.append(exc)
        parts = sorted(identity.key for identity in identities)
        parts += sorted(f"malformed:{error.kind}" for error in malformed)
        parts += [f"do_not_score:{record.do_not_score}", f"policy:{self.policy.label}"]
        fingerprint = hashlib.sha256("|".join(parts).encode()).hexdigest()
        return _Prepared(record, identities, malformed, fingerprint)

    def _record_flags(self, session: Session, flagged: Sequence[_Prepared]) -> None:
        """Record the CRM's do-not-score flags as opt-outs (new keys only) and commit them."""
        keys = {key for item in flagged for key in item.keys}
        known = set(opt_outs.registry_entries(session, keys))
        for item in flagged:
            new = [key for key in item.keys if key not in known]
            if new:
                opt_outs.record_keys(
                    session,
                    self.runtime.populations,
                    new,
                    source=self.source,
                    actor=self.actor,
                    note=f"do-not-score flag on a {self.name} record",
                )
                known.update(new)
        session.commit()

    def _results(self, session: Session, todo: Sequence[_Prepared]) -> list[ContactResult]:
        """Resolve and evaluate, in the batch's order."""
        resolutions: dict[str, lookups.Resolution] = {}
        to_resolve: list[ContactIn] = []
        for item in todo:
            record = item.record
            if record.do_not_score:
                resolution = lookups.Resolution(record.id, item.identities, item.malformed)
                resolution.settle(
                    Status.OPTED_OUT, self.name, "the record's do-not-score flag is set"
                )
                resolution.evidence.append(
                    Evidence(source="scoregate", fact="no provider was asked about this person")
                )
                resolutions[record.id] = resolution
            elif not record.identities:
                resolution = lookups.Resolution(record.id, [], [])
                resolution.settle(
                    Status.NOT_FOUND, "scoregate", "the record has no identity to look up"
                )
                resolutions[record.id] = resolution
            else:
                # CRM data is taken as it is: a malformed value becomes not_found, not an error
                to_resolve.append(
                    ContactIn.model_construct(id=record.id, identities=dict(record.identities))
                )
        if to_resolve:
            for resolution in lookups.resolve(
                session,
                self.runtime,
                to_resolve,
                gateway=self.policy.gateway,
                deadline_seconds=self.deadline,
                priority=Priority.BULK,
                actor=self.actor,
            ):
                resolutions[resolution.id] = resolution
        ordered = [resolutions[item.record.id] for item in todo]
        population = self.runtime.populations.get(self.policy.gateway.name)
        return lookups.to_results(ordered, self.policy.doc, self.policy.version, population)

    def _write(self, result: ContactResult, now: datetime) -> ScoreWrite:
        if result.status is Status.OPTED_OUT:
            return propagation.erasure_write(result.id, now)
        return ScoreWrite(
            record_id=result.id,
            status=result.status.value,
            score=result.score if result.status is Status.SCORED else None,
            effective_score=result.effective_score,
            segment=result.segment,
            explanation=result.explanation,
            policy=self.policy.label,
            evaluated_at=now,
        )

    def _commit_batch(
        self,
        session: Session,
        todo: Sequence[_Prepared],
        results: Sequence[ContactResult],
        writes: Sequence[ScoreWrite],
        report: WriteReport,
        now: datetime,
    ) -> None:
        written = set(report.written)
        failed = {error.record_id for error in report.errors}
        links: dict[str, tuple[list[str], str, str | None]] = {}
        for item, result in zip(todo, results, strict=True):
            record_id = item.record.id
            # only a landed, final answer is remembered; unavailable ones are tried again
            final = record_id in written and record_id not in failed
            final = final and result.status is not Status.UNAVAILABLE
            links[record_id] = (item.keys, item.fingerprint if final else "", str(result.status))
        repository.replace_links(session, self.name, links, now)
        repository.delete_errors(session, self.name, written - failed)
        repository.upsert_errors(session, self.name, self._error_rows(report, writes, now))
        session.flush()
        # an opt-out that arrived while this batch was being scored: erase what was just written
        scored_keys = {
            key
            for item, result in zip(todo, results, strict=True)
            if result.status is not Status.OPTED_OUT
            for key in item.keys
        }
        late = opt_outs.registry_entries(session, scored_keys)
        if late:
            propagation.queue_erasures(session, list(late), source=OptOutSource.API)

    def _error_rows(
        self, report: WriteReport, writes: Sequence[ScoreWrite], now: datetime
    ) -> list[SyncRecordError]:
        by_id = {write.record_id: write for write in writes}
        rows = []
        for error in report.errors:
            write = by_id.get(error.record_id)
            if write is None:
                continue
            rows.append(
                SyncRecordError(
                    connector=self.name,
                    record_id=error.record_id,
                    run_id=self.run_id,
                    code=error.code[:120],
                    message=error.message[:500],
                    transient=error.transient,
                    attempts=1,
                    first_seen_at=now,
                    last_seen_at=now,
                    status=write.status,
                    score=write.score,
                    effective_score=write.effective_score,
                    segment=write.segment,
                    explanation=write.explanation[:500],
                    policy=write.policy[:120],
                    evaluated_at=write.evaluated_at,
                )
            )
        return rows

    def _count(self, session: Session, tally: _Tally, now: datetime) -> SyncRun:
        run = get_run(session, self.run_id)
        run.read += tally.read
        run.skipped += tally.skipped
        run.written += tally.written
        run.errors += tally.errors
        run.api_calls += tally.api_calls
        run.batches += 1
        run.heartbeat_at = now
        merged = Counter(run.counts)
        merged.update(tally.counts)
        run.counts = dict(merged)
        return run


def _stored_write(row: SyncRecordError) -> ScoreWrite:
    return ScoreWrite(
        record_id=row.record_id,
        status=row.status,
        score=row.score,
        effective_score=row.effective_score,
        segment=row.segment,
        explanation=row.explanation,
        policy=row.policy,
        evaluated_at=row.evaluated_at,
    )
