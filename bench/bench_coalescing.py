"""Concurrent lookups of one uncached identity share one upstream call.

Run: ``python bench/bench_coalescing.py [--lookups 200] [--rounds 5] [--slow-ms 0]``.

Each round releases ``--lookups`` threads at once (a barrier) on one identity nobody has asked
about yet, through the gateway (cache in memory, coalescing, pacing at Klout's 10 calls/second)
and a provider that makes one upstream call per lookup. ``--slow-ms`` makes the emulator hold
each answer that long, so more lookups arrive while the first is in flight. Printed per round:
upstream calls the emulator counted (target 1), whether every lookup got the true score, and the
round's wall time.
"""

from __future__ import annotations

import argparse
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from _common import bench_people, build_caller, gateway_for, klout_emulator, one_call_provider

from connectors.base import CallBudget
from connectors.errors import UpstreamError
from connectors.gateway import ProviderGateway
from connectors.http_json import HttpJsonProvider
from emulators.klout import KloutFaults


def one_round(
    gateway: ProviderGateway, pool: ThreadPoolExecutor, klout_id: str, lookups: int
) -> list[float | None]:
    """Release ``lookups`` threads at once on ``klout_id``; the scores they got (None: error)."""
    barrier = threading.Barrier(lookups)

    def look_up(_: int) -> float | None:
        barrier.wait()
        try:
            return gateway.fetch(f"key-{klout_id}", "klout", klout_id, CallBudget()).score
        except UpstreamError:
            return None

    return list(pool.map(look_up, range(lookups)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lookups", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--slow-ms", type=int, default=0)
    args = parser.parse_args()

    people = bench_people(args.rounds)
    state, server = klout_emulator(people, rate_per_second=10)
    if args.slow_ms:
        state.set_faults(KloutFaults(slow_share=1.0, slow_seconds=args.slow_ms / 1000))
    config = one_call_provider(server.url, rate="10/second", quota="10000/day")
    caller = build_caller("klout-bench", config, max_connections=16)
    gateway = gateway_for(HttpJsonProvider("klout-bench", config, caller), caller)
    print(f"{args.lookups} concurrent lookups of one uncached identity, {args.rounds} rounds")
    total_calls = 0
    try:
        with ThreadPoolExecutor(max_workers=args.lookups) as pool:
            for person in people:
                before = state.stats()["calls_total"]
                started = time.monotonic()
                scores = one_round(gateway, pool, person.klout_id, args.lookups)
                elapsed = time.monotonic() - started
                calls = state.stats()["calls_total"] - before
                total_calls += calls
                honest = all(score == person.score for score in scores)
                print(
                    f"  round {person.klout_id}: upstream calls {calls} (target 1), "
                    f"every lookup got the true score: {honest}, {elapsed * 1000:.1f} ms"
                )
    finally:
        caller.client.close()
        server.stop()
    print(f"upstream calls for {args.rounds * args.lookups} lookups: {total_calls}")


if __name__ == "__main__":
    main()
