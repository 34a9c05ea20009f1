"""Claims under contention: 50 reps claiming from a queue of 1,000 SQLs at once.

Each rep (its own thread and database connection) claims from the top of the queue, as reps do, so
they collide. Prints claims/s, claim latency percentiles and double claims (must be 0).
"""

from __future__ import annotations

import os
import random
import statistics
import threading
import time
from collections import Counter

from bench.support import bench_database_url, median_of, setup_django, table

ENTRIES = 1000
REPS = 50
TOP = int(os.environ.get("BENCH_TOP", "5"))


def run_once(reps, entry_ids) -> tuple[float, list[float], int, int]:
    from django.db import connection

    from handoff import services
    from handoff.models import QueueEntry

    QueueEntry.objects.filter(pk__in=entry_ids).update(
        status="waiting", owner=None, claimed_at=None, first_touch_due_at=None
    )
    lock, wins, latencies, refusals = threading.Lock(), [], [], [0]
    remaining = sorted(entry_ids)
    start = threading.Barrier(len(reps) + 1)

    def rep_loop(rep):
        rng = random.Random(rep.pk)
        start.wait()
        try:
            while True:
                with lock:
                    if not remaining:
                        return
                    target = remaining[rng.randrange(min(TOP, len(remaining)))]  # one of the top TOP
                began = time.perf_counter()
                try:
                    services.claim(entry_id=target, rep=rep, limit=10_000)
                    outcome = "won"
                except services.HandoffRefused:
                    outcome = "lost"
                elapsed = time.perf_counter() - began
                with lock:
                    latencies.append(elapsed * 1000)
                    if outcome == "won":
                        wins.append(target)
                    else:
                        refusals[0] += 1
                    if target in remaining:
                        remaining.remove(target)
        finally:
            connection.close()

    threads = [threading.Thread(target=rep_loop, args=(rep,)) for rep in reps]
    for t in threads:
        t.start()
    start.wait()
    began = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    double = sum(n - 1 for n in Counter(wins).values() if n > 1)
    owners = QueueEntry.objects.filter(pk__in=entry_ids).exclude(owner=None).count()
    assert owners == len(set(wins)) == ENTRIES, (owners, len(set(wins)))
    return len(wins) / elapsed, latencies, double, refusals[0]


def main() -> None:
    bench_database_url()
    setup_django()
    from django.utils import timezone

    from crm.accounts import create_user
    from crm.models import Contact, Stage
    from handoff import services
    from handoff.models import QueueEntry

    contacts = Contact.objects.bulk_create(
        [Contact(email=f"sql{i}@example.com", stage=Stage.SQL, score=random.randint(70, 120)) for i in range(ENTRIES)]
    )
    services.enqueue(
        contact_ids=[c.pk for c in contacts],
        sent_by="bench",
        sla=services.Sla(60, 120),
        requested={},
        now=timezone.now(),
    )
    entry_ids = list(QueueEntry.objects.values_list("pk", flat=True))
    reps = [create_user(email=f"rep{i}@example.com", password="x", role="sales", validate=False) for i in range(REPS)]
    results = []
    rate, rates = median_of(lambda: results.append(run_once(reps, entry_ids)) or results[-1][0])
    latencies = [ms for r in results for ms in r[1]]
    p50, p95 = statistics.median(latencies), statistics.quantiles(latencies, n=20)[18]
    table(
        f"Claims: {REPS} reps, {ENTRIES:,} entries, claiming from the top of the queue (same 2 cores)",
        ("figure", "median", "runs / detail", "floor"),
        [
            ("claims/s", f"{rate:,.0f}", " ".join(f"{v:,.0f}" for v in rates), ""),
            ("claim latency", f"p50 {p50:.1f} ms", f"p95 {p95:.1f} ms over {len(latencies):,} attempts", ""),
            (
                "double claims",
                str(sum(r[2] for r in results)),
                f"{sum(r[3] for r in results):,} lost races answered",
                "0",
            ),
        ],
    )


if __name__ == "__main__":
    main()
