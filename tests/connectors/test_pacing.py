"""Pacing: rate, quota, deadlines, priority and concurrency, in-process and on Redis.

Timing tests use small rates and generous tolerances: the "never more than ``limit`` in any window"
property is asserted strictly, utilisation loosely, so a loaded 2-core machine does not flake them.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from connectors.base import CallBudget, Priority
from connectors.errors import NoCapacityError, QuotaExhaustedError, TransientUpstreamError
from connectors.pacing import (
    InMemoryQuotaLedger,
    InProcessLimiter,
    Limiter,
    QuotaLedger,
    Rate,
    RedisLimiter,
    build_limiter,
)

REDIS_URL = os.environ.get("SCOREGATE_TEST_REDIS_URL")
#: A wider margin than the default: start times are recorded by test threads after ``acquire``
#: returns, which on a loaded machine adds scheduling jitter the limiter cannot see.
TEST_MARGIN = 0.05

MakeLimiter = Callable[..., Limiter]


@pytest.fixture
def redis_client() -> Iterator[Redis]:
    if not REDIS_URL:
        pytest.skip("SCOREGATE_TEST_REDIS_URL is not set")
    client = Redis.from_url(REDIS_URL)
    yield client
    client.close()


@pytest.fixture
def key_prefix(redis_client: Redis) -> Iterator[str]:
    prefix = f"scoregate-test:{uuid.uuid4().hex}:"
    yield prefix
    for key in redis_client.scan_iter(f"{prefix}*"):
        redis_client.delete(key)


@pytest.fixture(params=["in_process", "redis"])
def make_limiter(request: pytest.FixtureRequest) -> MakeLimiter:
    """Build limiters of the parametrised kind; Redis ones of one test share one key prefix."""
    if request.param == "in_process":

        def in_process(
            rate: str | None,
            quota: str | None = None,
            *,
            concurrency: int | None = None,
            margin: float = TEST_MARGIN,
            ledger: QuotaLedger | None = None,
        ) -> Limiter:
            return InProcessLimiter(
                "klout",
                Rate.parse(rate) if rate else None,
                Rate.parse(quota) if quota else None,
                concurrency=concurrency,
                margin=margin,
                ledger=ledger,
            )

        return in_process

    client: Redis = request.getfixturevalue("redis_client")
    prefix: str = request.getfixturevalue("key_prefix")

    def on_redis(
        rate: str | None,
        quota: str | None = None,
        *,
        concurrency: int | None = None,
        margin: float = TEST_MARGIN,
        ledger: QuotaLedger | None = None,
    ) -> Limiter:
        return RedisLimiter(
            "klout",
            Rate.parse(rate) if rate else None,
            Rate.parse(quota) if quota else None,
            redis=client,
            key_prefix=prefix,
            concurrency=concurrency,
            margin=margin,
            ledger=ledger,
        )

    return on_redis


def next_utc_midnight() -> datetime:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today + timedelta(days=1)


def hammer(limiters: list[Limiter], threads_per_limiter: int, seconds: float) -> list[float]:
    """Acquire from every limiter in several threads for ``seconds``; return the start times."""
    starts: list[float] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def worker(limiter: Limiter) -> None:
        while time.monotonic() < stop_at:
            with limiter.acquire(CallBudget(Priority.BULK)):
                started = time.monotonic()
                with lock:
                    starts.append(started)

    threads = [
        threading.Thread(target=worker, args=(limiter,))
        for limiter in limiters
        for _ in range(threads_per_limiter)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(starts)


def most_in_any_window(starts: list[float], period: float) -> int:
    """The largest number of start times inside any window ``[t, t + period)``."""
    most = 0
    j = 0
    for i, start in enumerate(starts):
        while j < len(starts) and starts[j] < start + period:
            j += 1
        most = max(most, j - i)
    return most


class TestRateParse:
    @pytest.mark.parametrize(
        ("text", "limit", "period"),
        [
            ("10/second", 10, timedelta(seconds=1)),
            ("10000/day", 10000, timedelta(days=1)),
            ("600/minute", 600, timedelta(minutes=1)),
            ("5/hour", 5, timedelta(hours=1)),
            (" 3 / days ", 3, timedelta(days=1)),
        ],
    )
    def test_reads_count_and_unit(self, text: str, limit: int, period: timedelta) -> None:
        assert Rate.parse(text) == Rate(limit, period)

    @pytest.mark.parametrize("text", ["", "10", "ten/second", "10/fortnight", "0/second", "-1/day"])
    def test_bad_string_is_named_in_the_error(self, text: str) -> None:
        with pytest.raises(ValueError, match=repr(text).replace("\\", "\\\\")):
            Rate.parse(text)

    def test_prints_back_as_parsed(self) -> None:
        assert str(Rate.parse("10000/day")) == "10000/day"


class TestAcquire:
    def test_rate_is_never_exceeded_and_nearly_used(self, make_limiter: MakeLimiter) -> None:
        limiter = make_limiter("20/second")
        starts = hammer([limiter], threads_per_limiter=8, seconds=1.5)
        assert most_in_any_window(starts, 1.0) <= 20
        span = starts[-1] - starts[0]
        assert len(starts) - 1 >= 0.7 * span * 20

    def test_quota_used_up_raises_at_once_with_window_end(self, make_limiter: MakeLimiter) -> None:
        limiter = make_limiter("1000/second", "3/day")
        for _ in range(3):
            limiter.acquire(CallBudget()).release()
        started = time.monotonic()
        with pytest.raises(QuotaExhaustedError) as caught:
            limiter.acquire(CallBudget())
        assert time.monotonic() - started < 1.0
        assert caught.value.reset_at == next_utc_midnight()
        assert caught.value.upstream == "klout"

    def test_deadline_too_close_raises_without_consuming(self, make_limiter: MakeLimiter) -> None:
        limiter = make_limiter("2/second", "100/day")
        limiter.acquire(CallBudget()).release()
        with pytest.raises(NoCapacityError) as caught:
            limiter.acquire(CallBudget(deadline=time.monotonic() + 0.05))
        assert caught.value.retry_after is not None
        assert 0.2 < caught.value.retry_after <= 0.6
        assert limiter.usage().used_in_quota_window == 1
        slot = limiter.acquire(CallBudget(deadline=time.monotonic() + 5.0))
        assert slot.waited < 0.9, "the refused caller must not have taken the next slot"
        assert limiter.usage().used_in_quota_window == 2

    def test_interactive_waiter_goes_before_earlier_bulk_waiter(
        self, make_limiter: MakeLimiter
    ) -> None:
        limiter = make_limiter("4/second")
        limiter.acquire(CallBudget()).release()
        served: list[str] = []

        def wait_for(priority: Priority) -> None:
            limiter.acquire(CallBudget(priority))
            served.append(priority.name)

        bulk = threading.Thread(target=wait_for, args=(Priority.BULK,))
        bulk.start()
        wait_until(lambda: limiter.usage().waiting == 1)
        interactive = threading.Thread(target=wait_for, args=(Priority.INTERACTIVE,))
        interactive.start()
        bulk.join()
        interactive.join()
        assert served == ["INTERACTIVE", "BULK"]

    def test_same_priority_is_first_come_first_served(self, make_limiter: MakeLimiter) -> None:
        limiter = make_limiter("10/second")
        limiter.acquire(CallBudget()).release()
        served: list[int] = []

        def wait_for(number: int) -> None:
            limiter.acquire(CallBudget(Priority.WEBHOOK))
            served.append(number)

        def arrived(count: int) -> Callable[[], bool]:
            return lambda: limiter.usage().waiting + len(served) == count

        threads = []
        for number in range(4):
            thread = threading.Thread(target=wait_for, args=(number,))
            thread.start()
            wait_until(arrived(number + 1))
            threads.append(thread)
        for thread in threads:
            thread.join()
        assert served == [0, 1, 2, 3]

    def test_concurrency_cap_holds(self, make_limiter: MakeLimiter) -> None:
        limiter = make_limiter(None, concurrency=2)
        in_flight = 0
        most = 0
        lock = threading.Lock()

        def call() -> None:
            nonlocal in_flight, most
            with limiter.acquire(CallBudget(deadline=time.monotonic() + 10)):
                with lock:
                    in_flight += 1
                    most = max(most, in_flight)
                time.sleep(0.05)
                with lock:
                    in_flight -= 1

        threads = [threading.Thread(target=call) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert most == 2

    def test_concurrency_full_until_deadline_raises(self, make_limiter: MakeLimiter) -> None:
        limiter = make_limiter(None, concurrency=1)
        held = limiter.acquire(CallBudget())
        with pytest.raises(NoCapacityError):
            limiter.acquire(CallBudget(deadline=time.monotonic() + 0.1))
        held.release()
        with limiter.acquire(CallBudget(deadline=time.monotonic() + 1.0)) as slot:
            assert slot.waited < 1.0


class TestExhaustUntil:
    def test_refuses_until_reset(self, make_limiter: MakeLimiter) -> None:
        limiter = make_limiter("100/second", "100/day")
        reset_at = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
        limiter.exhaust_until(reset_at)
        with pytest.raises(QuotaExhaustedError) as caught:
            limiter.acquire(CallBudget())
        assert caught.value.reset_at == reset_at
        assert limiter.usage().blocked_until == reset_at
        assert limiter.usage().used_in_quota_window == 0

    def test_past_reset_does_not_block(self, make_limiter: MakeLimiter) -> None:
        limiter = make_limiter("100/second", "100/day")
        limiter.exhaust_until(datetime.now(UTC) - timedelta(seconds=1))
        limiter.acquire(CallBudget()).release()
        assert limiter.usage().blocked_until is None

    def test_wakes_waiters_with_quota_error(self, make_limiter: MakeLimiter) -> None:
        limiter = make_limiter("1/second", "100/day")
        limiter.acquire(CallBudget()).release()
        errors: list[BaseException] = []

        def wait() -> None:
            try:
                limiter.acquire(CallBudget(Priority.BULK))
            except QuotaExhaustedError as exc:
                errors.append(exc)

        thread = threading.Thread(target=wait)
        thread.start()
        wait_until(lambda: limiter.usage().waiting == 1)
        limiter.exhaust_until(datetime.now(UTC) + timedelta(minutes=5))
        thread.join()
        assert len(errors) == 1


class TestUsage:
    def test_counts_rate_window_and_quota(self, make_limiter: MakeLimiter) -> None:
        limiter = make_limiter("100/second", "10/day")
        for _ in range(3):
            limiter.acquire(CallBudget()).release()
        usage = limiter.usage()
        assert usage.rate == Rate.parse("100/second")
        assert usage.used_this_period == 3
        assert usage.used_in_quota_window == 3
        assert usage.quota_left == 7
        assert usage.quota_resets_at == next_utc_midnight()
        assert usage.blocked_until is None
        assert usage.waiting == 0


class TestInProcessQuotaWindow:
    def test_ledger_keeps_the_count_across_a_new_limiter(self) -> None:
        ledger = InMemoryQuotaLedger()
        rate, quota = Rate.parse("1000/second"), Rate.parse("3/day")
        first = InProcessLimiter("klout", rate, quota, ledger=ledger)
        first.acquire(CallBudget()).release()
        first.acquire(CallBudget()).release()
        restarted = InProcessLimiter("klout", rate, quota, ledger=ledger)
        restarted.acquire(CallBudget()).release()
        with pytest.raises(QuotaExhaustedError):
            restarted.acquire(CallBudget())
        midnight = next_utc_midnight() - timedelta(days=1)
        assert ledger.load("klout", midnight) == 3

    def test_window_resets_at_utc_midnight(self) -> None:
        now = datetime(2026, 3, 1, 23, 59, 59, tzinfo=UTC)
        limiter = InProcessLimiter("klout", None, Rate.parse("1/day"), utc_now=lambda: now)
        limiter.acquire(CallBudget()).release()
        with pytest.raises(QuotaExhaustedError) as caught:
            limiter.acquire(CallBudget())
        assert caught.value.reset_at == datetime(2026, 3, 2, tzinfo=UTC)
        now = datetime(2026, 3, 2, 0, 0, 0, tzinfo=UTC)
        limiter.acquire(CallBudget()).release()
        assert limiter.usage().quota_left == 0


class TestRedisLimiter:
    def test_quota_survives_a_new_limiter_object(
        self, redis_client: Redis, key_prefix: str
    ) -> None:
        def start() -> RedisLimiter:
            return RedisLimiter(
                "klout", None, Rate.parse("2/day"), redis=redis_client, key_prefix=key_prefix
            )

        start().acquire(CallBudget()).release()
        restarted = start()
        restarted.acquire(CallBudget()).release()
        with pytest.raises(QuotaExhaustedError):
            restarted.acquire(CallBudget())

    def test_two_processes_share_one_rate(self, key_prefix: str) -> None:
        assert REDIS_URL is not None
        clients = [Redis.from_url(REDIS_URL), Redis.from_url(REDIS_URL)]
        limiters: list[Limiter] = [
            RedisLimiter(
                "klout",
                Rate.parse("20/second"),
                None,
                redis=client,
                key_prefix=key_prefix,
                margin=TEST_MARGIN,
            )
            for client in clients
        ]
        try:
            starts = hammer(limiters, threads_per_limiter=4, seconds=1.5)
        finally:
            for client in clients:
                client.close()
        assert most_in_any_window(starts, 1.0) <= 20
        assert len(starts) - 1 >= 0.7 * (starts[-1] - starts[0]) * 20

    def test_two_processes_share_one_quota(self, redis_client: Redis, key_prefix: str) -> None:
        first, second = (
            RedisLimiter(
                "klout", None, Rate.parse("3/day"), redis=redis_client, key_prefix=key_prefix
            )
            for _ in range(2)
        )
        first.acquire(CallBudget()).release()
        second.acquire(CallBudget()).release()
        first.acquire(CallBudget()).release()
        with pytest.raises(QuotaExhaustedError):
            second.acquire(CallBudget())
        assert second.usage().quota_left == 0

    def test_interactive_elsewhere_goes_before_waiting_bulk(
        self, redis_client: Redis, key_prefix: str
    ) -> None:
        bulk_side, interactive_side = (
            RedisLimiter(
                "klout", Rate.parse("4/second"), None, redis=redis_client, key_prefix=key_prefix
            )
            for _ in range(2)
        )
        bulk_side.acquire(CallBudget()).release()
        served: list[str] = []

        def wait_as_bulk() -> None:
            bulk_side.acquire(CallBudget(Priority.BULK))
            served.append("bulk")

        bulk = threading.Thread(target=wait_as_bulk)
        bulk.start()
        wait_until(lambda: bulk_side.usage().waiting == 1)
        interactive_side.acquire(CallBudget(Priority.INTERACTIVE))
        served.append("interactive")
        bulk.join()
        assert served == ["interactive", "bulk"]

    def test_concurrency_is_shared_between_processes(
        self, redis_client: Redis, key_prefix: str
    ) -> None:
        first, second = (
            RedisLimiter(
                "mailchimp", None, None, redis=redis_client, key_prefix=key_prefix, concurrency=1
            )
            for _ in range(2)
        )
        held = first.acquire(CallBudget())
        with pytest.raises(NoCapacityError):
            second.acquire(CallBudget(deadline=time.monotonic() + 0.15))
        held.release()
        second.acquire(CallBudget(deadline=time.monotonic() + 1.0)).release()

    def test_ledger_seeds_a_count_redis_lost(self, redis_client: Redis, key_prefix: str) -> None:
        quota = Rate.parse("3/day")
        ledger = InMemoryQuotaLedger()
        ledger.record("klout", next_utc_midnight() - timedelta(days=1), 3)
        limiter = RedisLimiter(
            "klout", None, quota, redis=redis_client, key_prefix=key_prefix, ledger=ledger
        )
        with pytest.raises(QuotaExhaustedError):
            limiter.acquire(CallBudget())

    def test_unreachable_store_is_a_transient_error(self) -> None:
        client = Redis(
            host="127.0.0.1", port=1, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)
        )
        limiter = RedisLimiter("klout", Rate.parse("10/second"), None, redis=client)
        try:
            with pytest.raises(TransientUpstreamError, match="limiter store unreachable"):
                limiter.acquire(CallBudget())
        finally:
            client.close()


class TestBuildLimiter:
    def test_without_redis_builds_in_process(self) -> None:
        limiter = build_limiter(
            "klout", Rate.parse("10/second"), Rate.parse("10000/day"), redis_url=None
        )
        assert isinstance(limiter, InProcessLimiter)

    def test_with_redis_builds_shared(self, redis_client: Redis) -> None:
        assert REDIS_URL is not None
        limiter = build_limiter("klout", Rate.parse("10/second"), None, redis_url=REDIS_URL)
        assert isinstance(limiter, RedisLimiter)


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``condition`` (test set-up only) until it holds; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("condition not reached in time")
        time.sleep(0.002)
