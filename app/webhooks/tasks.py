"""The webhook worker: processes stored Mailchimp events in the background."""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.propagation.tasks import PollingWorker
from app.runtime import register_worker
from app.webhooks import service

if TYPE_CHECKING:
    from app.runtime import Runtime

__all__ = ["wake_webhook_workers", "webhook_worker"]

WORKER_NAME = "scoregate-webhooks"


@register_worker
def webhook_worker(runtime: Runtime) -> PollingWorker | None:
    """``None`` when switched off or when no Mailchimp webhook is configured."""
    settings = runtime.settings.mailchimp_webhook
    if not settings.worker or settings.token is None:
        return None
    return PollingWorker(WORKER_NAME, settings.poll_interval, lambda: service.process_due(runtime))


def wake_webhook_workers(runtime: Runtime) -> None:
    """Have this process's webhook worker look for events now."""
    for worker in runtime.workers:
        if isinstance(worker, PollingWorker) and worker.name == WORKER_NAME:
            worker.wake()
