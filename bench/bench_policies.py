"""Policy engine benchmark: rank 100,000 items (fair_topk and score), evaluate 1,000,000 contacts.

Run: ``python bench/bench_policies.py``. Each case runs twice: once for wall time (no tracing) and
once under ``tracemalloc`` for the peak of memory allocated by the case itself. Inputs are built
before timing, from a seeded generator, so figures are comparable between runs.
"""

from __future__ import annotations

import random
import resource
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from policies import (
    PolicyDocument,
    RankItem,
    ScoredPopulation,
    Status,
    default_policy,
    evaluate,
    rank,
)

SEED = 20260101
RANK_ITEMS = 100_000
EVALUATIONS = 1_000_000
PROTECTED = [Status.OPTED_OUT, Status.UNSCORED, Status.NOT_FOUND, Status.UNAVAILABLE]


def rank_items(rng: random.Random) -> list[RankItem]:
    """100,000 items: 70% scored (uniform 1..100), 30% without a provider score (neutral 50)."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    items = []
    for index in range(RANK_ITEMS):
        scored = rng.random() < 0.7
        items.append(
            RankItem(
                id=f"c{index}",
                status=Status.SCORED if scored else rng.choice(PROTECTED),
                effective_score=round(rng.uniform(1, 100), 2) if scored else 50.0,
                arrived_at=start + timedelta(seconds=rng.uniform(0, 86_400)),
            )
        )
    return items


def contacts(rng: random.Random) -> list[tuple[Status, float | None]]:
    """1,000,000 contacts: 60% scored, the rest spread over the four other statuses."""
    statuses = [Status.SCORED] * 6 + PROTECTED
    chosen = rng.choices(statuses, k=EVALUATIONS)
    return [(s, rng.uniform(1, 100) if s is Status.SCORED else None) for s in chosen]


def measure(name: str, case: Callable[[], object]) -> None:
    """Print the wall time and the traced peak allocation of ``case``."""
    started = time.perf_counter()
    case()
    elapsed = time.perf_counter() - started
    tracemalloc.start()
    case()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"{name:<44} wall {elapsed:7.2f} s   peak traced {peak / 2**20:8.1f} MiB")


def main() -> None:
    """Build the inputs, run every case, print the figures."""
    rng = random.Random(SEED)
    population = ScoredPopulation("klout", (rng.uniform(1, 100) for _ in range(100_000)))
    score_policy = default_policy("klout")
    fair_policy = PolicyDocument.model_validate(
        {
            **score_policy.model_dump(mode="json"),
            "ranking": {"method": "fair_topk", "protected": PROTECTED, "alpha": 0.1},
        }
    )
    items = rank_items(rng)
    sample = contacts(rng)

    def evaluate_all() -> int:
        segmented = 0
        for status, score in sample:
            if evaluate(score_policy, status, score, population).segment is not None:
                segmented += 1
        return segmented

    print(f"python policy engine benchmark (seed {SEED})")
    measure(f"rank {RANK_ITEMS:,} items, fair_topk (p=share)", lambda: rank(fair_policy, items))
    measure(f"rank {RANK_ITEMS:,} items, score", lambda: rank(score_policy, items))
    measure(f"evaluate {EVALUATIONS:,} contacts", evaluate_all)
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{'process peak RSS (inputs included)':<44} {max_rss:8.1f} MiB")


if __name__ == "__main__":
    main()
