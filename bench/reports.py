"""Reports at 100,000 and 1,000,000 contacts with a year of history (stage changes, handoffs, breaches; and ten
events per contact at 100,000): each report's server time over the API for the last 30 days (p95 of 20 requests,
median of 3 runs), beside the raw limit: the report's own SQL statement run by hand.
"""

from __future__ import annotations

import os
import statistics
import time

from bench.support import bench_database_url, setup_django, table

SIZES = [int(n) for n in os.environ.get("BENCH_REPORT_SIZES", "100000,1000000").split(",")]
REQUESTS = 20
HISTORY = """
INSERT INTO crm_contact (email, channel, created_at, updated_at, stage, score)
SELECT 'r' || i || '@example.com', (ARRAY['google', 'linkedin', 'newsletter', 'webinar', 'partner'])[1 + i %% 5],
    now() - (i %% 365) * interval '1 day' - (i %% 1440) * interval '1 minute', now(), 'lead', i %% 120
FROM generate_series(1, %(n)s) i;
INSERT INTO crm_stagechange (contact_id, from_stage, to_stage, at, by_label, reason, score, since)
SELECT id, f, t, created_at + d, 'scoring v1', '', 50, created_at + before FROM crm_contact c,
LATERAL (VALUES ('lead', 'mql', interval '2 days', interval '0 days', c.id %% 10 < 6),
                ('mql', 'sql', interval '5 days', interval '2 days', c.id %% 10 < 3),
                ('sql', 'opportunity', interval '6 days', interval '5 days', c.id %% 10 = 0),
                ('sql', 'lead', interval '6 days', interval '5 days', c.id %% 10 = 1),
                ('opportunity', 'customer', interval '30 days', interval '6 days', c.id %% 20 = 0))
    AS m(f, t, d, before, happened)
WHERE happened AND created_at + d < now();
INSERT INTO handoff_queueentry (contact_id, status, sent_by, reasons, note, facts, score, entered_at, unclaimed_due_at,
    first_touch_minutes, owner_id, claimed_at, first_touch_due_at, first_touch_at, first_touch_kind, first_touch_note,
    flagged, breaches, closed_at, rejection_reason, rejection_text)
SELECT sc.contact_id, CASE WHEN sc.contact_id %% 10 = 1 THEN 'rejected' ELSE 'accepted' END, 'scoring v1', '[]', '',
    '{}', 80, sc.at, sc.at + interval '1 hour', 120, (SELECT min(id) FROM auth_user) + sc.contact_id %% 4,
    sc.at + (sc.contact_id %% 90) * interval '1 minute', sc.at + interval '3 hours',
    sc.at + (sc.contact_id %% 300) * interval '1 minute', 'call', '', false, 0,
    CASE WHEN sc.contact_id %% 10 = 1 THEN sc.at + interval '1 day' END,
    CASE WHEN sc.contact_id %% 10 = 1 THEN (ARRAY['not_ready', 'no_budget', 'bad_fit', 'other'])[1 + sc.contact_id %% 4]
        ELSE '' END, ''
FROM crm_stagechange sc WHERE sc.to_stage = 'sql';
INSERT INTO handoff_slabreach (entry_id, kind, at, owner_id)
SELECT id, 'first_touch', entered_at + interval '3 hours', owner_id FROM handoff_queueentry WHERE id %% 7 = 0;
"""
EVENTS = """
INSERT INTO leads_event
    (source_id, client_id, contact_id, visitor_id, type, occurred_at, received_at, properties, channel)
SELECT (SELECT min(id) FROM leads_source), 'e' || c.id || '-' || k, c.id, '', 'page_view', c.created_at, c.created_at,
    '{"path": "/pricing"}', '' FROM crm_contact c, generate_series(1, 10) k
"""


def seed(n: int) -> None:
    from django.db import connection

    from crm.accounts import create_user
    from leads.models import Source

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE crm_contact, handoff_queueentry, handoff_slabreach, crm_stagechange, leads_event CASCADE"
        )
    for i in range(4):
        create_user(email=f"rep{i}@bench.test", password="x" * 12, role="sales", name=f"Rep {i}", validate=False)
    Source.objects.get_or_create(name="bench")
    with connection.cursor() as cursor:
        for statement in HISTORY.split(";\n"):
            if statement.strip():
                cursor.execute(statement, {"n": n})
        if n <= 100_000:
            cursor.execute(EVENTS)
        cursor.execute("ANALYZE")


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[18]


def timed(call) -> float:
    began = time.perf_counter()
    call()
    return (time.perf_counter() - began) * 1000


def main() -> None:
    bench_database_url()
    setup_django()
    from django.db import connection
    from django.test import Client

    from front import reports
    from front.report_query import ReportQuery
    from leads.models import ApiKey, Source

    for n in SIZES:
        seed(n)
        key = ApiKey.issue(source=Source.objects.get(name="bench"), scope=ApiKey.Scope.READ)[1]
        client = Client(HTTP_AUTHORIZATION=f"Bearer {key}", HTTP_HOST="localhost")
        query = ReportQuery({"period": "30"})
        assert query.is_valid()
        scope = query.scope()

        def raw(sql: str, params=scope.params):
            def run():
                with connection.cursor() as cursor:
                    cursor.execute(sql, params)
                    cursor.fetchall()

            return run

        cases = [
            (
                "funnel, cohort",
                "/api/v1/reports/funnel?mode=cohort",
                raw(reports.COHORT + " SELECT count(*) FROM furthest"),
            ),
            ("funnel, period", "/api/v1/reports/funnel?mode=period", raw(reports.PERIOD_ENTRIES)),
            ("speed to lead", "/api/v1/reports/speed", raw(reports._speed_sql("q.owner_id"))),
            (
                "rejections",
                "/api/v1/reports/rejections",
                raw(f"SELECT q.rejection_reason, count(*) {reports.REJECTED} GROUP BY 1"),
            ),
        ]
        rows = []
        for name, url, limit in cases:
            assert client.get(url).status_code == 200
            ours, theirs = [], []
            for _ in range(3):
                ours.append(p95([timed(lambda url=url, client=client: client.get(url)) for _ in range(REQUESTS)]))
                theirs.append(p95([timed(limit) for _ in range(REQUESTS)]))
            a, b = statistics.median(ours), statistics.median(theirs)
            rows.append((name, f"{a:.1f}", f"{b:.1f}", f"{a / b:.1f}", ", ".join(f"{v:.0f}" for v in ours)))
            print(".", end="", flush=True)
        table(
            f"Reports at {n:,} contacts, a year of history, last 30 days: p95 ms of {REQUESTS} requests, median of 3",
            ("report", "Baton (API, server time)", "raw: its main SQL by hand", "ratio", "runs"),
            rows,
        )


if __name__ == "__main__":
    main()
