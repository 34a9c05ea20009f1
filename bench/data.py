"""Bench data at scale, built by COPY and kept: 100,000 contacts / 1,000,000 events, or 1,000,000 / 10,000,000.

``database(contacts, events)`` gives a fresh database holding that data, every contact scored under v1. The first
call builds a template database (``<name>_bench_<contacts>``: migrated, loaded with COPY, scored) and later calls
clone it (``CREATE DATABASE … TEMPLATE``), so a bench starts in seconds; a template built from other migrations or
another loader is built again. Repeatable: the same seed gives the same rows. The 1M / 10M template takes 4.6 GB
on disk (the events table and its indexes most of it), and each clone as much again while it exists.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import psycopg

from bench.support import BASE_DIR

LOADER = "3"  # change when the data changes: templates from another loader are built again
TYPES = ["page_view"] * 5 + ["email_open"] * 3 + ["email_click", "form_submit"]
PATHS = ["/", "/pricing", "/product/tour", "/blog/x", "/docs"]
FORMS = ["ebook", "webinar", "demo", "newsletter"]
FIRST = ["Ada", "Alan", "Grace", "Linus", "Barbara", "Edsger", "Donald", "Frances", "Ken", "Margaret"]
LAST = ["Lovelace", "Turing", "Hopper", "Torvalds", "Liskov", "Dijkstra", "Knuth", "Allen", "Thompson", "Hamilton"]
TITLES = ["Head of Data", "Engineer", "VP Sales", "", "Marketing Manager", "CTO"]
CHANNELS = ["google", "linkedin", "newsletter", "", "", "referral"]
COMPANIES = 10_000
DAYS = 180


def _admin(url: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/postgres"))


def _name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def _migrations() -> str:
    """What the template must have been migrated with: the migration files and the loader."""
    digest = hashlib.sha256(LOADER.encode())
    for path in sorted(BASE_DIR.glob("*/migrations/0*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def database(contacts: int, events: int) -> str:
    """A fresh database (the configured one's name + "_bench") holding the data; sets DATABASE_URL to it."""
    url = urlsplit(os.environ["DATABASE_URL"])
    base = url.path.lstrip("/")
    template, name = f"{base}_bench_{contacts}", f"{base}_bench"
    admin = _admin(os.environ["DATABASE_URL"])
    if not _current(urlunsplit(url._replace(path=f"/{template}"))):
        started = time.perf_counter()
        _build(urlunsplit(url._replace(path=f"/{template}")), contacts, events)
        print(f"built the {contacts:,} / {events:,} template in {time.perf_counter() - started:.0f} s")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        # By file copy: the default (WAL_LOG, PostgreSQL 15+) writes the whole clone through the WAL, and its
        # checkpoints then flushed gigabytes under the first timed requests (p95 188 ms against 42 ms).
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY')
        size = conn.execute("SELECT pg_size_pretty(pg_database_size(%s))", [name]).fetchone()[0]
    print(f"bench database: {contacts:,} contacts / {events:,} events, {size} on disk")
    os.environ["DATABASE_URL"] = urlunsplit(url._replace(path=f"/{name}"))
    return os.environ["DATABASE_URL"]


def _current(url: str) -> bool:
    try:
        with psycopg.connect(url) as conn:
            return conn.execute("SELECT signature FROM bench_template").fetchone()[0] == _migrations()
    except psycopg.Error:
        return False


def _build(url: str, contacts: int, events: int) -> None:
    name = _name(url)
    with psycopg.connect(_admin(url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    env = os.environ | {"DATABASE_URL": url}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=BASE_DIR, check=True, env=env)
    load(url, contacts, events)
    subprocess.run(
        [sys.executable, "-c", "from bench.data import score_all; score_all()"], cwd=BASE_DIR, check=True, env=env
    )
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE bench_template (signature text)")
        conn.execute("INSERT INTO bench_template VALUES (%s)", [_migrations()])
        conn.execute("VACUUM ANALYZE")


def load(url: str, contacts: int, events: int) -> None:
    """Companies, contacts and events by COPY; events scattered over contacts and the last DAYS days."""
    rng = random.Random(1)
    now = datetime.now(UTC)
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        source = cur.execute(
            "INSERT INTO leads_source (name, kind, allowed_origins, rate_limit, created_at, signing_secret)"
            " VALUES ('bench', 'website', '{}', 10000000, now(), '') RETURNING id"
        ).fetchone()[0]
        with cur.copy("COPY crm_company (name, domain, size, industry, country) FROM STDIN") as copy:
            for i in range(COMPANIES):
                copy.write_row(
                    (
                        f"Company {i}",
                        f"co{i}.example",
                        rng.choice([5, 20, 80, 300, 2000]),
                        rng.choice(["Software", "Retail", "Finance"]),
                        "DE",
                    )
                )
        first_company = cur.execute("SELECT min(id) FROM crm_company").fetchone()[0]
        with cur.copy(
            "COPY crm_contact (email, first_name, last_name, job_title, budget, channel, company_id, created_at)"
            " FROM STDIN"
        ) as copy:
            for i in range(contacts):
                copy.write_row(
                    (
                        f"c{i}@example.com",
                        rng.choice(FIRST),
                        rng.choice(LAST),
                        rng.choice(TITLES),
                        rng.choice(["", "10k"]),
                        rng.choice(CHANNELS),
                        first_company + rng.randrange(COMPANIES),
                        now - timedelta(days=730 * rng.random()),
                    )
                )
        first = cur.execute("SELECT min(id) FROM crm_contact").fetchone()[0]
        props = [json.dumps({"path": p}) for p in PATHS]
        forms = [json.dumps({"form": f}) for f in FORMS]
        with cur.copy(
            "COPY leads_event (source_id, client_id, contact_id, visitor_id, type, occurred_at, received_at,"
            " properties, channel) FROM STDIN"
        ) as copy:
            buffer = []
            for i in range(events):
                kind = TYPES[rng.randrange(10)]
                properties = forms[rng.randrange(4)] if kind == "form_submit" else props[rng.randrange(5)]
                at = (now - timedelta(seconds=DAYS * 86400 * rng.random())).isoformat()
                buffer.append(
                    f"{source}\tload-{i}\t{first + rng.randrange(contacts)}\t\t{kind}\t{at}\t{at}\t{properties}\t\n"
                )
                if len(buffer) == 50_000:
                    copy.write("".join(buffer))
                    buffer = []
            copy.write("".join(buffer))
        cur.execute(
            "INSERT INTO crm_contactactivity (contact_id, last_event_at)"
            " SELECT contact_id, max(occurred_at) FROM leads_event GROUP BY contact_id"
        )
        conn.commit()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def score_all() -> None:
    """Score every contact under v1 (the decay refresh, which scores from events whoever has no score yet)."""
    from bench.support import setup_django

    setup_django()
    from scoring import services

    services.refresh_decay()
