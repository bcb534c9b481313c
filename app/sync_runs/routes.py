"""``/v1/sync-runs``: start a run (queued for a worker), list runs, one run with its errors."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.deps import RuntimeDep, SessionDep, SyncKeyDep
from app.errors import (
    Conflict,
    Forbidden,
    InvalidRequest,
    NotAuthenticated,
    NotFound,
    responses_for,
)
from app.sync_runs import service
from app.sync_runs.schemas import (
    RecordErrorOut,
    SyncRunDetail,
    SyncRunList,
    SyncRunOut,
    SyncRunRequest,
)
from app.sync_runs.tasks import wake_sync_workers

__all__ = ["router"]

router = APIRouter(prefix="/v1/sync-runs", tags=["sync-runs"])


@router.post(
    "",
    status_code=202,
    responses=responses_for(NotAuthenticated, Forbidden, InvalidRequest, Conflict),
)
def start_sync_run(
    body: SyncRunRequest, session: SessionDep, runtime: RuntimeDep, key: SyncKeyDep
) -> SyncRunOut:
    """Queue a run of one connector; a worker picks it up. 409 while one is queued or running."""
    run = service.start_run(
        session,
        runtime,
        connector=body.connector,
        dry_run=body.dry_run,
        actor=f"key:{key.id} ({key.name})",
    )
    wake_sync_workers(runtime)
    return SyncRunOut.of(run)


@router.get("", status_code=200, responses=responses_for(NotAuthenticated, Forbidden))
def list_sync_runs(
    session: SessionDep,
    _key: SyncKeyDep,
    connector: Annotated[str | None, Query(max_length=64)] = None,
    before_id: Annotated[int | None, Query(ge=1, description="page: runs older than this")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> SyncRunList:
    """Runs, newest first."""
    runs = service.list_runs(session, connector=connector, before_id=before_id, limit=limit)
    return SyncRunList(runs=[SyncRunOut.of(run) for run in runs])


@router.get(
    "/{run_id}", status_code=200, responses=responses_for(NotAuthenticated, Forbidden, NotFound)
)
def get_sync_run(run_id: int, session: SessionDep, _key: SyncKeyDep) -> SyncRunDetail:
    """One run: state, counts by status, progress, and the records refused in it."""
    run = service.get_run(session, run_id)
    errors = service.record_errors(session, run_id)
    return SyncRunDetail(
        **SyncRunOut.of(run).model_dump(), record_errors=[RecordErrorOut.of(e) for e in errors]
    )
