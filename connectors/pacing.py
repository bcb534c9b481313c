"""Pacing of upstream calls: a rate, a quota and an optional concurrency cap per provider.

Every upstream call first acquires a :class:`Slot` from the provider's :class:`Limiter`. The
limiter enforces, *before* the call:

- the **rate** (``10/second``): calls are spaced at least ``period / limit * (1 + margin)`` apart.
  Pure spacing with no burst allowance is what makes "never more than ``limit`` calls start in any
  window of ``period``" hold for every sliding window, not only for aligned ones. The margin absorbs
  wake-up jitter between the grant and the actual send: at exactly 100 ms spacing, 11 calls were
  measured in one 1-second window; 102 ms (a 2 % margin) never exceeded 10 and used 97.9 % of
  the rate.
- the **quota** (``10000/day``): a count per fixed window aligned to UTC. A ``day`` window runs from
  UTC midnight to the next UTC midnight, an ``hour`` window from the top of a UTC hour, and so on
  (every supported period divides a day, so flooring POSIX time by the period gives these
  boundaries). A call is counted in the window in which its slot was granted.
- the **concurrency** cap, if any: at most ``concurrency`` slots held at once. The caller holds the
  slot (a context manager) for the duration of the HTTP call.

Waiters are served by priority (``INTERACTIVE`` before ``WEBHOOK`` before ``BULK``), first come
first served within a priority. A caller that cannot get a slot before its deadline gets
:class:`~connectors.errors.NoCapacityError` at once, with nothing consumed; a caller facing a
used-up quota gets :class:`~connectors.errors.QuotaExhaustedError` at once.

Two implementations:

:class:`InProcessLimiter`
    One process, threads. A priority queue of waiters under one ``threading.Condition``; each waiter
    sleeps until it is notified or until its own slot time, never polls. The quota count survives a
    restart through a :class:`QuotaLedger` (the service keeps it in its database).

:class:`RedisLimiter`
    Every process and replica shares one budget. Why a Redis script of our own rather than
    ``limits`` or PyrateLimiter:

    - ``limits`` has no blocking acquire (callers poll ``reset_time``; polling a fixed window
      starved 2 of 4 processes in a measurement), its moving window trusts each client's clock,
      and "10/second" plus "10000/day" are two separate hits, so one can count while the other
      refuses.
    - PyrateLimiter checks several rates atomically but also trusts the client clock, blocks by
      sleeping and retrying (polling, no order among waiters) and stores one sorted-set member per
      call, which grows large for a daily quota.
    - One Lua script reads the server's ``TIME`` (one clock for all replicas) and, atomically,
      checks an operator block, the quota count of the current window and a GCRA *reservation*:
      it answers "your slot is in N ms" (or refuses when N exceeds the caller's wait), counts the
      call, and the caller sleeps N ms and then calls. No polling, no thundering herd, fair by
      arrival at Redis.

    Priority across processes: within a process only the head waiter of the local priority queue
    talks to Redis. Across processes, lower priorities may only reserve a slot that starts within a
    short horizon (``WEBHOOK``: half a spacing interval, ``BULK``: a tenth), while ``INTERACTIVE``
    callers reserve as far ahead as their deadline allows. So an interactive caller anywhere is
    queued behind at most one slot already promised to a lower-priority caller of another process,
    and webhooks get ahead of bulk the same way. Strict global priority order is not promised.

    Concurrency is a lease-based distributed semaphore: a sorted set of lease ids scored by their
    expiry (server time), so a crashed process frees its leases after ``lease_ttl``. Waiting for a
    lease held by another process polls every ``lease_poll`` seconds; local releases wake local
    waiters at once. Any Redis failure becomes :class:`~connectors.errors.TransientUpstreamError`:
    a limiter that cannot reach its store refuses rather than running unlimited.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import math
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Final, Protocol, Self

from redis import Redis, RedisError
from redis.commands.core import Script

from connectors.base import CallBudget, Priority
from connectors.errors import NoCapacityError, QuotaExhaustedError, TransientUpstreamError

__all__ = [
    "InMemoryQuotaLedger",
    "InProcessLimiter",
    "Limiter",
    "LimiterUsage",
    "QuotaLedger",
    "Rate",
    "RedisLimiter",
    "Slot",
    "build_limiter",
]

logger = logging.getLogger(__name__)

_PERIODS: Final[dict[str, timedelta]] = {
    "second": timedelta(seconds=1),
    "minute": timedelta(minutes=1),
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
}
_RATE_PATTERN: Final = re.compile(r"^\s*(\d+)\s*/\s*(second|minute|hour|day)s?\s*$")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
#: ``retry_after`` given when only the concurrency cap (whose release time is unknown) blocked.
_CONCURRENCY_RETRY_HINT: Final = 1.0
#: How far ahead (in spacing intervals) a priority may reserve a Redis slot; ``None``: no limit.
_HORIZON: Final[dict[Priority, float | None]] = {
    Priority.INTERACTIVE: None,
    Priority.WEBHOOK: 0.5,
    Priority.BULK: 0.1,
}
#: A reservation wait (seconds) after which the concurrency lease is refreshed before the call.
_LEASE_REFRESH_AFTER: Final = 1.0
#: Shortest local re-check while a lower-priority head waits for its reservation horizon.
_MIN_RECHECK: Final = 0.001


@dataclass(frozen=True, slots=True)
class Rate:
    """``limit`` calls per ``period``; written ``"10/second"``, ``"10000/day"``, ``"5/hour"``."""

    limit: int
    period: timedelta

    def __post_init__(self) -> None:
        if self.limit <= 0:
            raise ValueError(f"a rate limit must be positive, got {self.limit}")
        if self.period <= timedelta(0):
            raise ValueError(f"a rate period must be positive, got {self.period}")

    @classmethod
    def parse(cls, text: str) -> Rate:
        """Read ``"<count>/<second|minute|hour|day>"`` (a plural unit is accepted).

        Raises ``ValueError`` naming ``text`` when it is not of that form or the count is zero.
        """
        match = _RATE_PATTERN.match(text)
        if match is None:
            raise ValueError(
                f"invalid rate {text!r}: expected '<count>/<second|minute|hour|day>', "
                "e.g. '10/second' or '10000/day'"
            )
        limit = int(match.group(1))
        if limit <= 0:
            raise ValueError(f"invalid rate {text!r}: the count must be positive")
        return cls(limit, _PERIODS[match.group(2)])

    def __str__(self) -> str:
        for unit, period in _PERIODS.items():
            if period == self.period:
                return f"{self.limit}/{unit}"
        return f"{self.limit}/{self.period.total_seconds()}s"

    def spacing(self, margin: float) -> float:
        """Seconds between two call starts: ``period / limit``, widened by ``margin``."""
        return self.period.total_seconds() / self.limit * (1.0 + margin)


@dataclass(frozen=True, slots=True)
class LimiterUsage:
    """What a limiter has used, for ``/v1/providers`` and metrics.

    ``used_this_period``: calls started in the last rate period. ``used_in_quota_window``,
    ``quota_left`` and ``quota_resets_at`` describe the current UTC-aligned quota window (zero and
    ``None`` without a quota). ``blocked_until``: set while the upstream declared its quota gone.
    ``waiting``: callers of this process queued right now.
    """

    rate: Rate | None
    quota: Rate | None
    used_this_period: int
    used_in_quota_window: int
    quota_left: int | None
    quota_resets_at: datetime | None
    blocked_until: datetime | None
    waiting: int


class Slot:
    """Permission for one upstream call. ``waited``: seconds spent in ``acquire``.

    Hold it (``with slot:``) for the duration of the call when the limiter caps concurrency;
    ``release()`` is idempotent and a no-op for limiters without a concurrency cap.
    """

    __slots__ = ("_lock", "_release", "waited")

    def __init__(self, waited: float, release: Callable[[], None] | None = None) -> None:
        self.waited = waited
        self._release = release
        self._lock = threading.Lock()

    def release(self) -> None:
        """Give the concurrency place back (once; later calls do nothing)."""
        with self._lock:
            release, self._release = self._release, None
        if release is not None:
            release()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


class Limiter(Protocol):
    """The pacing of one provider. Thread-safe; one instance per provider and process."""

    name: str

    def acquire(self, budget: CallBudget) -> Slot:
        """Block until a call may start, then return its slot.

        Raises ``QuotaExhaustedError`` at once when the quota window is used up or the upstream
        declared it so, ``NoCapacityError`` (nothing consumed) when no slot can be had before
        ``budget.deadline``, and ``TransientUpstreamError`` when the shared store is unreachable.
        """
        ...

    def exhaust_until(self, reset_at: datetime) -> None:
        """Refuse every call until ``reset_at`` (the upstream said its quota is gone)."""
        ...

    def usage(self) -> LimiterUsage:
        """Current use, for visibility."""
        ...


class QuotaLedger(Protocol):
    """Durable record of how many calls a quota window has used, so a restart does not reset it.

    ``record`` is called after every granted call, outside the limiter's lock, with the absolute
    count of the window (not an increment). Calls may arrive out of order from several threads, so
    an implementation keeps the largest count it has seen for ``(name, window_start)``; it may
    buffer and write in batches (losing at most the unflushed tail on a crash), but it must return
    quickly. ``load`` is called once per window and process, under the limiter's lock.
    """

    def load(self, name: str, window_start: datetime) -> int:
        """Calls already used in the window starting at ``window_start`` (UTC); 0 if unknown."""
        ...

    def record(self, name: str, window_start: datetime, used: int) -> None:
        """Remember that ``used`` calls of the window have been granted."""
        ...


class InMemoryQuotaLedger:
    """A :class:`QuotaLedger` in a dict: for tests, and for one process that never restarts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, datetime], int] = {}

    def load(self, name: str, window_start: datetime) -> int:
        with self._lock:
            return self._counts.get((name, window_start), 0)

    def record(self, name: str, window_start: datetime, used: int) -> None:
        with self._lock:
            key = (name, window_start)
            self._counts[key] = max(used, self._counts.get(key, 0))


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _window_start(quota: Rate, at: datetime) -> datetime:
    """Start of the UTC-aligned fixed quota window holding ``at``."""
    period_us = quota.period // timedelta(microseconds=1)
    elapsed_us = (at - _EPOCH) // timedelta(microseconds=1)
    return _EPOCH + timedelta(microseconds=elapsed_us - elapsed_us % period_us)


def _validate(concurrency: int | None, margin: float) -> None:
    if concurrency is not None and concurrency <= 0:
        raise ValueError(f"concurrency must be positive, got {concurrency}")
    if not 0.0 <= margin < 1.0:
        raise ValueError(f"margin must be in [0, 1), got {margin}")


def _no_capacity(name: str, retry_after: float) -> NoCapacityError:
    return NoCapacityError(
        f"no {name} slot before the caller's deadline",
        upstream=name,
        retry_after=max(retry_after, 0.0),
    )


def _quota_gone(name: str, reset_at: datetime) -> QuotaExhaustedError:
    return QuotaExhaustedError(
        f"{name} quota used up until {reset_at.isoformat()}", upstream=name, reset_at=reset_at
    )


class InProcessLimiter:
    """A :class:`Limiter` for one process, shared by its threads.

    ``utc_now`` is the wall clock that places calls in quota windows (injectable for tests); spacing
    and deadlines use ``time.monotonic()``, like :class:`~connectors.base.CallBudget`.
    """

    def __init__(
        self,
        name: str,
        rate: Rate | None,
        quota: Rate | None,
        *,
        concurrency: int | None = None,
        margin: float = 0.02,
        utc_now: Callable[[], datetime] = _utc_now,
        ledger: QuotaLedger | None = None,
    ) -> None:
        _validate(concurrency, margin)
        self.name = name
        self.rate = rate
        self.quota = quota
        self.concurrency = concurrency
        self._interval = rate.spacing(margin) if rate is not None else 0.0
        self._utc_now = utc_now
        self._ledger = ledger
        self._cond = threading.Condition()
        self._queue: list[tuple[int, int]] = []
        self._tickets = itertools.count()
        self._next_free = -math.inf
        self._recent: deque[float] = deque()
        self._window: datetime | None = None
        self._used = 0
        self._blocked_until: datetime | None = None
        self._in_flight = 0

    def acquire(self, budget: CallBudget) -> Slot:
        """See :meth:`Limiter.acquire`. Waiters sleep on a condition, never poll."""
        started = time.monotonic()
        ticket = (int(budget.priority), next(self._tickets))
        with self._cond:
            self._refuse_if_quota_gone()
            bisect.insort(self._queue, ticket)
            try:
                window, used = self._wait_for_turn(ticket, budget)
            finally:
                self._queue.remove(ticket)
                self._cond.notify_all()
        slot = Slot(time.monotonic() - started, self._release if self.concurrency else None)
        if self._ledger is not None and window is not None:
            try:
                self._ledger.record(self.name, window, used)
            except BaseException:
                slot.release()
                raise
        return slot

    def _wait_for_turn(
        self, ticket: tuple[int, int], budget: CallBudget
    ) -> tuple[datetime | None, int]:
        """Sleep until ``ticket`` heads the queue with a free slot; grant it. Lock held."""
        while True:
            now = time.monotonic()
            position = bisect.bisect_left(self._queue, ticket)
            rate_wait = max(0.0, self._next_free - now)
            concurrency_free = self.concurrency is None or self._in_flight < self.concurrency
            if position == 0:
                self._refuse_if_quota_gone()
                if rate_wait == 0.0 and concurrency_free:
                    return self._grant(now)
                expected = now + rate_wait
            else:
                expected = max(now, self._next_free) + position * self._interval
            timeout: float | None = rate_wait if position == 0 and rate_wait > 0 else None
            if budget.deadline is not None:
                if expected > budget.deadline:
                    raise _no_capacity(self.name, expected - now)
                if budget.deadline <= now:
                    raise _no_capacity(self.name, max(expected - now, _CONCURRENCY_RETRY_HINT))
                left = budget.deadline - now
                timeout = left if timeout is None else min(timeout, left)
            self._cond.wait(timeout)

    def _grant(self, now: float) -> tuple[datetime | None, int]:
        self._next_free = now + self._interval
        if self.rate is not None:
            self._recent.append(now)
            self._trim_recent(now)
        if self.concurrency is not None:
            self._in_flight += 1
        if self.quota is None:
            return None, 0
        self._used += 1
        return self._window, self._used

    def _trim_recent(self, now: float) -> None:
        if self.rate is None:
            return
        horizon = now - self.rate.period.total_seconds()
        while self._recent and self._recent[0] <= horizon:
            self._recent.popleft()

    def _roll_window(self) -> datetime | None:
        """Move to the current quota window, loading its count from the ledger. Lock held."""
        if self.quota is None:
            return None
        current = _window_start(self.quota, self._utc_now())
        if current != self._window:
            loaded = self._ledger.load(self.name, current) if self._ledger is not None else 0
            self._window, self._used = current, loaded
        return current

    def _refuse_if_quota_gone(self) -> None:
        """Raise ``QuotaExhaustedError`` when blocked or when the window is used up. Lock held."""
        if self._blocked_until is not None:
            if self._utc_now() < self._blocked_until:
                raise _quota_gone(self.name, self._blocked_until)
            self._blocked_until = None
        window = self._roll_window()
        if self.quota is not None and window is not None and self._used >= self.quota.limit:
            raise _quota_gone(self.name, window + self.quota.period)

    def _release(self) -> None:
        with self._cond:
            self._in_flight -= 1
            self._cond.notify_all()

    def exhaust_until(self, reset_at: datetime) -> None:
        """See :meth:`Limiter.exhaust_until`; waiting callers are refused at once."""
        with self._cond:
            if self._blocked_until is None or reset_at > self._blocked_until:
                self._blocked_until = reset_at
            self._cond.notify_all()

    def usage(self) -> LimiterUsage:
        """See :meth:`Limiter.usage`."""
        with self._cond:
            self._trim_recent(time.monotonic())
            window = self._roll_window()
            blocked = self._blocked_until
            if blocked is not None and self._utc_now() >= blocked:
                blocked = None
            return LimiterUsage(
                rate=self.rate,
                quota=self.quota,
                used_this_period=len(self._recent),
                used_in_quota_window=self._used if self.quota is not None else 0,
                quota_left=max(0, self.quota.limit - self._used) if self.quota else None,
                quota_resets_at=window + self.quota.period if window and self.quota else None,
                blocked_until=blocked,
                waiting=len(self._queue),
            )


# The reservation script. Times are integer microseconds of the Redis server clock, written with
# "%.0f" because Lua's default number formatting keeps only 14 significant digits.
# KEYS: 1 tat (next free slot), 2 quota key prefix, 3 operator block, 4 log of recent grants.
# ARGV: 1 spacing us (0: no rate), 2 max wait us (-1: none), 3 horizon us (-1: none),
#       4 quota limit (-1: none), 5 quota period us, 6 rate period us,
#       7 seeded window start s (-1: none), 8 seeded count.
# Reply: {code, wait us, used in window, window reset us}; code 0 granted, 1 quota used up,
#        2 blocked until (reset = block end), 3 no slot before the deadline, 4 come back in wait us.
_RESERVE_LUA: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local max_wait = tonumber(ARGV[2])
local horizon = tonumber(ARGV[3])
local quota = tonumber(ARGV[4])
local qperiod = tonumber(ARGV[5])
local rperiod = tonumber(ARGV[6])
local blocked = tonumber(redis.call('GET', KEYS[3]) or '0')
if blocked * 1000 > now then
  return {2, 0, 0, blocked * 1000}
end
local used = 0
local reset = 0
local qkey = nil
if quota >= 0 then
  local start = now - (now % qperiod)
  reset = start + qperiod
  local start_s = string.format('%.0f', start / 1000000)
  qkey = KEYS[2] .. start_s
  used = tonumber(redis.call('GET', qkey) or '0')
  if ARGV[7] == start_s and tonumber(ARGV[8]) > used then
    used = tonumber(ARGV[8])
    redis.call('SET', qkey, string.format('%.0f', used),
      'PXAT', string.format('%.0f', math.floor(reset / 1000) + 60000))
  end
  if used >= quota then
    return {1, 0, used, reset}
  end
end
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local slot = math.max(tat, now)
local wait = slot - now
if max_wait >= 0 and wait > max_wait then
  return {3, wait, used, reset}
end
if horizon >= 0 and wait > horizon then
  return {4, wait - horizon, used, reset}
end
if interval > 0 then
  redis.call('SET', KEYS[1], string.format('%.0f', slot + interval),
    'PX', string.format('%.0f', math.ceil((wait + interval) / 1000) + 1000))
  redis.call('ZADD', KEYS[4], string.format('%.0f', slot), string.format('%.0f', slot))
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', string.format('%.0f', now - rperiod))
  redis.call('PEXPIRE', KEYS[4], string.format('%.0f', math.ceil((wait + rperiod) / 1000) + 1000))
end
if qkey then
  used = redis.call('INCR', qkey)
  redis.call('PEXPIREAT', qkey, string.format('%.0f', math.floor(reset / 1000) + 60000))
end
return {0, wait, used, reset}
"""

# A lease of the distributed semaphore; taking a lease one already holds refreshes its expiry.
# KEYS: 1 leases (sorted set: lease id -> expiry ms). ARGV: 1 limit, 2 ttl ms, 3 lease id.
# Reply: {1, 0} granted, or {0, ms until the earliest lease expires}.
_LEASE_LUA: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[3]) or
    redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], string.format('%.0f', now + ttl), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ttl)
  return {1, 0}
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, tonumber(first[2]) - now}
"""

# Block until ARGV[1] (epoch ms), keeping the later of two blocks.
_BLOCK_LUA: Final = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then
  redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[1])
end
return 1
"""

_GRANTED: Final = 0
_QUOTA_USED_UP: Final = 1
_BLOCKED: Final = 2
_TOO_LATE: Final = 3


@dataclass(frozen=True, slots=True)
class _Reservation:
    code: int
    wait: float
    used: int
    reset_at: datetime


def _from_epoch_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


@dataclass(slots=True)
class _Seed:
    window_start_s: int = -1
    used: int = 0
    loaded: set[int] = field(default_factory=set)


class RedisLimiter:
    """A :class:`Limiter` whose budget every process and replica using ``redis`` shares.

    Keys live under ``{key_prefix}{{name}}:`` (one hash tag, so one cluster slot). The quota count
    of a window lives in Redis and expires a minute after its window ends, so a service restart
    keeps the day's count; a :class:`QuotaLedger`, if given, also receives every count and seeds a
    window Redis has lost (Redis with ``appendfsync everysec`` can lose about a second of writes).
    ``lease_ttl`` bounds how long a concurrency lease outlives a crashed holder; keep it above the
    longest upstream call.
    """

    def __init__(
        self,
        name: str,
        rate: Rate | None,
        quota: Rate | None,
        *,
        redis: Redis,
        key_prefix: str = "scoregate:limiter:",
        concurrency: int | None = None,
        margin: float = 0.02,
        lease_ttl: float = 60.0,
        lease_poll: float = 0.05,
        ledger: QuotaLedger | None = None,
    ) -> None:
        _validate(concurrency, margin)
        self.name = name
        self.rate = rate
        self.quota = quota
        self.concurrency = concurrency
        self._redis = redis
        self._interval = rate.spacing(margin) if rate is not None else 0.0
        self._lease_ttl_ms = int(lease_ttl * 1000)
        self._lease_poll = lease_poll
        self._ledger = ledger
        base = f"{key_prefix}{{{name}}}:"
        self._keys = [f"{base}tat", f"{base}quota:", f"{base}blocked", f"{base}log"]
        self._leases_key = f"{base}leases"
        self._reserve: Script = redis.register_script(_RESERVE_LUA)
        self._lease: Script = redis.register_script(_LEASE_LUA)
        self._block: Script = redis.register_script(_BLOCK_LUA)
        self._cond = threading.Condition()
        self._queue: list[tuple[int, int]] = []
        self._tickets = itertools.count()
        self._seed = _Seed()

    def acquire(self, budget: CallBudget) -> Slot:
        """See :meth:`Limiter.acquire` and the module docstring for the cross-process rules."""
        started = time.monotonic()
        ticket = (int(budget.priority), next(self._tickets))
        with self._cond:
            bisect.insort(self._queue, ticket)
        lease: str | None = None
        try:
            reservation, lease = self._reserve_as_head(ticket, budget)
        finally:
            with self._cond:
                self._queue.remove(ticket)
                self._cond.notify_all()
        release = self._lease_releaser(lease) if lease is not None else None
        slot = Slot(0.0, release)
        try:
            if reservation.wait > 0:
                time.sleep(reservation.wait)
            if lease is not None and reservation.wait > _LEASE_REFRESH_AFTER:
                self._wait_for_lease(budget, lease)
            if self._ledger is not None and self.quota is not None:
                window = reservation.reset_at - self.quota.period
                self._ledger.record(self.name, window, reservation.used)
        except BaseException:
            slot.release()
            raise
        slot.waited = time.monotonic() - started
        return slot

    def _reserve_as_head(
        self, ticket: tuple[int, int], budget: CallBudget
    ) -> tuple[_Reservation, str | None]:
        """Wait to head the local queue, then take a lease (if capped) and a reservation."""
        horizon_share = _HORIZON[budget.priority]
        while True:
            self._wait_to_head(ticket, budget)
            lease = self._wait_for_lease(budget) if self.concurrency is not None else None
            try:
                reservation = self._call_reserve(budget, horizon_share)
            except BaseException:
                if lease is not None:
                    self._release_lease(lease)
                raise
            if reservation.code == _GRANTED:
                return reservation, lease
            if lease is not None:
                self._release_lease(lease)
            if reservation.code in (_QUOTA_USED_UP, _BLOCKED):
                raise _quota_gone(self.name, reservation.reset_at)
            if reservation.code == _TOO_LATE:
                raise _no_capacity(self.name, reservation.wait)
            with self._cond:
                self._cond.wait(max(reservation.wait, _MIN_RECHECK))

    def _wait_to_head(self, ticket: tuple[int, int], budget: CallBudget) -> None:
        with self._cond:
            while (position := bisect.bisect_left(self._queue, ticket)) != 0:
                timeout = None
                if budget.deadline is not None:
                    timeout = budget.deadline - time.monotonic()
                    if timeout <= 0:
                        raise _no_capacity(self.name, position * self._interval)
                self._cond.wait(timeout)

    def _call_reserve(self, budget: CallBudget, horizon_share: float | None) -> _Reservation:
        max_wait = -1
        if budget.deadline is not None:
            max_wait = max(0, int((budget.deadline - time.monotonic()) * 1_000_000))
        horizon = -1 if horizon_share is None else int(self._interval * horizon_share * 1_000_000)
        quota_limit, quota_period_us = -1, 1
        if self.quota is not None:
            quota_limit = self.quota.limit
            quota_period_us = self.quota.period // timedelta(microseconds=1)
            self._load_seed()
        rate_period_us = 1
        if self.rate is not None:
            rate_period_us = self.rate.period // timedelta(microseconds=1)
        args = [
            math.ceil(self._interval * 1_000_000),
            max_wait,
            horizon,
            quota_limit,
            quota_period_us,
            rate_period_us,
            self._seed.window_start_s,
            self._seed.used,
        ]
        try:
            code, wait_us, used, reset_us = self._reserve(keys=self._keys, args=args)
        except RedisError as exc:
            raise self._store_error(exc) from exc
        return _Reservation(
            int(code), int(wait_us) / 1_000_000, int(used), _from_epoch_us(int(reset_us))
        )

    def _load_seed(self) -> None:
        """Read the ledger once per window (by this host's clock) to seed a lost Redis count."""
        if self._ledger is None or self.quota is None:
            return
        window = _window_start(self.quota, _utc_now())
        window_s = int((window - _EPOCH).total_seconds())
        if window_s in self._seed.loaded:
            return
        used = self._ledger.load(self.name, window)
        self._seed = _Seed(window_s, used, {window_s})

    def _wait_for_lease(self, budget: CallBudget, lease: str | None = None) -> str:
        """Take (or refresh) a concurrency lease, waiting for one until the deadline."""
        lease = lease or uuid.uuid4().hex
        while True:
            retry_in = self._take_lease(lease)
            if retry_in is None:
                return lease
            wait = min(self._lease_poll, retry_in)
            if budget.deadline is not None:
                left = budget.deadline - time.monotonic()
                if left <= 0:
                    raise _no_capacity(self.name, max(retry_in, _CONCURRENCY_RETRY_HINT))
                wait = min(wait, left)
            with self._cond:
                self._cond.wait(max(wait, _MIN_RECHECK))

    def _take_lease(self, lease: str) -> float | None:
        """Take or refresh ``lease``; ``None`` when held, else seconds until one may free up."""
        try:
            granted, retry_ms = self._lease(
                keys=[self._leases_key], args=[self.concurrency or 0, self._lease_ttl_ms, lease]
            )
        except RedisError as exc:
            raise self._store_error(exc) from exc
        return None if int(granted) == 1 else max(int(retry_ms), 0) / 1000

    def _release_lease(self, lease: str) -> None:
        """Drop ``lease``; on a store failure it expires after ``lease_ttl`` instead."""
        try:
            self._redis.zrem(self._leases_key, lease)
        except RedisError:
            logger.warning(
                "limiter.lease.release_failed", extra={"limiter": self.name, "lease": lease}
            )
        with self._cond:
            self._cond.notify_all()

    def _lease_releaser(self, lease: str) -> Callable[[], None]:
        def release() -> None:
            self._release_lease(lease)

        return release

    def _store_error(self, exc: RedisError) -> TransientUpstreamError:
        return TransientUpstreamError(
            f"limiter store unreachable for {self.name}: {type(exc).__name__}", upstream=self.name
        )

    def exhaust_until(self, reset_at: datetime) -> None:
        """See :meth:`Limiter.exhaust_until`; every process sharing the store stops."""
        until_ms = int((reset_at - _EPOCH) / timedelta(milliseconds=1))
        try:
            self._block(keys=[self._keys[2]], args=[until_ms])
        except RedisError as exc:
            raise self._store_error(exc) from exc
        with self._cond:
            self._cond.notify_all()

    def usage(self) -> LimiterUsage:
        """See :meth:`Limiter.usage`; read from the store with the server's clock."""
        try:
            seconds, micros = self._redis.time()
            now_us = int(seconds) * 1_000_000 + int(micros)
            now = _from_epoch_us(now_us)
            window = _window_start(self.quota, now) if self.quota is not None else None
            pipe = self._redis.pipeline(transaction=False)
            pipe.get(self._keys[2])
            if self.rate is not None:
                period_us = self.rate.period // timedelta(microseconds=1)
                pipe.zcount(self._keys[3], f"({now_us - period_us}", now_us)
            if window is not None:
                pipe.get(f"{self._keys[1]}{int((window - _EPOCH).total_seconds())}")
            replies = pipe.execute()
        except RedisError as exc:
            raise self._store_error(exc) from exc
        blocked_ms = int(replies[0] or 0)
        blocked = _EPOCH + timedelta(milliseconds=blocked_ms) if blocked_ms else None
        if blocked is not None and blocked <= now:
            blocked = None
        used_period = int(replies[1]) if self.rate is not None else 0
        used_window = int(replies[-1] or 0) if window is not None else 0
        with self._cond:
            waiting = len(self._queue)
        return LimiterUsage(
            rate=self.rate,
            quota=self.quota,
            used_this_period=used_period,
            used_in_quota_window=used_window,
            quota_left=max(0, self.quota.limit - used_window) if self.quota else None,
            quota_resets_at=window + self.quota.period if window and self.quota else None,
            blocked_until=blocked,
            waiting=waiting,
        )


def build_limiter(
    name: str,
    rate: Rate | None,
    quota: Rate | None,
    *,
    redis_url: str | None,
    concurrency: int | None = None,
    ledger: QuotaLedger | None = None,
    margin: float = 0.02,
) -> Limiter:
    """A :class:`RedisLimiter` when ``redis_url`` is set, else an :class:`InProcessLimiter`."""
    if redis_url:
        client = Redis.from_url(redis_url)
        return RedisLimiter(
            name,
            rate,
            quota,
            redis=client,
            concurrency=concurrency,
            margin=margin,
            ledger=ledger,
        )
    return InProcessLimiter(
        name, rate, quota, concurrency=concurrency, margin=margin, ledger=ledger
    )
