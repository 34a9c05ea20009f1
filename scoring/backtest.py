"""Backtest (PRODUCT.md §10): replay the last N days of stored events under a version, set-based, and say when
each contact would have become MQL and SQL; SQLs per week against what the team claims in a week; how many of
the handoffs sales accepted and rejected each version would have sent (precision and recall).

A score only rises at an event (between events it decays), so a threshold is first crossed at an event: the
replay scores each contact at each of its events, from the events up to then. Decay factors out — Σ p·2^−(t−tₑ)/h
= 2^−(t−t₀)/h · Σ p·2^(tₑ−t₀)/h — so one window sum per rule over the events in time order gives every running
total, with the same matching conditions, caps and rounding as scoring.sql. Fit is today's profile; recycling,
manual adjustments and moves by hand are not replayed.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from crm.celery import send_soon
from crm.errors import DomainError
from scoring import sql
from scoring.engine import ADJUSTMENT, CONTACT_FIELDS, INTENT_KINDS, Criteria
from scoring.evidence import LABELLED
from scoring.models import Backtest, CriteriaVersion
from scoring.services import criteria_of

TASK = "scoring.tasks.backtest"

EXPONENT = 1000  # |exponent| bound of the decay factors, inside float8's range


def statement(versions: list[Criteria]) -> tuple[str, dict[str, Any]]:
    """SQL (with ``start`` and ``end``) returning, per contact, the first MQL and SQL moment under each version
    (columns mql0, sql0, mql1, sql1…). The versions share one pass: each distinct rule condition and half-life
    is matched and summed once, in one sort of the events."""
    params: dict[str, Any] = {"intent_kinds": list(INTENT_KINDS), "adjustment": ADJUSTMENT}
    conditions: dict[tuple, int] = {}  # (rule condition, half-life) → its running sum's index
    half_lives: dict[float, int] = {}
    matches, sums, fits, scores, finals = [], [], [], [], []
    g = 0  # every rule of every version has parameter names of its own
    for v, criteria in enumerate(versions):
        h = half_lives.setdefault(float(criteria.half_life_days), len(half_lives))
        params |= {
            f"intent_days{v}": criteria.intent_days,
            f"mql{v}": criteria.mql_threshold,
            f"sql{v}": criteria.sql_threshold,
            f"half_life{h}": float(criteria.half_life_days),
        }
        shares = []
        for rule in criteria.behaviour:
            key = (rule.event_type, rule.property_key, rule.operator, rule.values, h)
            if key not in conditions:
                k = conditions[key] = len(conditions)
                matches.append(f"{sql.behaviour_match(rule, k, params, form_kind='f.kind')} AS m{k}")
                sums.append(f"sum(CASE WHEN m{k} THEN w{h} ELSE 0 END) OVER running AS s{k}")
            shares.append(sql.capped(rule, g, f"r.s{conditions[key]} * r.d{h}", params))
            g += 1
        fit = " + ".join(
            f"CASE WHEN {sql.fit_match(rule, g + j, params)} THEN {float(rule.points)}::float8 ELSE 0 END"
            for j, rule in enumerate(criteria.fit)
        )
        g += len(criteria.fit)
        fits.append(f"({fit or '0'})::float8 AS fit{v}")
        scores.append(
            f"floor(r.fit{v} + {sql.cents(' + '.join(shares) or '0')} + 0.5) AS score{v}, coalesce(r.last_intent"
            f" >= r.occurred_at - make_interval(days => %(intent_days{v})s), false) AS intent{v}"
        )
        finals.append(
            f"min(occurred_at) FILTER (WHERE score{v} >= %(mql{v})s) AS mql{v}, "
            f"min(occurred_at) FILTER (WHERE score{v} >= %(sql{v})s AND intent{v}) AS sql{v}"
        )
    weights, decays = [], []
    for half_life, h in half_lives.items():
        if half_life <= 0:
            weights.append(f"1.0::float8 AS w{h}")
            decays.append(f"1.0::float8 AS d{h}")
            continue
        exponent = f"date_part('epoch', {{a}} - %(start)s) / 86400 / %(half_life{h})s"
        bounded = f"least({EXPONENT}, greatest(-{EXPONENT}, {exponent}))"
        weights.append(f"power(2::float8, {bounded.format(a='e.occurred_at')}) AS w{h}")
        decays.append(f"power(2::float8, -{bounded.format(a='occurred_at')}) AS d{h}")
    fit_names = [f"fit{v}" for v in range(len(versions))]
    text = f"""
WITH active AS (  -- contacts with an event in the window
    SELECT DISTINCT contact_id AS id FROM leads_event
    WHERE occurred_at >= %(start)s AND occurred_at <= %(end)s AND contact_id IS NOT NULL AND type <> %(adjustment)s
),
t AS (
    SELECT c.id, c.email, c.profile, {", ".join(f"c.{n}" for n in CONTACT_FIELDS)}, co.size AS company_size,
        co.industry
    FROM active a JOIN crm_contact c ON c.id = a.id LEFT JOIN crm_company co ON co.id = c.company_id
),
fit AS (SELECT t.id, {", ".join(fits)} FROM t),
ev AS MATERIALIZED (
    SELECT e.contact_id, e.id, e.occurred_at, {", ".join(f"fit.{n}" for n in fit_names)}, {", ".join(weights)},
        (e.type = 'form_submit' AND f.kind = ANY(%(intent_kinds)s::text[])) AS intent_form
        {"".join(", " + m for m in matches)}
    FROM fit JOIN leads_event e ON e.contact_id = fit.id
    LEFT JOIN leads_form f ON e.type = 'form_submit' AND f.slug = e.properties ->> 'form'
    WHERE e.occurred_at <= %(end)s AND e.type <> %(adjustment)s
),
r AS (
    SELECT contact_id, occurred_at, {", ".join(fit_names)}, {", ".join(decays)},
        max(CASE WHEN intent_form THEN occurred_at END) OVER running AS last_intent
        {"".join(", " + s for s in sums)}
    FROM ev WINDOW running AS (PARTITION BY contact_id ORDER BY occurred_at, id ROWS UNBOUNDED PRECEDING)
),
scored AS (
    SELECT r.contact_id, r.occurred_at, {", ".join(scores)}
    FROM r
    WHERE r.occurred_at >= %(start)s
)
SELECT contact_id, {", ".join(finals)}
FROM scored GROUP BY contact_id"""
    return text, params


@dataclass(frozen=True)
class Moments:
    mql: dict[int, datetime]
    sql: dict[int, datetime]


def replay(criteria: Criteria, *, start: datetime, end: datetime) -> Moments:
    return replay_all([criteria], start=start, end=end)[0]


def replay_all(versions: list[Criteria], *, start: datetime, end: datetime) -> list[Moments]:
    """Each version's MQL and SQL moments, from one statement."""
    text, params = statement(versions)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL work_mem = '128MB'")  # the one sort of the window's events, in memory
        cursor.execute(text, params | {"start": start, "end": end})
        rows = cursor.fetchall()
    return [
        Moments(
            mql={row[0]: row[1 + 2 * v] for row in rows if row[1 + 2 * v] is not None},
            sql={row[0]: row[2 + 2 * v] for row in rows if row[2 + 2 * v] is not None},
        )
        for v in range(len(versions))
    ]


def summary(moments: Moments, *, start: datetime, end: datetime) -> dict[str, Any]:
    """What the page shows of one version's replay: counts, SQLs per week, precision and recall."""
    weeks = _weeks(start, end)
    per_week = [0] * len(weeks)
    for at in moments.sql.values():
        per_week[min(len(weeks) - 1, (at - start).days // 7)] += 1
    labelled = _labelled(start, end)
    sent_accepted = sum(1 for pk, (accepted, at) in labelled.items() if accepted and _sent(moments, pk, at))
    sent = sum(1 for pk, (_, at) in labelled.items() if _sent(moments, pk, at))
    accepted = sum(1 for accepted, _ in labelled.values() if accepted)
    return {
        "mql": len(moments.mql),
        "sql": len(moments.sql),
        "weeks": [w.isoformat() for w in weeks],
        "sql_per_week": per_week,
        "labelled": len(labelled),
        "sent_labelled": sent,
        "precision": sent_accepted / sent if sent else None,
        "recall": sent_accepted / accepted if accepted else None,
    }


def _sent(moments: Moments, contact_id: int, handoff_at: datetime) -> bool:
    """Whether the version would have sent this contact to sales by the time sales got it."""
    at = moments.sql.get(contact_id)
    return at is not None and at <= handoff_at


def _labelled(start: datetime, end: datetime) -> dict[int, tuple[bool, datetime]]:
    """Each contact with a labelled handoff in the window: (accepted, when it entered the queue), the first one."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT ON (contact_id) contact_id, status <> 'rejected', entered_at FROM handoff_queueentry"
            " WHERE entered_at >= %s AND entered_at <= %s AND status = ANY(%s) ORDER BY contact_id, entered_at",
            [start, end, list(LABELLED)],
        )
        return {pk: (accepted, at) for pk, accepted, at in cursor.fetchall()}


def _weeks(start: datetime, end: datetime) -> list[datetime]:
    weeks, at = [], start
    while at < end:
        weeks.append(at)
        at += timedelta(days=7)
    return weeks


def capacity(*, start: datetime, end: datetime) -> float:
    """What the team claims in a week: the median of the window's weekly claims."""
    weeks = _weeks(start, end)
    counts = [0] * len(weeks)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT claimed_at FROM handoff_queueentry WHERE claimed_at >= %s AND claimed_at <= %s", [start, end]
        )
        for (at,) in cursor.fetchall():
            counts[min(len(weeks) - 1, (at - start).days // 7)] += 1
    return float(statistics.median(counts)) if counts else 0.0


def window(days: int, now: datetime | None = None) -> tuple[datetime, datetime]:
    end = now or timezone.now()
    return end - timedelta(days=days), end


class BacktestRefused(DomainError):
    pass


def start(*, version: CriteriaVersion, days: int) -> Backtest:
    """Queue a backtest of ``version`` against the active one; the worker runs it (scoring.tasks.backtest).
    Refuses a half-life so short that the replay's decay factors would leave float8's range."""
    active = CriteriaVersion.objects.get(status=CriteriaVersion.Status.ACTIVE)
    shortest = min((v.half_life_days for v in (active, version) if v.half_life_days > 0), default=None)
    if shortest is not None and days / shortest > EXPONENT:
        raise BacktestRefused(
            f"A half-life of {shortest:g} days is too short to replay {days} days; replay at most "
            f"{int(shortest * EXPONENT)} days."
        )
    run = Backtest.objects.create(version=version, days=days)
    transaction.on_commit(partial(send_soon, TASK, [run.pk], what=f"backtest {run.pk}"))
    return run


def run(*, backtest_id: int) -> Backtest:
    """Replay the active version and the draft (one statement); a failure is recorded, not hidden."""
    test = Backtest.objects.select_related("version").get(pk=backtest_id)
    start_at, end_at = window(test.days, test.started_at)
    try:
        active = CriteriaVersion.objects.get(status=CriteriaVersion.Status.ACTIVE)
        Backtest.objects.filter(pk=test.pk).update(steps_done=1)  # under way
        both = replay_all([criteria_of(active), criteria_of(test.version)], start=start_at, end=end_at)
        result = {
            name: summary(moments, start=start_at, end=end_at) | {"number": version.number}
            for name, version, moments in (("active", active, both[0]), ("draft", test.version, both[1]))
        }
        result["capacity"] = capacity(start=start_at, end=end_at)
        Backtest.objects.filter(pk=test.pk).update(result=result, finished_at=timezone.now(), steps_done=2)
    except Exception as e:
        Backtest.objects.filter(pk=test.pk).update(failed_at=timezone.now(), problem=f"The replay failed: {e}")
        if not isinstance(e, DatabaseError):
            raise  # a bug: recorded for the page, and loud in the worker's log
    return Backtest.objects.get(pk=test.pk)
