"""Sync benchmark: 100,000 contacts into each CRM emulator, batched against naive per-record writes.

    python bench/bench_sync.py [--records 100000] [--naive-sample 500]

For each connector (Salesforce with Bulk API 2.0, Zoho CRM, Mailchimp) it seeds the emulator with
``--records`` contacts, caches a Klout score for every one of them beforehand (so the figures are
the sync's own, not the score provider's 10 calls a second), runs one full sync run and prints:
wall time, records per second, the scoregate process's peak memory growth, and API calls per
10,000 records (writes and reads separately, as counted by the emulator).

Each emulator runs in its own child process, so the memory figure is scoregate's alone.

The naive path (one write call per record, what a plain integration does) is measured on
``--naive-sample`` records and scaled linearly to ``--records``; the output says so.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from sqlalchemy import insert

from app.config import Settings
from app.models import CachedAnswer
from app.runtime import Runtime
from app.sync_runs import service as sync_runs
from connectors.downstream import ScoreWrite
from emulators.mailchimp import (
    MailchimpEndpoint,
    MailchimpState,
    MergeFieldType,
    SeedMember,
    create_mailchimp_app,
)
from emulators.salesforce import (
    DEFAULT_SESSION_ID,
    Endpoint,
    SalesforceState,
    create_salesforce_app,
)
from emulators.sandbox import Sandbox, start_sandbox
from emulators.server import LoopbackServer
from emulators.zoho import ZohoState, create_zoho_app

SECRET = "bench-identity-secret-0123456789abcdef"
MAILCHIMP_KEY = "bench-key-us1"
LIST_ID = "BENCH"
#: reads of each emulator, by the endpoint names its counters use
READ_ENDPOINTS = {Endpoint.QUERY.value, Endpoint.QUERY_MORE.value}
READ_ENDPOINTS |= {MailchimpEndpoint.LIST_MEMBERS.value, MailchimpEndpoint.GET_MEMBER.value}


def is_read(endpoint: str) -> bool:
    """Salesforce and Mailchimp count by operation name; Zoho by ``METHOD /path``."""
    return endpoint in READ_ENDPOINTS or endpoint.startswith("GET /crm/")


def is_token(endpoint: str) -> bool:
    return "/oauth/" in endpoint


def handle(i: int) -> str:
    return f"bench_{i}"


# ----- emulators in child processes -------------------------------------------------------------


def _serve(kind: str, records: int, pipe: Connection) -> None:
    """Child process: seed one emulator, serve it, answer ``counts`` and ``stop`` requests."""
    past = datetime.now(UTC) - timedelta(minutes=5)
    app: Any
    if kind == "salesforce":
        salesforce = SalesforceState(api_limit=10_000_000)
        salesforce.seed(
            "Contact",
            (
                {"LastName": f"p{i}", "Email": f"p{i}@example.com", "Twitter_Handle__c": handle(i)}
                for i in range(records)
            ),
        )
        app = create_salesforce_app(salesforce)
        counts: Callable[[], dict[str, int]] = lambda: {  # noqa: E731
            str(k): v for k, v in salesforce.call_counts().items()
        }

    elif kind == "zoho":
        zoho = ZohoState(daily_credits=100_000_000)
        zoho.seed(
            "Leads",
            (
                {"Last_Name": f"p{i}", "Email": f"p{i}@example.com", "Twitter": handle(i)}
                for i in range(records)
            ),
        )
        app = create_zoho_app(zoho)
        counts = lambda: dict(zoho.calls_by_endpoint)  # noqa: E731

    else:
        mailchimp = MailchimpState(MAILCHIMP_KEY)
        mailchimp.add_list(LIST_ID)
        for tag in ("SCORE", "FAIRSCORE"):
            mailchimp.add_merge_field(LIST_ID, tag, MergeFieldType.NUMBER)
        for tag in ("SCORESTAT", "SCORESEG", "NOSCORE", "TWITTER"):
            mailchimp.add_merge_field(LIST_ID, tag, MergeFieldType.TEXT)
        mailchimp.seed_members(
            LIST_ID,
            (
                SeedMember(
                    f"p{i}@example.com",
                    merge_fields={"TWITTER": handle(i)},
                    last_changed=past + timedelta(seconds=i // 1000),
                )
                for i in range(records)
            ),
        )
        app = create_mailchimp_app(mailchimp)
        counts = lambda: {e.value: mailchimp.call_count(e) for e in MailchimpEndpoint}  # noqa: E731

    with LoopbackServer(app) as server:
        pipe.send(server.url)
        while True:
            command = pipe.recv()
            if command == "counts":
                pipe.send(counts())
            else:
                return


@dataclass
class Emulator:
    kind: str
    url: str
    process: multiprocessing.process.BaseProcess
    pipe: Connection

    def counts(self) -> dict[str, int]:
        self.pipe.send("counts")
        result: dict[str, int] = self.pipe.recv()
        return result

    def stop(self) -> None:
        self.pipe.send("stop")
        self.process.join(timeout=30)


def start_emulator(kind: str, records: int) -> Emulator:
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=_serve, args=(kind, records, child), daemon=True)
    process.start()
    url = parent.recv()
    return Emulator(kind, url, process, parent)


# ----- scoregate side ---------------------------------------------------------------------------


def connector_config(kind: str, url: str) -> dict[str, Any]:
    if kind == "salesforce":
        return {
            "kind": "salesforce",
            "instance_url": url,
            "session_id": DEFAULT_SESSION_ID,
            "bulk_poll_seconds": 0,
            "max_batch": 25_000,
        }
    if kind == "zoho":
        return {
            "kind": "zoho",
            "client_id": "zoho-client-id",
            "client_secret": "zoho-client-secret",
            "refresh_token": "1000.zoho-refresh-token",
            "accounts_url": url,
        }
    return {
        "kind": "mailchimp",
        "api_key": MAILCHIMP_KEY,
        "list_id": LIST_ID,
        "base_url": f"{url}/3.0",
        "fields": {"identities": {"email": "email_address", "twitter": "TWITTER"}},
    }


def make_runtime(db: Path, sandbox: Sandbox, kind: str, url: str) -> Runtime:
    settings = Settings(
        database_url=f"sqlite:///{db}",
        secret_key=SecretStr(SECRET),
        sandbox=False,
        log_level="WARNING",
        providers={
            "klout": {
                "kind": "klout",
                "base_url": sandbox.klout_url,
                "api_key": sandbox.klout_api_key,
                "rate": "10/second",
                "quota": "10000/day",
            }
        },
        connectors={kind: connector_config(kind, url)},
        sync={"worker": False},
        propagation={"worker": False},
    )
    runtime = Runtime(settings)
    runtime.start()
    return runtime


def cache_scores(runtime: Runtime, records: int) -> None:
    """A fresh Klout score for every bench contact, as if fetched earlier."""
    now = datetime.now(UTC)
    rows = [
        {
            "namespace": "klout",
            "identity_key": runtime.keyer.key("twitter", handle(i)),
            "kind": "score",
            "score": float(10 + i % 90),
            "fact": "klout scored this identity",
            "fetched_at": now,
            "expires_at": now + timedelta(days=7),
        }
        for i in range(records)
    ]
    with runtime.sessions() as session:
        for start in range(0, len(rows), 10_000):
            session.execute(insert(CachedAnswer), rows[start : start + 10_000])
        session.commit()
    runtime.populations.reload()


class RssPeak:
    """Samples this process's resident memory every 20 ms (the kernel's lifetime peak would
    carry one connector's peak into the next one's figure)."""

    def __init__(self) -> None:
        self.baseline = self.peak = rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> RssPeak:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_mb())

    @property
    def growth(self) -> float:
        return self.peak - self.baseline


def rss_mb() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def split_calls(before: dict[str, int], after: dict[str, int]) -> tuple[int, int]:
    """``(write calls, read calls)`` between two counter snapshots (token calls left out)."""
    reads = writes = 0
    for endpoint, count in after.items():
        spent = count - before.get(endpoint, 0)
        if is_read(endpoint):
            reads += spent
        elif not is_token(endpoint):
            writes += spent
    return writes, reads


def naive_seconds_per_record(runtime: Runtime, kind: str, sample: int) -> float:
    """One write call per record, on ``sample`` records already read by the connector."""
    # a read covers changes up to the second it starts; the sync just changed every record
    time.sleep(1.1)
    with runtime.connectors.use(kind) as connector:
        ids: list[str] = []
        for page in connector.read_changed(None):
            ids.extend(record.id for record in page)
            if len(ids) >= sample:
                break
        ids = ids[:sample]
        now = datetime.now(UTC)
        started = time.perf_counter()
        for record_id in ids:
            connector.write_results(
                [
                    ScoreWrite(
                        record_id=record_id,
                        status="scored",
                        score=50.0,
                        effective_score=50.0,
                        segment="mid",
                        explanation="naive write",
                        policy="klout-default v0",
                        evaluated_at=now,
                    )
                ]
            )
        return (time.perf_counter() - started) / len(ids)


def bench(kind: str, records: int, sample: int, sandbox: Sandbox, workdir: Path) -> None:
    emulator = start_emulator(kind, records)
    runtime = make_runtime(workdir / f"{kind}.db", sandbox, kind, emulator.url)
    try:
        cache_scores(runtime, records)
        before_calls = emulator.counts()
        with RssPeak() as memory:
            started = time.perf_counter()
            run = sync_runs.run_now(runtime, kind, dry_run=False, actor="bench")
            wall = time.perf_counter() - started
        after_calls = emulator.counts()
        writes, reads = split_calls(before_calls, after_calls)
        grown = memory.growth
        assert run.state == "succeeded", run.message
        per_record = naive_seconds_per_record(runtime, kind, sample)
        naive_wall = per_record * records
        per_10k = 10_000 / run.read
        print(
            f"\n{kind}: {run.read:,} records read, {run.written:,} written, "
            f"{run.errors} refused; statuses {run.counts}"
        )
        print(f"  wall time            {wall:8.1f} s   ({run.read / wall:,.0f} records/s)")
        print(f"  peak memory growth   {grown:8.1f} MB  (scoregate process; emulator apart)")
        print(f"  write calls / 10k    {writes * per_10k:8.1f}     (total {writes:,})")
        spent = {k: v - before_calls.get(k, 0) for k, v in after_calls.items()}
        print(f"  calls by endpoint    {dict(sorted((k, v) for k, v in spent.items() if v))}")
        print(f"  read calls / 10k     {reads * per_10k:8.1f}     (total {reads:,})")
        print(
            f"  naive (1 call/record) {naive_wall:7.1f} s    10,000 write calls / 10k; measured on "
            f"{sample} records and scaled to {records:,}"
        )
        print(
            f"  batched vs naive     {naive_wall / wall:8.1f}x faster, "
            f"{10_000 / max(writes * per_10k, 1e-9):,.0f}x fewer write calls"
        )
    finally:
        runtime.close()
        emulator.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--naive-sample", type=int, default=500)
    parser.add_argument(
        "--only", choices=("salesforce", "zoho", "mailchimp"), action="append", default=None
    )
    args = parser.parse_args()
    kinds = args.only or ["salesforce", "zoho", "mailchimp"]
    if len(kinds) > 1:
        # one fresh process per connector, so no connector's memory shows in another's figure
        print(f"sync benchmark: {args.records:,} contacts per connector, scores cached beforehand")
        for kind in kinds:
            subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--records",
                    str(args.records),
                    "--naive-sample",
                    str(args.naive_sample),
                    "--only",
                    kind,
                ],
                check=True,
            )
        return
    with tempfile.TemporaryDirectory() as tmp, start_sandbox() as sandbox:
        bench(kinds[0], args.records, args.naive_sample, sandbox, Path(tmp))


if __name__ == "__main__":
    main()
