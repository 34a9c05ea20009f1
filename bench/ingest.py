"""Ingest throughput over HTTP against gunicorn: 500-event batches and one event per request.

Prints events/s for batches beside raw psycopg ``executemany`` of the same rows into the same table,
and requests/s with latency percentiles (from wrk) for one event per request. Medians of BENCH_RUNS runs.
"""

from __future__ import annotations

import http.client
import itertools
import json
import random
import re
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import urlsplit

import psycopg

from bench.support import RUNS, bench_database_url, gunicorn, setup_django, table

BATCH = 500
DURATION = 10.0
MOST_PER_RUN = 400_000  # events a batched run can send in DURATION (this machine stores about 20,000 a second)
CONTACTS = 20_000
PATHS = ["/", "/pricing", "/product/tour", "/blog/lead-scoring", "/docs"]
_counter = itertools.count()


def event(run: str) -> dict:
    n = next(_counter)
    return {
        "id": f"{run}-{n}",
        "type": random.choice(["page_view", "page_view", "page_view", "email_open", "email_click"]),
        "email": f"person{random.randrange(CONTACTS)}@example.com",
        "occurred_at": datetime.now(UTC).isoformat(),
        "properties": {"path": random.choice(PATHS), "utm_source": random.choice(["google", "newsletter", ""])},
    }


def batched_events_per_second(base: str, key: str, threads: int = 4) -> float:
    """Events stored per second by ``threads`` clients each sending 500-event batches for DURATION seconds. The
    bodies are made before the clock starts, as the raw limit's rows are: making them was a tenth of the CPU a batch
    cost on the 2 cores the server uses."""
    run, stored = uuid.uuid4().hex[:8], []
    made = [json.dumps({"events": [event(run) for _ in range(BATCH)]}) for _ in range(MOST_PER_RUN // BATCH)]
    bodies, host = iter(made), urlsplit(base).netloc
    stop = time.monotonic() + DURATION

    def client():
        conn = http.client.HTTPConnection(host, timeout=30)
        count = 0
        for body in bodies:  # shared by the clients: each body is sent once
            if time.monotonic() >= stop:
                break
            conn.request(
                "POST", "/api/v1/events", body, {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
            )
            response = conn.getresponse()
            answer = json.loads(response.read())
            if response.status != 202:
                raise RuntimeError(f"{response.status}: {answer}")
            count += answer["accepted"]
        stored.append(count)

    started = time.monotonic()
    workers = [threading.Thread(target=client) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sum(stored) / (time.monotonic() - started)


WRK_SCRIPT = """
local n = 0
local prefix = "%s-" .. tostring(math.random(1, 1e9)) .. "-"
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %s"
request = function()
  n = n + 1
  local body = string.format('{"id":"%%s%%d","type":"page_view","email":"person%%d@example.com",'
    .. '"properties":{"path":"/pricing"}}', prefix, n, math.random(0, %d))
  return wrk.format(nil, "/api/v1/events", nil, body)
end
"""


def single_event_requests(base: str, key: str) -> tuple[float, float, float]:
    """(requests/s, p50 ms, p99 ms) from wrk: 2 threads, 32 connections, one event per request."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(WRK_SCRIPT % (uuid.uuid4().hex[:8], key, CONTACTS - 1))
        script.flush()
        out = subprocess.run(
            ["wrk", "-t2", "-c32", f"-d{int(DURATION)}s", "--latency", "-s", script.name, base],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    if "Non-2xx" in out:
        raise RuntimeError(out)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def percentile(p: str) -> float:
        value, unit = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out).groups()
        return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]

    return rps, percentile("50"), percentile("99")


def vacuumed[T](url: str, run: Callable[[], T]) -> T:
    """Vacuum what the runs before wrote, as autovacuum would (it may be off, as on the CI machine): each run
    upserts the same 20,000 contacts and activity rows thousands of times."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE crm_contact, crm_contactactivity, leads_event")
    return run()


def raw_executemany_rows_per_second(url: str, source_id: int) -> float:
    """The floor of the same work without HTTP, validation or upserts: psycopg executemany, one transaction."""
    with psycopg.connect(url) as conn:
        contact_ids = [r[0] for r in conn.execute("SELECT id FROM crm_contact LIMIT 20000").fetchall()]
        run = uuid.uuid4().hex[:8]
        rows = [
            (
                source_id,
                f"raw-{run}-{i}",
                random.choice(contact_ids),
                "",
                "page_view",
                datetime.now(UTC),
                datetime.now(UTC),
                json.dumps({"path": random.choice(PATHS)}),
                "",
            )
            for i in range(100_000)
        ]
        started = time.monotonic()
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO leads_event (source_id, client_id, contact_id, visitor_id, type, occurred_at, "
                "received_at, properties, channel) VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s)",
                rows,
            )
        conn.commit()
        return len(rows) / (time.monotonic() - started)


def main() -> None:
    url = bench_database_url()
    setup_django()
    from leads.models import ApiKey, Source

    source = Source.objects.create(name="bench", rate_limit=10_000_000)
    key = ApiKey.issue(source=source, scope=ApiKey.Scope.INGEST)[1]
    batch_runs, raw_runs, singles, minimal = [], [], [], []
    with (
        gunicorn(workers=4) as base,
        gunicorn(workers=4, app="bench.minimal:application", env={"BENCH_SOURCE": str(source.pk)}) as bare,
    ):
        batched_events_per_second(base, key, threads=2)  # warm up: creates the contacts
        for _ in range(RUNS):  # interleaved: each run of ours beside a run of its limit (the machine's pace drifts)
            batch_runs.append(vacuumed(url, lambda: batched_events_per_second(base, key)))
            raw_runs.append(vacuumed(url, lambda: raw_executemany_rows_per_second(url, source.pk)))
            singles.append(vacuumed(url, lambda: single_event_requests(base, key)))
            minimal.append(vacuumed(url, lambda: single_event_requests(bare, key)))
    batch_eps, raw_rps = statistics.median(batch_runs), statistics.median(raw_runs)
    minimal_rps = statistics.median(s[0] for s in minimal)
    single_rps = statistics.median(s[0] for s in singles)
    p50 = statistics.median(s[1] for s in singles)
    p99 = statistics.median(s[2] for s in singles)
    table(
        "Ingest (gunicorn, 4 sync workers; PostgreSQL and the load generator on the same 2 cores; tables vacuumed"
        " before each run, as autovacuum would)",
        ("path", "median", "runs", "floor", "note"),
        [
            (
                "batched, 500 events/request",
                f"{batch_eps:,.0f} events/s",
                " ".join(f"{v:,.0f}" for v in batch_runs),
                "10,000",
                f"ratio to raw executemany {batch_eps / raw_rps:.2f}",
            ),
            ("raw psycopg executemany", f"{raw_rps:,.0f} rows/s", " ".join(f"{v:,.0f}" for v in raw_runs), "", ""),
            (
                "one event per request",
                f"{single_rps:,.0f} req/s",
                " ".join(f"{s[0]:,.0f}" for s in singles),
                "1,000",
                f"p50 {p50:.1f} ms, p99 {p99:.1f} ms; {single_rps / minimal_rps:.2f} of the minimal view (goal 0.55)",
            ),
            (
                "minimal Django view, one INSERT per request",
                f"{minimal_rps:,.0f} req/s",
                " ".join(f"{s[0]:,.0f}" for s in minimal),
                "",
                f"p50 {statistics.median(s[1] for s in minimal):.1f} ms,"
                f" p99 {statistics.median(s[2] for s in minimal):.1f} ms",
            ),
        ],
    )


if __name__ == "__main__":
    main()
