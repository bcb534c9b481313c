"""Service throughput on cached answers: POST /v1/lookups with 1 contact and with 1,000.

Run: ``python bench/bench_lookups.py [--requests 2000] [--big-requests 30] [--threads 4]``.

The app runs in this process under uvicorn on loopback (one worker, the service's own thread
pool), on a SQLite file in a temporary directory, with the Klout and Twitter emulators as provider
and existence check and 1,000 extra scored people. Every contact is looked up once to warm the
cache; then only cached answers are measured, over real HTTP with ``httpx``:

- 1 contact per request: ``--requests`` requests one after another (latency), then the same
  number from ``--threads`` client threads (throughput);
- 1,000 contacts per request: ``--big-requests`` requests one after another.

Printed: requests/s, contacts/s and p50/p99 latency of each, and the upstream calls made while
measuring (target 0: everything is cached). Client and server share this machine's cores, so the
figures are a floor for a dedicated server.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from _common import bench_people, summary
from pydantic import SecretStr

from app.api_keys import service as api_keys
from app.config import Settings
from app.main import create_app
from app.models import Role
from app.runtime import Runtime
from connectors.klout import KloutConfig
from connectors.twitter import TwitterExistenceConfig
from emulators.sandbox import start_sandbox
from emulators.server import LoopbackServer
from emulators.twitter import TwitterUser

BIG = 1000


def settings(database: Path, klout_url: str, twitter_url: str, sandbox: Any) -> Settings:
    return Settings(
        database_url=f"sqlite:///{database}",
        secret_key=SecretStr("bench-identity-secret-0123456789"),
        sandbox=False,
        log_level="WARNING",
        providers={
            "klout": KloutConfig(
                kind="klout",
                base_url=klout_url,
                api_key=SecretStr(sandbox.klout_api_key),
                existence="twitter",
                rate="100000/second",
                quota=None,
            )
        },
        existence={
            "twitter": TwitterExistenceConfig(
                kind="twitter",
                base_url=twitter_url,
                bearer_token=SecretStr(sandbox.twitter_bearer_token),
                rate="100000/second",
            )
        },
    )


def post(client: httpx.Client, contacts: list[dict[str, Any]]) -> float:
    """POST one lookup; return its latency in seconds. Every result must be ``scored``."""
    started = time.perf_counter()
    response = client.post("/v1/lookups", json={"contacts": contacts})
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    statuses = {result["status"] for result in response.json()["results"]}
    if statuses != {"scored"}:
        raise RuntimeError(f"expected cached scores, got statuses {statuses}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--big-requests", type=int, default=30)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()

    people = bench_people(BIG)
    contacts = [{"id": p.screen_name, "identities": {"twitter": p.screen_name}} for p in people]
    with (
        tempfile.TemporaryDirectory() as folder,
        start_sandbox(rate_per_second=100_000, daily_quota=10**9) as sandbox,
    ):
        for person in people:
            sandbox.klout_state.add_person(person)
            sandbox.twitter_state.add_user(
                TwitterUser(username=person.screen_name, id=person.twitter_id, name="bench")
            )
        runtime = Runtime(
            settings(Path(folder) / "bench.db", sandbox.klout_url, sandbox.twitter_url, sandbox)
        )
        runtime.start()
        with runtime.sessions() as session:
            key = api_keys.create_key(session, role=Role.READ, name="bench", actor="bench")
        headers = {"Authorization": f"Bearer {key.secret}"}
        try:
            with (
                LoopbackServer(create_app(runtime=runtime)) as server,
                httpx.Client(base_url=server.url, headers=headers, timeout=120) as client,
            ):
                warm = client.post(
                    "/v1/lookups", json={"contacts": contacts, "deadline_ms": 60_000}
                )
                warm.raise_for_status()
                post(client, contacts)  # every answer is cached now
                sandbox.klout_state.reset_counters()

                one = [post(client, [contacts[n % BIG]]) for n in range(args.requests)]
                started = time.perf_counter()
                with ThreadPoolExecutor(max_workers=args.threads) as pool:
                    list(
                        pool.map(lambda n: post(client, [contacts[n % BIG]]), range(args.requests))
                    )
                threaded = time.perf_counter() - started
                big = [post(client, contacts) for _ in range(args.big_requests)]
                upstream_calls = sandbox.klout_state.stats()["calls_total"]
        finally:
            runtime.close()

    print("POST /v1/lookups on cached answers (SQLite, uvicorn on loopback, one process)")
    print(f"  1 contact, sequential:    {len(one) / sum(one):8.1f} requests/s   {summary(one)}")
    print(f"  1 contact, {args.threads} threads:     {args.requests / threaded:8.1f} requests/s")
    print(
        f"  {BIG} contacts, sequential: {len(big) / sum(big):8.2f} requests/s = "
        f"{BIG * len(big) / sum(big):,.0f} contacts/s   {summary(big)}"
    )
    print(f"upstream calls while measuring: {upstream_calls} (target 0)")


if __name__ == "__main__":
    main()
