"""Leads list and lead page server time at 100,000 contacts / 1,000,000 events (issue #6's floor: p95 ≤ 150 ms).

Loads with COPY (bench.scoring's loader), scores everyone, then times the views in-process (the Django
test client: server time without the network), each scenario repeated; deep pages use a cursor 50,000
rows in.
"""

from __future__ import annotations

import base64
import json
import statistics
import time

from bench.scoring import load
from bench.support import bench_database_url, setup_django, table

REPEAT = 25
SCENARIOS = [
    ("default (MQLs first)", {}),
    ("stage = mql", {"stage": "mql"}),
    ("grade A, sorted by score", {"grade": "A", "sort": "score"}),
    ("score 20-60", {"min_score": 20, "max_score": 60}),
    ("active last 7 days, by activity", {"active": "7", "sort": "activity"}),
    ("search 'c4242'", {"q": "c4242"}),
    ("search 'head'", {"q": "head"}),
    ("newest first", {"sort": "created"}),
]


def cursor_at(sort_keys: list[str], offset: int, order: str) -> str:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(f"SELECT {', '.join(sort_keys)}, id FROM crm_contact ORDER BY {order} OFFSET %s LIMIT 1", [offset])
        row = [v.isoformat() if hasattr(v, "isoformat") else v for v in cur.fetchone()]
    return base64.urlsafe_b64encode(json.dumps(row).encode()).decode()


def timed(client, path: str, params: dict) -> tuple[float, float]:
    client.get(path, params)  # warm
    times = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        response = client.get(path, params)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.status_code
    return statistics.median(times), statistics.quantiles(times, n=20)[18]


def main() -> None:
    url = bench_database_url()
    setup_django()
    from django.db import connection
    from django.test import Client

    from crm.accounts import create_user
    from crm.models import Contact
    from leads.models import Source
    from scoring import services
    from scoring.models import CriteriaVersion

    load(url, Source.objects.create(name="bench").pk)
    services.run_full_rescore(
        run_id=services.start_full_rescore(version=CriteriaVersion.objects.get(status="active")).pk
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # as autovacuum would, now that scores are set
    mia = create_user(email="mia@example.com", password="x", role="marketing", validate=False)
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(mia)
    rows = []
    for label, params in SCENARIOS:
        p50, p95 = timed(client, "/leads/", params)
        rows.append((label, f"{p50:.1f} ms", f"{p95:.1f} ms"))
    deep = [
        (
            "deep page (score), 50,000 in",
            {"sort": "score", "after": cursor_at(["score"], 50_000, "score DESC, id DESC")},
        ),
        (
            "deep page (newest), 50,000 in",
            {"sort": "created", "after": cursor_at(["created_at"], 50_000, "created_at DESC, id DESC")},
        ),
    ]
    for label, params in deep:
        p50, p95 = timed(client, "/leads/", params)
        rows.append((label, f"{p50:.1f} ms", f"{p95:.1f} ms"))
    busiest = Contact.objects.order_by("-score").first()
    p50, p95 = timed(client, f"/leads/{busiest.pk}/", {})
    rows.append(("lead page (top scorer)", f"{p50:.1f} ms", f"{p95:.1f} ms"))
    table(
        f"Leads pages, server time, {REPEAT} requests each (100k contacts / 1M events, same 2 cores)",
        ("view", "p50", "p95"),
        rows,
    )


if __name__ == "__main__":
    main()
