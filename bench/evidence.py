"""Criteria that learn, at 100,000 contacts and 1,000,000 events with 5,000 labelled handoffs: rule evidence
(target ≤ 1 s) beside a hand-written statement reading the same events for one rule; the suggestion's
regression; a 90-day backtest of a draft and the active version (target ≤ 10 s) beside a bare running window
sum over the same events.

Loads the data with COPY (bench.data) into a scratch database. Medians of BENCH_RUNS runs.
"""

from __future__ import annotations

import time

import psycopg

from bench import data
from bench.support import median_of, setup_django, table

HANDOFFS = 5_000

RAW = """
SELECT q.id, coalesce(bool_or(e.type = 'page_view' AND e.properties ->> 'path' LIKE '/pricing%%'), false)
FROM handoff_queueentry q LEFT JOIN leads_event e ON e.contact_id = q.contact_id AND e.occurred_at <= q.entered_at
WHERE q.entered_at >= now() - interval '180 days' AND q.status IN ('accepted', 'won', 'lost', 'rejected')
GROUP BY q.id
"""


WINDOW_FLOOR = """
SELECT contact_id, max(s) FROM (
    SELECT contact_id, sum(CASE WHEN type = 'page_view' THEN 1 ELSE 0 END)
        OVER (PARTITION BY contact_id ORDER BY occurred_at, id ROWS UNBOUNDED PRECEDING) AS s
    FROM leads_event) r
GROUP BY contact_id
"""


def handoffs(url: str) -> None:
    with psycopg.connect(url) as conn:
        conn.execute(
            """
            INSERT INTO handoff_queueentry (contact_id, status, sent_by, reasons, note, facts, score, entered_at,
                unclaimed_due_at, first_touch_minutes, flagged, breaches, rejection_reason, rejection_text,
                first_touch_kind, first_touch_note, lost_reason, routed_at)
            SELECT id, (ARRAY['accepted', 'won', 'lost', 'rejected', 'rejected'])[1 + (id %% 5)], 'bench', '[]', '',
                '{}', 80, at, at, 120, false, 0, '', '', '', '', '', at
            FROM (SELECT id, now() - random() * interval '170 days' AS at FROM crm_contact ORDER BY random() LIMIT %s) s
            """,
            [HANDOFFS],
        )
        conn.commit()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE handoff_queueentry")


def timed(call) -> float:
    began = time.perf_counter()
    call()
    return time.perf_counter() - began


def main() -> None:
    url = data.database(100_000, 1_000_000)
    setup_django()
    from scoring import backtest, criteria, evidence, suggestions
    from scoring.models import CriteriaVersion
    from scoring.services import active_criteria, criteria_of

    handoffs(url)
    rules = active_criteria()
    found = evidence.evidence(rules)  # warm the caches, as the page would be
    ours, ours_runs = median_of(lambda: timed(lambda: evidence.evidence(rules)))

    def raw():
        with psycopg.connect(url) as conn:
            conn.execute(RAW).fetchall()

    floor, floor_runs = median_of(lambda: timed(raw))
    fit, fit_runs = median_of(lambda: timed(lambda: suggestions.suggest(found)))
    start, end = backtest.window(90)
    draft = criteria.draft()  # a draft as an admin might try: higher thresholds, pricing pages worth double
    CriteriaVersion.objects.filter(pk=draft.pk).update(mql_threshold=45, sql_threshold=75)
    draft.behaviour_rules.filter(name__startswith="Pricing").update(points=10)
    versions = [rules, criteria_of(CriteriaVersion.objects.get(pk=draft.pk))]
    replay, replay_runs = median_of(lambda: timed(lambda: backtest.replay_all(versions, start=start, end=end)))

    def window_floor():
        with psycopg.connect(url) as conn:
            conn.execute(WINDOW_FLOOR).fetchall()

    window, window_runs = median_of(lambda: timed(window_floor))
    table(
        f"Rule evidence: {HANDOFFS:,} labelled handoffs, 100,000 contacts, 1,000,000 events, "
        f"{len(found.rules)} rules (2 cores)",
        ("figure", "median of 3", "runs", "beside it", "ratio"),
        [
            (
                "evidence, every rule",
                f"{ours * 1000:.0f} ms",
                " ".join(f"{v * 1000:.0f}" for v in ours_runs),
                f"one rule, hand-written: {floor * 1000:.0f} ms",
                f"{ours / floor:.2f}",
            ),
            (
                "suggested points (regression)",
                f"{fit * 1000:.0f} ms",
                " ".join(f"{v * 1000:.0f}" for v in fit_runs),
                "",
                "",
            ),
            (
                "backtest, 90 days, draft and active",
                f"{replay:.2f} s",
                " ".join(f"{v:.2f}" for v in replay_runs),
                f"a bare running sum: {window:.2f} s",
                f"{replay / window:.2f}",
            ),
        ],
    )


if __name__ == "__main__":
    main()
