"""Claims under contention, in two parts.

1. In process: 50 reps claiming from a queue of 1,000 SQLs at once, each (its own thread and database
   connection) from the top of the queue, as reps do, so they collide. Claims/s, latency, double claims (0).
2. Over HTTP (gunicorn): a rush — 200 reps logged in click Claim at the same moment, each on one of the top
   5 entries, as the page does (htmx, answered with what changed): 5 win, 195 are told who has it. Click
   latency p50/p95 over 3 rushes, and a lone claim's time, beside the same clicks as plain form posts whose
   answer is a bare redirect (the floor: HTTP round trip, session, claim, no page), in the same run.
"""

from __future__ import annotations

import http.client
import os
import random
import secrets
import statistics
import threading
import time
from collections import Counter
from urllib.parse import urlsplit

from bench.support import RUNS, bench_database_url, gunicorn, median_of, setup_django, table

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


RUSH_REPS = 200
RUSH_ENTRIES = 400


def _sessions(reps) -> list[dict[str, str]]:
    """Logged-in cookies for each rep (a session like the login view makes) with a CSRF token."""
    from django.test import Client

    cookies = []
    for rep in reps:
        client = Client()
        client.force_login(rep)
        token = secrets.token_hex(16)
        cookies.append(
            {
                "Cookie": f"sessionid={client.cookies['sessionid'].value}; csrftoken={token}",
                "X-CSRFToken": token,
            }
        )
    return cookies


def rush_once(base: str, sessions, entry_ids, *, htmx: bool) -> list[float]:
    """Every rep clicks Claim at once on one of the top 5 entries (connections opened first); latencies in ms."""
    from handoff.models import QueueEntry

    QueueEntry.objects.update(status="waiting", owner=None, claimed_at=None, first_touch_due_at=None)
    host, lock, latencies = urlsplit(base).netloc, threading.Lock(), []
    top = sorted(entry_ids)[:5]
    start = threading.Barrier(len(sessions) + 1)

    def click(headers, seed):
        conn = http.client.HTTPConnection(host, timeout=60)
        conn.connect()
        headers = headers | ({"HX-Request": "true"} if htmx else {}) | {"Content-Length": "0"}
        target = top[seed % len(top)]
        start.wait()
        began = time.perf_counter()
        conn.request("POST", f"/queue/{target}/claim", headers=headers)
        response = conn.getresponse()
        response.read()
        elapsed = (time.perf_counter() - began) * 1000
        if response.status != (200 if htmx else 302):
            raise RuntimeError(f"claim answered {response.status}")
        with lock:
            latencies.append(elapsed)
        conn.close()

    threads = [threading.Thread(target=click, args=(h, i)) for i, h in enumerate(sessions)]
    for t in threads:
        t.start()
    start.wait()
    for t in threads:
        t.join()
    owners = dict(QueueEntry.objects.filter(pk__in=top).values_list("pk", "owner"))
    assert all(owners.values()), owners  # each of the five has its one owner
    return latencies


def lone_claims(base: str, headers, entry_ids, *, htmx: bool) -> float:
    """One rep claiming entries one after another: the median time of a click, in ms."""
    from handoff.models import QueueEntry

    QueueEntry.objects.update(status="waiting", owner=None, claimed_at=None, first_touch_due_at=None)
    conn = http.client.HTTPConnection(urlsplit(base).netloc, timeout=60)
    headers = headers | ({"HX-Request": "true"} if htmx else {}) | {"Content-Length": "0"}
    times = []
    for pk in entry_ids:
        began = time.perf_counter()
        conn.request("POST", f"/queue/{pk}/claim", headers=headers)
        conn.getresponse().read()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def rush(reps_, entry_ids) -> None:
    sessions = _sessions(reps_)
    lone_ids = entry_ids[:20]  # under the claim limit of one rep
    with gunicorn(workers=4) as base:
        rush_once(base, sessions, entry_ids, htmx=True)  # warm up
        rows, lones = [], []
        for htmx in (True, False):
            runs = [rush_once(base, sessions, entry_ids, htmx=htmx) for _ in range(RUNS)]
            p95s = [statistics.quantiles(r, n=20)[18] for r in runs]
            p50s = [statistics.median(r) for r in runs]
            lone = [lone_claims(base, sessions[0], lone_ids, htmx=htmx) for _ in range(RUNS)]
            rows.append((htmx, statistics.median(p50s), statistics.median(p95s), p95s, statistics.median(lone)))
            lones.append(statistics.median(lone))
    (_, p50, p95, p95s, lone), (_, floor50, floor95, floor95s, floor_lone) = rows
    table(
        f"Claim rush over HTTP: {RUSH_REPS} reps click Claim at once on the top 5 of {RUSH_ENTRIES} entries "
        "(gunicorn 4 workers; load generator, PostgreSQL and Redis on the same 2 cores)",
        ("figure", "median of 3", "runs", "beside it: plain post, bare redirect", "ratio"),
        [
            (
                "click p95",
                f"{p95:.0f} ms",
                " ".join(f"{v:.0f}" for v in p95s),
                f"{floor95:.0f} ms",
                f"{p95 / floor95:.2f}",
            ),
            ("click p50", f"{p50:.0f} ms", "", f"{floor50:.0f} ms", f"{p50 / floor50:.2f}"),
            ("lone claim", f"{lone:.1f} ms", "", f"{floor_lone:.1f} ms", f"{lone / floor_lone:.2f}"),
        ],
    )


def main() -> None:
    bench_database_url()
    setup_django()
    from django.conf import settings

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # bench reps never log in
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
    if os.environ.get("BENCH_HANDOFF_RUSH_ONLY"):
        rush(reps + _more_reps(RUSH_REPS - REPS), sorted(entry_ids)[:RUSH_ENTRIES])
        return
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

    rush(reps + _more_reps(RUSH_REPS - REPS), sorted(entry_ids)[:RUSH_ENTRIES])


def _more_reps(n: int) -> list:
    from crm.accounts import create_user

    return [create_user(email=f"rush{i}@example.com", password="x", role="sales", validate=False) for i in range(n)]


if __name__ == "__main__":
    main()
