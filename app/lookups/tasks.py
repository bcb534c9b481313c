"""Background fetches: misses that passed an interactive deadline are fetched anyway, so the
next lookup of that identity is served from the cache.

The queue lives in memory only, because its entries carry raw identities, which are never written
down; a restart drops what was queued (the next lookup queues it again).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from connectors.base import CallBudget, Priority
from connectors.errors import UpstreamError

__all__ = ["BackgroundFetcher"]

log = logging.getLogger("scoregate.lookups.tasks")


@dataclass(frozen=True, slots=True)
class _Job:
    upstream: str
    identity_key: str
    call: Callable[[CallBudget], object]


class BackgroundFetcher:
    """A bounded queue of fetches worked by a few daemon threads at ``webhook`` priority."""

    def __init__(self, threads: int = 2, max_queued: int = 10_000, max_wait: float = 600.0) -> None:
        self._queue: queue.Queue[_Job | None] = queue.Queue(maxsize=max_queued)
        self._pending: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._max_wait = max_wait
        self._threads = [
            threading.Thread(target=self._work, name=f"scoregate-fetch-{i}", daemon=True)
            for i in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def submit(
        self, upstream: str, identity_key: str, call: Callable[[CallBudget], object]
    ) -> bool:
        """Queue ``call`` (a gateway fetch or check) unless one for the same upstream and
        identity is queued already; ``False`` when the queue is full."""
        marker = (upstream, identity_key)
        with self._lock:
            if marker in self._pending:
                return True
            try:
                self._queue.put_nowait(_Job(upstream, identity_key, call))
            except queue.Full:
                log.warning("lookup.background.dropped", extra={"provider": upstream})
                return False
            self._pending.add(marker)
        return True

    def queued(self) -> int:
        with self._lock:
            return len(self._pending)

    def join(self, timeout: float = 30.0) -> bool:
        """Wait until the queue is empty (tests and shutdown); ``False`` on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.queued() == 0:
                return True
            time.sleep(0.01)
        return False

    def stop(self) -> None:
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout=5)

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            budget = CallBudget(Priority.WEBHOOK, time.monotonic() + self._max_wait)
            try:
                job.call(budget)
                log.info(
                    "lookup.background.ok",
                    extra={"provider": job.upstream, "identity_key": job.identity_key},
                )
            except UpstreamError as exc:
                log.info(
                    "lookup.background.failed",
                    extra={
                        "provider": job.upstream,
                        "identity_key": job.identity_key,
                        "error_type": type(exc).__name__,
                    },
                )
            except Exception:
                log.exception("lookup.background.error", extra={"provider": job.upstream})
            finally:
                with self._lock:
                    self._pending.discard((job.upstream, job.identity_key))
