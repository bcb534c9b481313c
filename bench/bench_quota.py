"""How much of an upstream's rate limit the gateway uses, and whether it ever goes over.

Run: ``python bench/bench_quota.py [--identities 2000] [--processes 1] [--threads 32]
[--redis-url redis://127.0.0.1:6379/13] [--priority bulk]``.

A Klout emulator enforcing 10 calls/second (and 10,000/day) runs in this process. Distinct,
uncached ``klout`` identities are looked up as fast as the gateway allows through a provider that
makes exactly one upstream call per identity (an http_json provider on
``/v2/user.json/{klout id}/score``), so identities = calls. With ``--processes N`` the identities
are split among N OS processes that share one Redis budget and talk to the one emulator over
loopback, as replicas of the service would. Lookups always run in spawned child processes (one by
default), so the emulator, like a real upstream, does not share an interpreter with its clients.

Printed: achieved upstream calls per second (accepted calls, first to last arrival at the
emulator) as a share of the limit (target >= 0.97), calls the emulator refused as over the limit
(target 0), the most calls accepted in any one-second window, and every lookup's outcome.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta

from _common import bench_people, build_caller, gateway_for, klout_emulator, one_call_provider
from redis import Redis

from connectors.base import CallBudget, Priority
from connectors.errors import UpstreamError
from connectors.http_json import HttpJsonProvider

RATE_PER_SECOND = 10
DAILY_QUOTA = 10_000
PROVIDER = "klout-bench"


@dataclass(frozen=True)
class Share:
    """One process's part of the run."""

    base_url: str
    klout_ids: list[str]
    threads: int
    priority: Priority
    redis_url: str | None
    prefix: str


def run_share(share: Share) -> tuple[dict[str, int], float]:
    """Look up every identity of ``share``; return the outcomes and the wall time."""
    redis = Redis.from_url(share.redis_url) if share.redis_url else None
    config = one_call_provider(
        share.base_url,
        rate=f"{RATE_PER_SECOND}/second",
        quota=f"{DAILY_QUOTA}/day",
        max_attempts=4,
        retry_initial_wait=timedelta(milliseconds=50),
        breaker_threshold=1000,
    )
    caller = build_caller(
        PROVIDER, config, redis=redis, prefix=share.prefix, max_connections=share.threads
    )
    gateway = gateway_for(HttpJsonProvider(PROVIDER, config, caller), caller)
    budget = CallBudget(share.priority)
    # a first request pays for lazy set-up on both ends; made before the run (the emulator does
    # not count admin calls), it cannot delay the first paced call past the limiter's margin
    caller.client.get(f"{share.base_url}/_emulator/stats").raise_for_status()

    def look_up(klout_id: str) -> str:
        try:
            return gateway.fetch(f"key-{klout_id}", "klout", klout_id, budget).kind
        except UpstreamError as exc:
            return type(exc).__name__

    started = time.monotonic()
    try:
        with ThreadPoolExecutor(max_workers=share.threads) as pool:
            outcomes = Counter(pool.map(look_up, share.klout_ids))
    finally:
        caller.client.close()
        if redis is not None:
            redis.close()
    return dict(outcomes), time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--identities", type=int, default=2000)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--threads", type=int, default=32, help="lookup threads per process")
    parser.add_argument("--redis-url", default=None, help="shared limiter store (needed for N>1)")
    parser.add_argument("--priority", choices=[p.name.lower() for p in Priority], default="bulk")
    args = parser.parse_args()
    if args.processes > 1 and not args.redis_url:
        parser.error("--processes above 1 needs --redis-url: in-process limiters do not share")

    people = bench_people(args.identities)
    state, server = klout_emulator(people, rate_per_second=RATE_PER_SECOND, daily_quota=DAILY_QUOTA)
    prefix = f"bench:quota:{uuid.uuid4().hex}:"
    ids = [person.klout_id for person in people]
    shares = [
        Share(
            base_url=server.url,
            klout_ids=ids[n :: args.processes],
            threads=args.threads,
            priority=Priority[args.priority.upper()],
            redis_url=args.redis_url,
            prefix=prefix,
        )
        for n in range(args.processes)
    ]
    limiter = "Redis" if args.redis_url else "in-process"
    print(
        f"{args.identities} identities, {args.processes} process(es) x {args.threads} threads, "
        f"{limiter} limiter, {args.priority} priority, emulator limit {RATE_PER_SECOND}/s"
    )
    started = time.monotonic()
    try:
        # lookups always run in child processes: an emulator sharing its interpreter with 32
        # client threads stamps arrivals late under contention for the GIL, which measured
        # two phantom over-limit calls in 2,000 that a separate upstream never sees
        with multiprocessing.get_context("spawn").Pool(args.processes) as pool:
            results = pool.map(run_share, shares)
        wall = time.monotonic() - started
        stats = state.stats()
    finally:
        server.stop()
        if args.redis_url:
            redis = Redis.from_url(args.redis_url)
            keys = list(redis.scan_iter(match=f"{prefix}*"))
            if keys:
                redis.delete(*keys)
            redis.close()

    outcomes: Counter[str] = Counter()
    for number, (share_outcomes, elapsed) in enumerate(results):
        outcomes.update(share_outcomes)
        done = sum(share_outcomes.values())
        print(f"  process {number}: {done} lookups in {elapsed:.1f} s")
    achieved = stats["achieved_calls_per_second"] or 0.0
    print(f"wall time                    {wall:.1f} s")
    print(f"upstream calls accepted      {stats['accepted']}")
    print(f"achieved calls/s             {achieved:.3f}")
    print(f"share of the limit           {achieved / RATE_PER_SECOND:.3f}  (target >= 0.97)")
    print(f"over-limit calls refused     {stats['over_limit_calls']}  (target 0)")
    print(f"most accepted in any 1 s     {stats['max_accepted_in_any_window']}")
    print(f"lookup outcomes              {dict(outcomes)}")


if __name__ == "__main__":
    main()
