"""The leads list and the lead page at 1,000,000 contacts / 10,000,000 events, over HTTP (gunicorn).

Data from bench.data (COPY, every contact scored). Each scenario: REPEAT requests by one logged-in marketer,
p50 and p95 client-measured, and the queries the page runs (counted in-process); beside it the raw limit, the
hand-written keyset statement on the score index that the page's main query is, timed from psycopg.
``BENCH_SCALE=100k`` runs it at 100,000 contacts.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import statistics
import time
from urllib.parse import urlencode, urlsplit

import psycopg

from bench import data
from bench.support import gunicorn, setup_django, table

REPEAT = 40
WORKERS = 4
WARM = 3 * WORKERS  # not timed: a page's first requests in each worker (its templates compiled, caches filled)
SCALES = {"100k": (100_000, 1_000_000), "1m": (1_000_000, 10_000_000)}
CONTACTS, EVENTS = SCALES[os.environ.get("BENCH_SCALE", "1m")]
SCENARIOS = [
    ("default (MQLs first)", {}),
    ("stage = mql", {"stage": "mql"}),
    ("grade A, sorted by score", {"grade": "A", "sort": "score"}),
    ("score 20-60", {"min_score": 20, "max_score": 60}),
    ("active last 7 days, by activity", {"active": "7", "sort": "activity"}),
    (
        "combined: lead, grade B, google, by activity",
        {"stage": "lead", "grade": "B", "channel": "google", "sort": "activity"},
    ),
    ("channel referral, never active", {"channel": "referral", "active": "never"}),
    ("search 'c4242@' (one contact)", {"q": "c4242@"}),
    ("search 'Hopper' (a tenth)", {"q": "Hopper"}),
    ("search 'company 77' (its people)", {"q": "Company 77"}),
    ("newest first", {"sort": "created"}),
]
LIMIT = """SELECT s.contact_id, s.score, c.email, c.first_name
FROM crm_score s JOIN crm_contact c ON c.id = s.contact_id
WHERE s.version = (SELECT live FROM crm_scoreversion) AND (s.score, s.contact_id) < (%s, %s)
ORDER BY s.score DESC, s.contact_id DESC LIMIT 51"""


def cursor_at(offset: int, sort: str) -> str:
    """The leads list's cursor for the row ``offset`` deep in a sort (as its "Next" link would carry)."""
    from django.db import connection

    order = {"score": "s.score", "created": "c.created_at"}[sort]
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT {order}, s.contact_id FROM crm_score s JOIN crm_contact c ON c.id = s.contact_id"
            " WHERE s.version = (SELECT live FROM crm_scoreversion)"
            f" ORDER BY {order} DESC, s.contact_id DESC OFFSET %s LIMIT 1",
            [offset],
        )
        key, pk = cur.fetchone()
    row = [0, key.isoformat() if hasattr(key, "isoformat") else key, pk]
    return base64.urlsafe_b64encode(json.dumps(row).encode()).decode()


def timed(base: str, cookie: str, path: str, repeat: int = REPEAT, warm: int = WARM) -> tuple[float, float] | None:
    conn = http.client.HTTPConnection(urlsplit(base).netloc, timeout=30)
    times = []
    for i in range(warm + repeat):
        started = time.perf_counter()
        conn.request("GET", path, headers={"Cookie": cookie, "Host": "127.0.0.1"})
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"{path}: {response.status}")
        if i >= warm:
            times.append((time.perf_counter() - started) * 1000)
    return (statistics.median(times), statistics.quantiles(times, n=20)[18]) if times else None


def queries(client, path: str) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        assert client.get(path).status_code == 200
    return len(captured)


def limit_ms(url: str) -> float:
    with psycopg.connect(url) as conn:
        top = conn.execute("SELECT max(score) + 1 FROM crm_score").fetchone()[0]
        times = []
        for _ in range(REPEAT):
            started = time.perf_counter()
            conn.execute(LIMIT, [top, 2**62]).fetchall()
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    url = data.database(CONTACTS, EVENTS)
    setup_django()
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore
    from django.test import Client

    from crm.accounts import create_user
    from crm.models import Score

    mia = create_user(email="mia@example.com", password="x", role="marketing", validate=False)
    session = SessionStore()
    session.update(
        {
            SESSION_KEY: str(mia.pk),
            BACKEND_SESSION_KEY: "django.contrib.auth.backends.ModelBackend",
            HASH_SESSION_KEY: mia.get_session_auth_hash(),
        }
    )
    session.save()
    cookie = f"{settings.SESSION_COOKIE_NAME}={session.session_key}"
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(mia)
    deep = CONTACTS // 2
    paths = [(label, "/leads/?" + urlencode(params)) for label, params in SCENARIOS]
    paths += [
        (
            f"deep page (score), {deep:,} in",
            "/leads/?" + urlencode({"sort": "score", "after": cursor_at(deep, "score")}),
        ),
        (
            f"deep page (newest), {deep:,} in",
            "/leads/?" + urlencode({"sort": "created", "after": cursor_at(deep, "created")}),
        ),
    ]
    top = Score.objects.live().order_by("-score").first().contact_id
    limit = limit_ms(url)
    rows = []
    with gunicorn(workers=WORKERS) as base:
        # Each worker's first requests (its URL resolver, templates and connection set up: 200-260 ms each) land
        # wherever the kernel hands the connections: not always among a page's own warm-up, and then they set the
        # first page's p95 (187 ms against 42 ms). Not timed.
        timed(base, cookie, "/leads/", repeat=0, warm=10 * WORKERS)
        for label, path in paths:
            p50, p95 = timed(base, cookie, path)
            rows.append((label, f"{p50:.1f} ms", f"{p95:.1f} ms", str(queries(client, path)), f"{limit:.2f} ms"))
        p50, p95 = timed(base, cookie, f"/leads/{top}/")
        rows.append(
            ("lead page (top scorer)", f"{p50:.1f} ms", f"{p95:.1f} ms", str(queries(client, f"/leads/{top}/")), "")
        )
    table(
        f"Leads pages over HTTP (gunicorn, {WORKERS} workers), {REPEAT} requests each after {WARM} to warm,"
        f" {CONTACTS:,} contacts / {EVENTS:,} events",
        ("view", "p50", "p95", "queries", "raw keyset statement"),
        rows,
    )


if __name__ == "__main__":
    main()
