"""Answer cache contract and in-flight coalescing.

The store itself belongs to the service (it lives in the database, so an opt-out can erase it in
the same transaction that records the opt-out); the gateway only needs :class:`AnswerStore`.
:class:`Coalescer` makes concurrent lookups of one identity share one upstream call, across the
threads of one process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar

__all__ = ["AnswerStore", "Coalescer", "StoredAnswer"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    """A cached upstream answer: ``kind`` is an AnswerKind value or ``exists``/``missing``."""

    kind: str
    fact: str
    score: float | None
    fetched_at: datetime
    expires_at: datetime


class AnswerStore(Protocol):
    """Where answers are cached, keyed by ``(namespace, identity key)``."""

    def get_many(
        self, namespace: str, keys: Sequence[str], now: datetime
    ) -> dict[str, StoredAnswer]:
        """Unexpired answers for those keys."""
        ...

    def put(self, namespace: str, key: str, answer: StoredAnswer) -> bool:
        """Store an answer; ``False`` when refused (the identity opted out meanwhile)."""
        ...


class Coalescer:
    """Runs one call per key at a time; concurrent callers of the same key share its outcome."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inflight: dict[str, Future[object]] = {}

    def run(self, key: str, call: Callable[[], T], wait: float | None = None) -> tuple[T, bool]:
        """Return ``(result, shared)``; ``shared`` is true when another caller made the call.

        Exceptions of the call reach every caller waiting on it. A follower waits at most
        ``wait`` seconds (``None``: as long as it takes) and then gets ``TimeoutError``, while the
        call itself goes on for the others.
        """
        with self._lock:
            future = self._inflight.get(key)
            leader = future is None
            if future is None:
                future = Future()
                self._inflight[key] = future
        if not leader:
            return future.result(timeout=wait), True  # type: ignore[return-value]
        try:
            result = call()
        except BaseException as exc:
            future.set_exception(exc)
            raise
        else:
            future.set_result(result)
            return result, False
        finally:
            with self._lock:
                self._inflight.pop(key, None)

    def inflight(self) -> int:
        with self._lock:
            return len(self._inflight)
