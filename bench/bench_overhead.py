"""What the gateway costs on a cached answer, against reading the same answer from a dict.

Run: ``python bench/bench_overhead.py [--identities 1000] [--repeat 20]``.

The cache is warmed with ``--identities`` answers from the Klout emulator, then each way of
reading them runs ``--repeat`` passes over every identity, single-threaded:

- ``dict``: ``answers[key]``, the floor;
- ``gateway.cached([key])``: the cache lookup the service makes first, with hit/miss counting;
- ``gateway.cached(all keys)``: the same, one call per pass, as a 1,000-contact lookup does;
- ``gateway.fetch(...)``: a fetch of a cached identity (coalescer, store re-check, no call).

Printed: lookups per second of each and its ratio to the dict read. The store is in memory, so
the figures are the gateway's own cost; the service's database store adds its query on top.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from _common import bench_people, build_caller, gateway_for, klout_emulator, one_call_provider

from connectors.base import CallBudget
from connectors.http_json import HttpJsonProvider


def rate(passes: int, per_pass: int, run: Callable[[], None]) -> float:
    """Lookups per second of ``run`` (one pass of ``per_pass`` lookups), over ``passes``."""
    started = time.perf_counter()
    for _ in range(passes):
        run()
    return passes * per_pass / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--identities", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()

    people = bench_people(args.identities)
    state, server = klout_emulator(people, rate_per_second=100_000)
    config = one_call_provider(server.url, rate="100000/second", quota=None)
    caller = build_caller("klout-bench", config)
    gateway = gateway_for(HttpJsonProvider("klout-bench", config, caller), caller)
    budget = CallBudget()
    keys = [f"key-{person.klout_id}" for person in people]
    try:
        answers = {
            key: gateway.fetch(key, "klout", person.klout_id, budget)
            for key, person in zip(keys, people, strict=True)
        }
        warm_calls = state.stats()["calls_total"]

        def dict_pass() -> None:
            for key in keys:
                answers[key]

        def cached_one_pass() -> None:
            for key in keys:
                gateway.cached([key])

        def cached_all_pass() -> None:
            gateway.cached(keys)

        def fetch_pass() -> None:
            for key, person in zip(keys, people, strict=True):
                gateway.fetch(key, "klout", person.klout_id, budget)

        direct = rate(args.repeat, len(keys), dict_pass)
        cases = {
            "gateway.cached([key])": rate(args.repeat, len(keys), cached_one_pass),
            "gateway.cached(all keys)": rate(args.repeat, len(keys), cached_all_pass),
            "gateway.fetch(cached)": rate(args.repeat, len(keys), fetch_pass),
        }
        extra_calls = state.stats()["calls_total"] - warm_calls
    finally:
        caller.client.close()
        server.stop()
    print(f"{args.identities} cached identities, {args.repeat} passes each, one thread")
    print(f"  {'dict read':26} {direct:14,.0f} lookups/s")
    for name, per_second in cases.items():
        print(
            f"  {name:26} {per_second:14,.0f} lookups/s   "
            f"{direct / per_second:8.1f}x the dict read's cost"
        )
    print(f"upstream calls while reading cached answers: {extra_calls} (target 0)")


if __name__ == "__main__":
    main()
