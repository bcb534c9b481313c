"""The outbox worker, and the polling thread every background worker of the service uses."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

from app.propagation import service
from app.runtime import register_worker

if TYPE_CHECKING:
    from app.runtime import Runtime

__all__ = ["PollingWorker", "outbox_worker"]

log = logging.getLogger("scoregate.workers")


class PollingWorker:
    """A daemon thread that calls ``step`` until stopped.

    ``step`` returns how much it did; after a step that did something the next follows at once,
    after an idle one the thread sleeps ``interval`` (or until :meth:`wake`). A step that raises
    is logged and retried after the interval: a worker never dies of one bad poll.
    """

    def __init__(self, name: str, interval: timedelta, step: Callable[[], int]) -> None:
        self.name = name
        self._interval = interval.total_seconds()
        self._step = step
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Poll now rather than after the interval (new work was just committed)."""
        self._wake.set()

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the thread to finish its current step and stop; wait up to ``timeout``."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            done = 0
            try:
                done = self._step()
            except Exception:
                log.exception("worker.step.error", extra={"worker": self.name})
            if done == 0 and not self._stop.is_set():
                self._wake.wait(self._interval)
                self._wake.clear()


@register_worker
def outbox_worker(runtime: Runtime) -> PollingWorker | None:
    """The thread that delivers queued erasures (``None`` when the settings switch it off)."""
    settings = runtime.settings.propagation
    if not settings.worker:
        return None

    def step() -> int:
        return service.deliver_due(runtime.sessions, runtime.connectors.use, settings).claimed

    return PollingWorker("scoregate-outbox", settings.poll_interval, step)
