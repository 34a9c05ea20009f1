"""Scoring work: rescore sets of contacts, keep stale ones fresh, rescore everyone with progress."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from django.db import connection, transaction
from django.utils import timezone

from crm import lifecycle
from crm.freshness import coalescing_key
from crm.lifecycle import Actor, Move
from crm.models import Stage
from crm.redis_client import get_redis
from handoff import services as handoff
from scoring import sql
from scoring.engine import Behaviour, Criteria, Fit
from scoring.models import CriteriaVersion, RescoreRun
from scoring.stages import automatic_move

log = logging.getLogger(__name__)
CHUNK = 5000
SWEEP_AGE = timedelta(seconds=30)
SWEEP_LIMIT = 20_000
RESCORE_RUNS = "baton:stats:rescore_runs"
FULL_RESCORE_LOCK = 7_340_001  # pg advisory lock key: one full rescore at a time


def criteria_of(version: CriteriaVersion) -> Criteria:
    return Criteria(
        version=version.number,
        behaviour=tuple(
            Behaviour(
                name=r.name,
                event_type=r.event_type,
                points=r.points,
                cap=r.cap,
                property_key=r.property_key,
                operator=r.operator,
                values=tuple(str(v).lower() for v in r.values),
            )
            for r in version.behaviour_rules.all()
        ),
        fit=tuple(
            Fit(name=r.name, field=r.field, operator=r.operator, points=r.points, values=tuple(r.values))
            for r in version.fit_rules.all()
        ),
        half_life_days=version.half_life_days,
        mql_threshold=version.mql_threshold,
        sql_threshold=version.sql_threshold,
        hysteresis=version.hysteresis,
        intent_days=version.intent_days,
        grade_a=version.grade_a,
        grade_b=version.grade_b,
        grade_c=version.grade_c,
    )


def active_criteria() -> Criteria:
    version = CriteriaVersion.objects.prefetch_related("behaviour_rules", "fit_rules").get(
        status=CriteriaVersion.Status.ACTIVE
    )
    return criteria_of(version)


@cache
def _statement(criteria: Criteria, by_range: bool) -> tuple[str, dict]:
    return sql.statement(criteria, by_range=by_range)


@dataclass(frozen=True)
class Rescored:
    contacts: int
    moves: list[Move]


def _rescore(criteria: Criteria, now: datetime, **target) -> Rescored:
    """Score the target contacts in one statement, then apply the stage rules. One transaction."""
    text, params = _statement(criteria, "lo" in target)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(text, params | target | {"now": now})
        rows = cursor.fetchall()
        moves = []
        for contact_id, stage, score, promotion_score, has_intent, _grade in rows:
            decision = automatic_move(
                stage=stage, score=score, promotion_score=promotion_score, has_intent=has_intent, criteria=criteria
            )
            if decision is not None:
                moves.append(Move(contact_id, stage, decision[0], decision[1], score))
        moved = lifecycle.move_many(moves=moves, by=Actor.scoring(criteria.version))
        sales_ready = [m.contact_id for m in moved if m.to == Stage.SQL]
        if sales_ready:  # entering sql puts the contact in the handoff queue
            handoff.enqueue(
                contact_ids=sales_ready,
                sent_by=f"scoring v{criteria.version}",
                now=now,
                sla=handoff.Sla(criteria.sla_unclaimed_minutes, criteria.sla_first_touch_minutes),
            )
        if moved:
            cursor.execute(
                "INSERT INTO scoring_scorehistory (contact_id, at, score, fit_score, engagement_score, stage)"
                " SELECT id, %s, score, fit_score, engagement_score, stage FROM crm_contact WHERE id = ANY(%s)",
                [now, [m.contact_id for m in moved]],
            )
    return Rescored(len(rows), moved)


def rescore(*, contact_ids: list[int], criteria: Criteria | None = None, now: datetime | None = None) -> Rescored:
    """Rescore these contacts against the active criteria and move their stages. Safe to run twice."""
    return _rescore(criteria or active_criteria(), now or timezone.now(), ids=list(contact_ids))


def rescore_stale(*, contact_ids: list[int]) -> Rescored:
    """Rescore contacts marked stale by ingest and clear the marks set before this run began.

    Deletes the coalescing keys first, so activity that arrives while this runs asks for another run.
    """
    pipe = get_redis().pipeline(transaction=False)
    pipe.delete(*(coalescing_key(pk) for pk in contact_ids))
    pipe.incr(RESCORE_RUNS)  # how many runs the nudges became: coalescing, observed
    pipe.execute()
    started = timezone.now()
    result = rescore(contact_ids=contact_ids, now=started)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE crm_contactactivity SET stale_since = NULL WHERE contact_id = ANY(%s) AND stale_since <= %s",
            [list(contact_ids), started],
        )
    return result


def sweep_stale() -> int:
    """Rescore contacts stale for longer than SWEEP_AGE (their task was lost, or is very late)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT contact_id FROM crm_contactactivity WHERE stale_since < %s ORDER BY stale_since LIMIT %s",
            [timezone.now() - SWEEP_AGE, SWEEP_LIMIT],
        )
        ids = [row[0] for row in cursor.fetchall()]
    for start in range(0, len(ids), CHUNK):
        rescore_stale(contact_ids=ids[start : start + CHUNK])
    if ids:
        log.info("sweeper rescored %d stale contacts", len(ids))
    return len(ids)


def start_full_rescore(*, version: CriteriaVersion) -> RescoreRun:
    """Record a full rescore run (the caller enqueues ``scoring.tasks.full_rescore`` on commit)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM crm_contact")
        total = cursor.fetchone()[0]
    return RescoreRun.objects.create(version=version, total=total)


def run_full_rescore(*, run_id: int) -> RescoreRun | None:
    """Rescore every contact in id chunks, recording progress on the run. Resumes where a lost worker
    stopped; returns None (doing nothing) if another full rescore holds the lock."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [FULL_RESCORE_LOCK])
        if not cursor.fetchone()[0]:
            return None
        try:
            run = RescoreRun.objects.select_related("version").get(pk=run_id)
            criteria = criteria_of(run.version)
            now = timezone.now()
            while run.finished_at is None:
                # The next CHUNK contacts by id (ids may be sparse): [lo, hi].
                cursor.execute(
                    "SELECT min(id), max(id) FROM (SELECT id FROM crm_contact WHERE id > %s ORDER BY id LIMIT %s) c",
                    [run.last_contact_id, CHUNK],
                )
                lo, hi = cursor.fetchone()
                if lo is None:
                    break
                done = _rescore(criteria, now, lo=lo, hi=hi).contacts
                run.last_contact_id, run.done = hi, min(run.total, run.done + done)
                run.save(update_fields=["last_contact_id", "done"])
            run.finished_at, run.done = timezone.now(), run.total
            run.save(update_fields=["finished_at", "done"])
            return run
        finally:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [FULL_RESCORE_LOCK])
