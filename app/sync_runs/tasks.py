"""The sync worker: a thread of the service (or of ``scoregate worker``) that claims queued runs
from the database and executes them one at a time."""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING

from app.propagation.tasks import PollingWorker
from app.runtime import register_worker
from app.sync_runs import service

if TYPE_CHECKING:
    from app.runtime import Runtime

__all__ = ["sync_worker", "wake_sync_workers"]

WORKER_NAME = "scoregate-sync"


def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@register_worker
def sync_worker(runtime: Runtime) -> PollingWorker | None:
    """Claims and executes one run per step (``None`` when the settings switch it off)."""
    settings = runtime.settings.sync
    if not settings.worker:
        return None
    worker_id = _worker_id()

    def step() -> int:
        run_id = service.claim_next(runtime, worker_id)
        if run_id is None:
            return 0
        service.execute(runtime, run_id)
        return 1

    return PollingWorker(WORKER_NAME, settings.poll_interval, step)


def wake_sync_workers(runtime: Runtime) -> None:
    """Have this process's sync worker look for runs now (other processes poll)."""
    for worker in runtime.workers:
        if isinstance(worker, PollingWorker) and worker.name == WORKER_NAME:
            worker.wake()
