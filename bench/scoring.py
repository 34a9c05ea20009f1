"""Scoring speed: event → score readable through the API, full rescore at 100k/1M, lag under load.

Loads 100,000 contacts and 1,000,000 events with COPY into a scratch database, then runs gunicorn and
one Celery worker against it. Medians of BENCH_RUNS runs where a figure is repeated.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import psycopg

from bench.support import BASE_DIR, bench_database_url, gunicorn, median_of, setup_django, table

CONTACTS = 100_000
EVENTS = 1_000_000
TYPES = ["page_view"] * 5 + ["email_open"] * 3 + ["email_click", "form_submit"]
PATHS = ["/", "/pricing", "/product/tour", "/blog/x", "/docs"]
FORMS = ["ebook", "webinar", "demo", "newsletter"]


def load(url: str, source_id: int) -> None:
    rng = random.Random(1)
    now = datetime.now(UTC)
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        with cur.copy("COPY crm_contact (email, job_title, budget) FROM STDIN") as copy:
            for i in range(CONTACTS):
                copy.write_row(
                    (
                        f"c{i}@example.com",
                        rng.choice(["Head of Data", "Engineer", "VP Sales", ""]),
                        rng.choice(["", "10k"]),
                    )
                )
        cur.execute("SELECT min(id) FROM crm_contact")
        first = cur.fetchone()[0]
        with cur.copy(
            "COPY leads_event (source_id, client_id, contact_id, visitor_id, type, occurred_at, received_at,"
            " properties, channel) FROM STDIN"
        ) as copy:
            for i in range(EVENTS):
                kind = rng.choice(TYPES)
                props = {"form": rng.choice(FORMS)} if kind == "form_submit" else {"path": rng.choice(PATHS)}
                at = now - timedelta(days=90 * rng.random())
                copy.write_row(
                    (source_id, f"load-{i}", first + rng.randrange(CONTACTS), "", kind, at, at, json.dumps(props), "")
                )
        cur.execute(
            "INSERT INTO crm_contactactivity (contact_id, last_event_at)"
            " SELECT contact_id, max(occurred_at) FROM leads_event GROUP BY contact_id"
        )
        conn.commit()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def raw_aggregate_seconds(url: str) -> float:
    with psycopg.connect(url) as conn:
        started = time.perf_counter()
        conn.execute(
            "SELECT contact_id, sum(power(0.5, date_part('epoch', now() - occurred_at) / 86400 / 30))"
            " FROM leads_event GROUP BY contact_id"
        ).fetchall()
        return time.perf_counter() - started


def full_rescore_seconds() -> float:
    from scoring import services
    from scoring.models import CriteriaVersion

    run = services.start_full_rescore(version=CriteriaVersion.objects.get(status="active"))
    started = time.perf_counter()
    services.run_full_rescore(run_id=run.pk)
    return time.perf_counter() - started


@contextmanager
def celery_worker():
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "crm", "worker", "-l", "warning", "-c", "2"],
        cwd=BASE_DIR,
        env=os.environ.copy(),
    )
    try:
        time.sleep(4)
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def api(base: str, method: str, path: str, key: str, body: dict | None = None) -> tuple[int, dict]:
    conn = http.client.HTTPConnection(urlsplit(base).netloc, timeout=10)
    conn.request(
        method,
        path,
        json.dumps(body) if body else None,
        {"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    response = conn.getresponse()
    return response.status, json.loads(response.read())


def event_to_score_ms(base: str, ingest: str, read: str, trials: int = 60) -> list[float]:
    """Post one event for a new contact; poll the read API until the contact has a score."""
    from crm.models import Contact

    latencies = []
    for i in range(trials):
        email = f"trial-{uuid.uuid4().hex[:8]}@example.com"
        started = time.perf_counter()
        api(
            base,
            "POST",
            "/api/v1/events",
            ingest,
            {"id": f"t-{email}", "type": "form_submit", "email": email, "properties": {"form": "demo"}},
        )
        contact_id = Contact.objects.get(email=email).pk
        while True:
            status, body = api(base, "GET", f"/api/v1/contacts/{contact_id}", read)
            if body.get("scored_at"):
                break
            if time.perf_counter() - started > 10:
                raise RuntimeError("not scored within 10 s")
            time.sleep(0.01)
        latencies.append((time.perf_counter() - started) * 1000)
        time.sleep(0.05 + 0.1 * (i % 3))
    return latencies


def lag_under_load(base: str, ingest: str, rate: int = 5000, seconds: int = 20) -> tuple[float, float, float]:
    """Sustain ``rate`` events/s (batches of 500) for ``seconds``; sample the oldest stale contact's age.

    Returns (events/s achieved, worst oldest-stale age seen during load in s, seconds to drain after)."""
    from django.db import connection

    stop = time.monotonic() + seconds
    sent = [0]
    worst = [0.0]

    def generator():
        conn = http.client.HTTPConnection(urlsplit(base).netloc, timeout=30)
        run = uuid.uuid4().hex[:6]
        n = 0
        while time.monotonic() < stop:
            tick = time.monotonic()
            events = [
                {
                    "id": f"lag-{run}-{n + k}",
                    "type": "email_open",
                    "email": f"c{random.randrange(CONTACTS)}@example.com",
                }
                for k in range(500)
            ]
            n += 500
            conn.request(
                "POST",
                "/api/v1/events",
                json.dumps({"events": events}),
                {"Authorization": f"Bearer {ingest}", "Content-Type": "application/json"},
            )
            conn.getresponse().read()
            sent[0] += 500
            time.sleep(max(0.0, 500 / rate * 2 - (time.monotonic() - tick)))  # two generators share the rate

    def oldest_stale() -> float:
        with connection.cursor() as cur:
            cur.execute(
                "SELECT coalesce(date_part('epoch', now() - min(stale_since)), 0) FROM crm_contactactivity"
                " WHERE stale_since IS NOT NULL"
            )
            return cur.fetchone()[0]

    started = time.monotonic()
    threads = [threading.Thread(target=generator) for _ in range(2)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        worst[0] = max(worst[0], oldest_stale())
        time.sleep(0.5)
    achieved = sent[0] / (time.monotonic() - started)
    drain_started = time.monotonic()
    while oldest_stale() > 0 and time.monotonic() - drain_started < 120:
        time.sleep(0.2)
    return achieved, worst[0], time.monotonic() - drain_started


def main() -> None:
    url = bench_database_url()
    setup_django()
    from leads.models import ApiKey, Source

    source = Source.objects.create(name="bench", rate_limit=10_000_000)
    ingest = ApiKey.issue(source=source, scope=ApiKey.Scope.INGEST)[1]
    read = ApiKey.issue(source=source, scope=ApiKey.Scope.READ)[1]
    started = time.perf_counter()
    load(url, source.pk)
    print(f"loaded {CONTACTS:,} contacts and {EVENTS:,} events in {time.perf_counter() - started:.1f} s")

    raw, raw_runs = median_of(lambda: raw_aggregate_seconds(url))
    full, full_runs = median_of(full_rescore_seconds)
    with gunicorn(workers=4) as base, celery_worker():
        latencies = event_to_score_ms(base, ingest, read)
        achieved, worst, drain = lag_under_load(base, ingest)
    p50, p95 = statistics.median(latencies), statistics.quantiles(latencies, n=20)[18]
    table(
        "Scoring (PostgreSQL, gunicorn, one Celery worker with 2 children, load generator: same 2 cores)",
        ("figure", "median", "runs / detail", "floor"),
        [
            (
                "full rescore, 100k contacts / 1M events",
                f"{full:.2f} s",
                " ".join(f"{v:.2f}" for v in full_runs),
                "10 s",
            ),
            (
                "raw SQL decay aggregate, same events",
                f"{raw:.2f} s",
                " ".join(f"{v:.2f}" for v in raw_runs),
                f"ratio {full / raw:.1f}x (goal 5x)",
            ),
            (
                "event accepted -> score readable (API)",
                f"p50 {p50:.0f} ms",
                f"p95 {p95:.0f} ms, {len(latencies)} trials",
                "p95 < 1 s",
            ),
            (
                "lag under sustained ingest",
                f"{achieved:,.0f} events/s",
                f"oldest stale {worst:.1f} s; drained in {drain:.1f} s after",
                "",
            ),
        ],
    )


if __name__ == "__main__":
    main()
