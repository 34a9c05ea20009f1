"""Data in and out: a 100,000-row CSV import end to end (upload check, store, batches, scoring), beside a raw
COPY of the same rows into crm_contact; and a 1,000,000-row export, beside a raw COPY TO STDOUT, with the
export's resident memory sampled as it streams.
"""

from __future__ import annotations

import contextlib
import io
import os
import statistics
import subprocess
import sys
import time

from bench.support import BASE_DIR, bench_database_url, setup_django, table

ROWS = 100_000
EXPORT_ROWS = 1_000_000
TITLES = ["Director of Marketing", "Engineer", "VP Sales", "Founder", "Analyst"]


def csv_file(run: int) -> bytes:
    lines = ["email,first_name,last_name,job_title,company,company_size,country,favourite_colour"]
    lines += [
        f"p{run}-{i}@example.com,First{i},Last{i},{TITLES[i % 5]},Company {i % 5000},{10 + i % 900},DE,blue"
        for i in range(ROWS)
    ]
    return ("\n".join(lines) + "\n").encode()


def wipe() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE crm_contact, crm_company, leads_import, leads_importfile CASCADE")


def import_once(run: int) -> float:
    """Upload checked and stored here, then the real worker (two processes) until the import is done: every
    row read and every contact it wrote scored."""
    from leads import import_rows, imports
    from leads.models import Import

    wipe()
    upload = io.BytesIO(csv_file(run))
    began = time.perf_counter()
    stored = imports.store_file(upload=upload, name="bench.csv", checked=import_rows.scan(upload))
    job = imports.create(file=stored, mapping={}, mode="upsert", overwrite=False, dry_run=False, start=True)
    while Import.objects.filter(pk=job.pk, state__in=["queued", "running"]).exists():
        time.sleep(0.05)
    elapsed = time.perf_counter() - began
    job.refresh_from_db()
    assert (job.state, job.created) == ("done", ROWS), (job.state, job.created, job.problem)
    return elapsed


@contextlib.contextmanager
def worker():
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "crm", "worker", "-l", "warning", "-c", "2", "--without-gossip"],
        cwd=BASE_DIR,
    )
    try:
        time.sleep(6)
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def copy_once(run: int) -> float:
    """The raw limit: the same rows COPYed into crm_contact's columns (no checks, no companies, no scores)."""
    from django.db import connection

    wipe()
    data = csv_file(run)
    began = time.perf_counter()
    with (
        connection.cursor() as cursor,
        cursor.copy(
            "COPY crm_contact (email, first_name, last_name, job_title, need, budget, country, timeline)"
            " FROM STDIN WITH (FORMAT csv, HEADER true)"
        ) as copy,
    ):
        copy.write(data)
    return time.perf_counter() - began


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def export_once() -> tuple[float, float, float]:
    """(seconds, RSS at start MiB, peak RSS while streaming MiB) for every contact as the export writes it."""
    from crm import csv_export
    from crm.models import Contact

    start = rss_mib()
    peak = start
    began = time.perf_counter()
    for count, _line in enumerate(csv_export.lines(Contact.objects.order_by("id"))):
        if count % 25 == 0:  # a chunk is 2,000 rows
            peak = max(peak, rss_mib())
    return time.perf_counter() - began, start, peak


def raw_export_once() -> float:
    from django.db import connection

    began = time.perf_counter()
    with (
        connection.cursor() as cursor,
        cursor.copy(
            "COPY (SELECT c.id, c.email, c.first_name, c.last_name, co.name, c.job_title, c.phone, c.country,"
            " c.channel, c.stage, c.score, c.fit_score, c.engagement_score, c.grade, c.trend, u.email, c.email_opt_out,"
            " c.last_activity_at, c.created_at FROM crm_contact c LEFT JOIN crm_company co ON co.id = c.company_id"
            " LEFT JOIN auth_user u ON u.id = c.owner_id ORDER BY c.id) TO STDOUT WITH (FORMAT csv, HEADER true)"
        ) as copy,
    ):
        for _ in copy:
            pass
    return time.perf_counter() - began


def main() -> None:
    bench_database_url()
    setup_django()
    from django.db import connection

    rows = []
    if os.environ.get("BENCH_IMPORT_EXPORT_ONLY"):
        return export(connection)
    with worker():
        for run in range(3):
            rows.append((copy_once(run), import_once(run)))
            print(".", end="", flush=True)
    raw = statistics.median(r for r, _ in rows)
    took = statistics.median(t for _, t in rows)
    table(
        f"Import: {ROWS:,} CSV rows (8 columns, 5,000 companies) end to end, medians of 3",
        ("path", "seconds", "rows/s", "runs", "ratio"),
        [
            (
                "raw: COPY into crm_contact",
                f"{raw:.2f}",
                f"{ROWS / raw:,.0f}",
                ", ".join(f"{r:.2f}" for r, _ in rows),
                "1.0",
            ),
            (
                "Baton: check, store; worker: batches, companies, scoring",
                f"{took:.2f}",
                f"{ROWS / took:,.0f}",
                ", ".join(f"{t:.2f}" for _, t in rows),
                f"{took / raw:.1f}",
            ),
        ],
    )

    export(connection)


def export(connection) -> None:
    wipe()
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO crm_company (name) SELECT 'Company ' || i FROM generate_series(1, 5000) i")
        cursor.execute(
            "INSERT INTO crm_contact (email, first_name, last_name, job_title, company_id, score)"
            " SELECT 'x' || i || '@example.com', 'First' || i, '=Last' || i, 'Engineer',"
            " (SELECT min(id) FROM crm_company) + i %% 5000, i %% 100 FROM generate_series(1, %s) i",
            [EXPORT_ROWS],
        )
    exports = []
    for _ in range(3):
        exports.append((raw_export_once(), *export_once()))
        print(".", end="", flush=True)
    raw = statistics.median(e[0] for e in exports)
    took = statistics.median(e[1] for e in exports)
    table(
        f"Export: {EXPORT_ROWS:,} contacts as CSV, medians of 3 (memory: resident set, sampled every 50,000 rows)",
        ("path", "seconds", "rows/s", "RSS start → peak MiB", "ratio"),
        [
            ("raw: COPY (SELECT …) TO STDOUT", f"{raw:.2f}", f"{EXPORT_ROWS / raw:,.0f}", "—", "1.0"),
            (
                "Baton: csv_export.lines (what both exports stream)",
                f"{took:.2f}",
                f"{EXPORT_ROWS / took:,.0f}",
                " · ".join(f"{start:.0f} → {peak:.0f}" for _, _, start, peak in exports),
                f"{took / raw:.1f}",
            ),
        ],
    )


if __name__ == "__main__":
    main()
