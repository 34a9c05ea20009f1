"""Scoring work: rescore sets of contacts, keep stale ones fresh, rescore everyone with progress."""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache, partial
from pathlib import Path

import redis
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from crm import lifecycle
from crm.celery import send_soon
from crm.freshness import taken
from crm.lifecycle import Actor, Move
from crm.models import STAGE_COPY, ScoreVersion, Stage, live_number
from crm.retry import retrying
from handoff import services as handoff
from leads import imports
from leads.forms import requested_forms
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
FULL_RESCORE_TASK = "scoring.tasks.full_rescore"
VACUUM_TASK = "scoring.tasks.vacuum_after_run"
IMPORTED_TASK = "scoring.tasks.rescore_imported"
IMPORT_SCORING_PATIENCE = 120.0  # seconds an import waits for other workers scoring its contacts
RUN_STALLED = timedelta(minutes=2)  # a run's worker stamps it every batch (seconds apart, paused ones included)
RUN_QUEUED = timedelta(minutes=1)  # a run no worker has started by then is sent again (resume_stalled_runs)
MAX_RESUMES = 5
COMPUTE_PASSES = 8  # a new version's scores are computed in this many passes over the events (its progress steps)
COMPUTE_CHUNK_MAX = 200_000
COMPUTE_AT_ONCE = 2  # passes computed at the same time while nothing else runs on the database (see batches())
COMPUTE_WORK_MEM = "256MB"
BACKGROUND_NICE = 10  # the CPU priority of a publish's or preview's passes (0 normal, 19 lowest)
SETTLE_CHUNK = 5_000  # contacts whose stage rules one short transaction applies after a switch
BUSY_CHUNK = 500  # contacts a transaction that moves stages takes at once while others use the database
REFRESH_CHUNK = 50_000  # contacts a decay refresh brings to now in one transaction


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
        sla_unclaimed_minutes=version.sla_unclaimed_minutes,
        sla_first_touch_minutes=version.sla_first_touch_minutes,
    )


def current_sla() -> handoff.Sla:
    """The handoff SLA of the active criteria: what entries opened now get."""
    unclaimed, first_touch = CriteriaVersion.objects.values_list(
        "sla_unclaimed_minutes", "sla_first_touch_minutes"
    ).get(status=CriteriaVersion.Status.ACTIVE)
    return handoff.Sla(unclaimed_minutes=unclaimed, first_touch_minutes=first_touch)


def active_criteria() -> Criteria:
    version = CriteriaVersion.objects.prefetch_related("behaviour_rules", "fit_rules").get(
        status=CriteriaVersion.Status.ACTIVE
    )
    return criteria_of(version)


def live_version() -> int:
    """The criteria version whose scores readers see."""
    return ScoreVersion.objects.values_list("live", flat=True).get()


def scored_versions() -> tuple[Criteria, Criteria | None]:
    """The live criteria, and the active one when its scores are still being computed (published, not live).
    One query for both, and their rules."""
    versions = list(
        CriteriaVersion.objects.prefetch_related("behaviour_rules", "fit_rules")
        .annotate(live=live_number())
        .filter(Q(number=F("live")) | Q(status=CriteriaVersion.Status.ACTIVE))
    )
    live = next(v for v in versions if v.number == v.live)
    active = next(v for v in versions if v.status == CriteriaVersion.Status.ACTIVE)
    return criteria_of(live), (criteria_of(active) if active.pk != live.pk else None)


@cache
def _statement(
    criteria: Criteria, by_range: bool, keep: bool = False, history: bool = True, write: bool = True
) -> tuple[str, dict]:
    text, params = sql.statement(criteria, by_range=by_range, keep=keep, history=history, write=write)
    return (text if write else sql.tallied(text)), params


@cache
def _carried(criteria: Criteria, write: bool, matches_carry: bool) -> tuple[str, dict]:
    text, params = sql.carried(criteria, write=write, matches_carry=matches_carry)
    return (text if write else sql.tallied(text, graded=True)), params


@cache
def _rescale(criteria: Criteria) -> tuple[str, dict]:
    return sql.rescale(criteria)


@dataclass(frozen=True)
class Rescored:
    contacts: int
    moves: list[Move]


def decided(row: tuple, criteria: Criteria, *, hold_sql: bool = False) -> tuple[Stage, str] | None:
    """The stage rules' move (stage, reason) for a row of the scoring statement (id, stage, score, promotion,
    intent, grade, held), or None."""
    _, stage, score, promotion_score, has_intent, _grade, held = row
    return automatic_move(
        stage=stage,
        score=score,
        promotion_score=promotion_score,
        has_intent=has_intent,
        criteria=criteria,
        hold_sql=hold_sql,
        held=held,
    )


def _move(criteria: Criteria, rows: list[tuple], now: datetime, *, notify: bool = True, hold_sql: bool = False):
    """Apply the stage rules to scored rows (id, stage, score, promotion, intent, grade, held); contacts entering
    sql enter the handoff queue (``notify=False``: without emailing sales; ``hold_sql``: nobody moves to sql)."""
    moves = []
    for row in rows:
        if (decision := decided(row, criteria, hold_sql=hold_sql)) is not None:
            contact_id, stage, score, *_ = row
            moves.append(Move(contact_id, stage, decision[0], decision[1], score))
    moved = lifecycle.move_many(moves=moves, by=Actor.scoring(criteria.version))
    sales_ready = [m.contact_id for m in moved if m.to == Stage.SQL]
    if sales_ready:  # entering sql puts the contact in the handoff queue
        handoff.enqueue(
            contact_ids=sales_ready,
            sent_by=f"scoring v{criteria.version}",
            now=now,
            sla=current_sla(),  # the active criteria's, as for a marketer's hand-over
            requested=requested_forms(contact_ids=sales_ready, now=now),
            notify=notify,
        )
    if moved:  # the score history marks each move with the stage it reached
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO scoring_scorehistory (contact_id, at, score, fit_score, engagement_score, stage)"
                " SELECT c.id, %s, s.score, s.fit_score, s.engagement_score, c.stage FROM crm_contact c"
                " JOIN crm_score s ON s.version = %s AND s.contact_id = c.id WHERE c.id = ANY(%s)",
                [now, criteria.version, [m.contact_id for m in moved]],
            )
    return moved


def _rescore(criteria: Criteria, now: datetime, *, notify: bool = True, hold_sql: bool = False, **target) -> Rescored:
    """Score the target contacts from their events under the live ``criteria``, then apply the stage rules."""
    text, params = _statement(criteria, "lo" in target)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(text, params | target | {"now": now})
        rows = cursor.fetchall()
        moved = _move(criteria, rows, now, notify=notify, hold_sql=hold_sql)
    return Rescored(len(rows), moved)


# The marks of the contacts just rescored, by their ids, locked in id order as ingest takes them: in the order of a
# bitmap scan (the heap's) a rescore and a request deadlocked (bench, 100k, under ingest). coalesce() keeps the
# planner off the index of stale marks: its statistics lag the backlog ingest builds in seconds (they said one row
# for 37,507), and a scan of that index filtered by id took 74 ms per 500-contact task where the ids' lookups take 7.
CLEAR_STALE = """
UPDATE crm_contactactivity a SET stale_since = NULL
FROM (
    SELECT contact_id FROM crm_contactactivity
    WHERE contact_id = ANY(%s) AND coalesce(stale_since, 'infinity') <= %s
    ORDER BY contact_id FOR NO KEY UPDATE
) marked
WHERE a.contact_id = marked.contact_id
"""


def rescore(
    *,
    contact_ids: list[int],
    criteria: Criteria | None = None,
    now: datetime | None = None,
    notify: bool = True,
    hold_sql: bool = False,
    clear_stale: bool = False,
) -> Rescored:
    """Rescore these contacts and move their stages (one transaction, retried after a deadlock): under the live
    criteria (or ``criteria``), and under a published version still being computed. ``clear_stale`` clears
    their stale marks set before ``now``, in the same transaction. Safe to run twice."""
    live, pending = (criteria, None) if criteria else scored_versions()
    now, ids = now or timezone.now(), sorted(set(contact_ids))

    def once() -> Rescored:
        with transaction.atomic(), connection.cursor() as cursor:
            # The version being computed first: its rows may be a pass's that has not committed yet, and this
            # waits for it holding none of the contact rows that the stage moves lock (which ingest writes too).
            if pending is not None:
                text, params = _statement(pending, False, history=False)
                cursor.execute(text, params | {"ids": ids, "now": now})
            result = _rescore(live, now, notify=notify, hold_sql=hold_sql, ids=ids)
            if clear_stale:
                cursor.execute(CLEAR_STALE, [ids, now])
            return result

    return retrying(once)


def rescore_stale(*, contact_ids: list[int], notify: bool = True, hold_sql: bool = False) -> Rescored:
    """Rescore contacts marked stale and clear the marks set before this run began.

    Takes the coalescing keys first, so that activity arriving while this runs asks for another run (with Redis
    down there are none to take: the sweeper stands in for the nudges).
    """
    if not contact_ids:
        return Rescored(0, [])
    try:
        taken(contact_ids, counter=RESCORE_RUNS)  # how many runs the nudges became: coalescing, observed
    except (redis.RedisError, OSError) as e:
        log.warning("coalescing keys not taken (%s)", e)
    # The new score and the cleared mark, together.
    return rescore(contact_ids=contact_ids, now=timezone.now(), notify=notify, hold_sql=hold_sql, clear_stale=True)


def rescore_all_stale(*, notify: bool = True) -> int:
    """Rescore every stale contact now, in chunks (demo seeding and imports). Returns how many."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT contact_id FROM crm_contactactivity WHERE stale_since IS NOT NULL ORDER BY 1")
        ids = [row[0] for row in cursor.fetchall()]
    for start in range(0, len(ids), CHUNK):
        rescore_stale(contact_ids=ids[start : start + CHUNK], notify=notify)
    return len(ids)


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


def run_import(*, import_id: int) -> None:
    """Run a CSV import to its end. Each batch's contacts are scored by other workers while this one reads on
    (or here, when the broker refuses them), without moving anyone to sql: an import tells nobody and starts
    no SLA clock (stages.automatic_move). The import is done once every contact it wrote has its score. A
    worker lost midway leaves the import to be resumed (leads.imports.resume_stalled)."""
    try:
        while (written := imports.step(import_id=import_id)) is not None:
            for start in range(0, len(written), CHUNK):
                chunk = written[start : start + CHUNK]
                if not send_soon(IMPORTED_TASK, [chunk], what=f"scoring of import {import_id}'s contacts"):
                    rescore_stale(contact_ids=chunk, hold_sql=True)
        _score_the_rest(import_id)
        imports.finish(import_id=import_id)
    except (OperationalError, InterfaceError):
        raise  # the database went away: the task retries, the import resumes where it stopped
    except Exception as e:
        log.exception("import %s failed", import_id)
        imports.fail(import_id=import_id, problem=f"Stopped by an error on our side ({type(e).__name__}): {e}")


def _score_the_rest(import_id: int) -> None:
    """Wait while other workers make progress on the import's scores; score here what is left."""
    waiting, waited = imports.unscored(import_id=import_id), 0.0
    while waiting and waited < IMPORT_SCORING_PATIENCE:
        time.sleep(0.2)
        waited += 0.2
        still = imports.unscored(import_id=import_id)
        if len(still) == len(waiting):  # nobody is scoring them (a single busy worker, a lost task)
            break
        waiting = still
    for start in range(0, len(waiting), CHUNK):
        rescore_stale(contact_ids=waiting[start : start + CHUNK], hold_sql=True)


def start_full_rescore(*, version: CriteriaVersion) -> RescoreRun:
    """Record a full rescore run (the caller enqueues ``scoring.tasks.full_rescore`` on commit)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM crm_contact")
        total = cursor.fetchone()[0]
    return RescoreRun.objects.create(version=version, total=total)


@contextmanager
def _full_rescore_lock() -> Iterator[bool]:
    """Try the session-level lock that one full rescore at a time holds; yields whether this one has it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [FULL_RESCORE_LOCK])
        held = cursor.fetchone()[0]
        try:
            yield held
        finally:
            if held:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [FULL_RESCORE_LOCK])


def full_rescore_running() -> bool:
    """Whether some worker is executing a full rescore now (holds the lock). Call inside a transaction:
    the probe is a transaction-level lock, released at its end."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [FULL_RESCORE_LOCK])
        return not cursor.fetchone()[0]


def chunks(after: int, size: int) -> Iterator[tuple[int, int, int]]:
    """The contacts after ``after`` as id ranges [lo, hi] of ``size`` contacts (ids may be sparse), with how
    many each holds (the last one fewer)."""
    with connection.cursor() as cursor:
        while True:
            cursor.execute(
                "SELECT min(id), max(id), count(*) FROM"
                " (SELECT id FROM crm_contact WHERE id > %s ORDER BY id LIMIT %s) c",
                [after, size],
            )
            lo, hi, n = cursor.fetchone()
            if lo is None:
                return
            yield lo, hi, n
            after = hi


def pass_size(total: int) -> int:
    """How many contacts one pass over the events scores, of ``total``: COMPUTE_PASSES passes in all."""
    return min(max(CHUNK, total // COMPUTE_PASSES + 1), COMPUTE_CHUNK_MAX)


def _stamp(run: RescoreRun, hi: int, done: int, *fields: str) -> None:
    run.last_contact_id, run.done, run.heartbeat_at = hi, min(run.total, done), timezone.now()
    run.save(update_fields=["last_contact_id", "done", "heartbeat_at", *fields])


# A statement over a range of contacts is planned for its range, until its transaction ends. psycopg prepares a
# statement its connection has run five times, and PostgreSQL may then keep one generic plan for any range: a worker
# applying the stage rules on a busy database (its chunks on one connection) took 0.9 s a chunk instead of 30 ms,
# 18 s a 100k publish.
CUSTOM_PLANS = "set_config('plan_cache_mode', 'force_custom_plan', true)"


@contextmanager
def heavy(cursor) -> Iterator[None]:
    """Inside a transaction (passes over many events): its sorts and hashes get COMPUTE_WORK_MEM and its statements
    are planned for their ranges (CUSTOM_PLANS) until it ends (nothing to reset, even after a failure), and its
    database process yields the CPU to live traffic while the block runs (see ``_niced``)."""
    assert connection.in_atomic_block, "heavy() sets work_mem for the transaction: call it inside one"
    cursor.execute(f"SELECT set_config('work_mem', %s, true), {CUSTOM_PLANS}, pg_backend_pid()", [COMPUTE_WORK_MEM])
    with _niced(cursor.fetchone()[2]):
        yield


LOCAL_HOSTS = {"", "localhost", "127.0.0.1", "::1"}


@contextmanager
def _niced(pid: int) -> Iterator[None]:
    """The database backend ``pid`` at a lower CPU priority (nice BACKGROUND_NICE) while the block runs, when
    PostgreSQL runs on this machine and we may give the priority back after (root): on a busy box a publish's
    passes then leave the cores to ingest and pages, and take them all when nothing else wants them. Otherwise
    the block runs as it would."""
    host = connection.settings_dict.get("HOST") or ""
    before = None
    try:
        if (
            os.geteuid() == 0
            and (host in LOCAL_HOSTS or host.startswith("/"))
            and Path(f"/proc/{pid}/comm").read_text().strip() == "postgres"
        ):
            before = os.getpriority(os.PRIO_PROCESS, pid)
            os.setpriority(os.PRIO_PROCESS, pid, max(before, BACKGROUND_NICE))
    except (OSError, AttributeError):  # not Linux, or not ours to renice
        before = None
    try:
        yield
    finally:
        if before is not None:
            with contextlib.suppress(OSError):  # the backend is gone (the connection broke)
                os.setpriority(os.PRIO_PROCESS, pid, before)


def _compute(run: RescoreRun, criteria: Criteria, now: datetime) -> None:
    """Score every contact under a version not yet live, beside the live scores, in a few large id ranges (each
    a pass, and a progress step): from the live scores' stored facts where the version's rules match the same
    events (a change of points, caps or fit rules reads no event), else from the events. A score a rescore of
    newer activity wrote meanwhile is kept."""
    source = carried_from(criteria)
    with connection.cursor() as cursor:  # written here, the passes at once do not queue on each other's legend
        cursor.execute(sql.LEGEND, sql.legend_params(criteria))

    def one(lo: int, hi: int, _n: int) -> None:
        with transaction.atomic(), connection.cursor() as cursor, heavy(cursor):
            scored_range(cursor, criteria, lo=lo, hi=hi, now=now, source=source, write=True)

    with Crew() as crew:
        for batch in passes(run.last_contact_id, run.total, yielding=True):
            crew.at_once(one, batch)
            _stamp(run, batch[-1][1], run.done + sum(n for _, _, n in batch))  # resumed after the batch's last
    with connection.cursor() as cursor:  # the switch and the stage rules read the new rows: plan for them
        cursor.execute("ANALYZE crm_score (version, contact_id, score, promotion_score)")


def scored_range(cursor, criteria: Criteria, *, lo: int, hi: int, now: datetime, source: Criteria | None, write: bool):
    """Score contacts lo..hi under ``criteria`` (a version not yet live): from version ``source``'s stored facts
    where they carry (``carried_from``), the rest from their events. Writes them (keeping a score already written)
    or, with ``write=False``, returns the rows of the scoring statement as ``sql.tallied`` counts them."""
    bounds, rows, rest, carried = {"lo": lo, "hi": hi, "now": now}, [], [], 0
    if not write:
        bounds |= sql.move_bounds(criteria)
    if source is not None:
        text, params = _carried(criteria, write, sql.same_matches(source, criteria))
        cursor.execute(text, params | bounds | {"source": source.version})
        if write:
            rest, carried = cursor.fetchone()
        else:
            found = cursor.fetchall()  # a row whose stage is NULL: a contact whose facts do not carry
            rows, rest = [r for r in found if r[1] is not None], [r[0] for r in found if r[1] is None]
            carried = len(rows)
    if carried and not rest:
        return rows
    by_range = not carried  # none carried (their facts predate the trend's counts): one pass over the range's events
    text, params = _statement(criteria, by_range, keep=True, history=False, write=write)
    cursor.execute(text, params | bounds | ({} if by_range else {"ids": rest}))
    return rows + cursor.fetchall()


def carried_from(criteria: Criteria) -> Criteria | None:
    """The live version, when ``criteria`` can be scored from its stored facts (sql.carried); else None."""
    live = scored_versions()[0]
    return live if live.version != criteria.version and sql.reusable(live, criteria) else None


def passes(after: int, total: int, *, yielding: bool = False) -> Iterator[tuple[tuple[int, int, int], ...]]:
    """The id ranges (lo, hi, contacts) of the passes over the events that score the contacts after ``after``
    (of ``total``), in ``batches``."""
    return batches(after, pass_size(total), yielding=yielding)


def batches(
    after: int, size: int, *, busy_size: int | None = None, yielding: bool = False
) -> Iterator[tuple[tuple[int, int, int], ...]]:
    """The contacts after ``after`` as id ranges (lo, hi, contacts) of ``size``, in batches to work at once
    (``at_once``): up to COMPUTE_AT_ONCE, on connections of their own, while nothing else is running on the
    database; one at a time on the caller's connection when it holds a transaction (the work must see what it
    wrote). On a busy database ingest and pages come first: one range at a time, of ``busy_size`` contacts when
    given (work that moves stages holds the moved contacts' rows, which ingest and rescores write too, until it
    commits), and, ``yielding`` (work nobody waits for), after each the database is left to the others for as
    long as the range took."""
    pause = 0.0
    while True:
        busy = not connection.in_atomic_block and not _quiet()
        alone = busy or connection.in_atomic_block
        ranges = chunks(after, busy_size if busy and busy_size else size)
        batch = tuple(itertools.islice(ranges, 1 if alone else COMPUTE_AT_ONCE))
        if not batch:
            return
        time.sleep(pause)  # the previous batch's, once there is more to do
        started = time.monotonic()
        yield batch
        pause = time.monotonic() - started if busy and yielding else 0.0
        after = batch[-1][1]


def _quiet() -> bool:
    """Whether no other session is running a statement on the database just now."""
    with connection.cursor() as cursor:
        cursor.execute(
            # Another role's sessions show no state unless we may read all statistics: taken as busy.
            "SELECT NOT EXISTS (SELECT FROM pg_stat_activity WHERE (state = 'active' OR state IS NULL)"
            " AND pid <> pg_backend_pid() AND backend_type = 'client backend' AND datname = current_database())"
        )
        return cursor.fetchone()[0]


class Crew:
    """Up to COMPUTE_AT_ONCE threads that work the batches of ``batches`` (``at_once``), each on a connection of its
    own that it keeps until the crew ends (a phase of a run, a preview): a connection per range cost a new database
    process with cold caches each time, ~50 ms a batch of a publish's stage rules. Use it as a context manager; its
    threads close their connections as it ends."""

    def __init__(self) -> None:
        self._tasks: queue.SimpleQueue = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> Crew:
        return self

    def __exit__(self, *exc) -> None:
        for _ in self._threads:
            self._tasks.put(None)
        for thread in self._threads:
            thread.join()

    def _serve(self) -> None:
        try:
            while (task := self._tasks.get()) is not None:
                future, work, item = task
                try:
                    future.set_result(work(*item))
                except BaseException as e:  # handed to the caller, which raises it
                    future.set_exception(e)
        finally:
            connection.close()  # this thread's

    def at_once[T](self, work: Callable[..., T], batch: tuple[tuple, ...]) -> list[T]:
        """``work(*item)`` for each item of a batch, in order: a batch of one here, a larger one at the same time in
        the crew's threads (raises what any raised, once all have ended)."""
        if len(batch) == 1:
            return [work(*batch[0])]
        while len(self._threads) < len(batch):
            thread = threading.Thread(target=self._serve, name=f"crew-{len(self._threads)}", daemon=True)
            thread.start()
            self._threads.append(thread)
        futures: list[Future] = []
        for item in batch:
            futures.append(Future())
            self._tasks.put((futures[-1], work, item))
        failures = [e for e in (future.exception() for future in futures) if e is not None]
        for also in failures[1:]:  # raised below is the first; the others are logged, not lost
            log.error("a pass that ran beside it failed too", exc_info=also)
        if failures:
            raise failures[0]
        return [future.result() for future in futures]


# The switch puts right the stages of the new version's scores (one join of every score with its contact).
REFILED = """
UPDATE crm_score n SET stage = c.stage FROM crm_contact c
WHERE n.version = %(version)s AND c.id = n.contact_id AND n.stage <> c.stage"""


def _switch(run: RescoreRun, criteria: Criteria, now: datetime) -> None:
    """Readers see the run's version from now on, all at once: one update of the live version (the version it
    replaces recorded on the run, for the score chart's points: ``_settle``). Retried after a deadlock (a rescore
    holding one of its rows may wait for the stage lock it holds)."""

    def once() -> None:
        with transaction.atomic(), connection.cursor() as cursor, heavy(cursor):
            live = ScoreVersion.objects.select_for_update().get()
            # Stage moves wait (STAGE_COPY) while its scores' stages are put right: a pass may have written a row
            # before a move of its contact committed, which the move's copy did not see. One read of every score
            # (joined in memory: ``heavy``).
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [STAGE_COPY])
            cursor.execute(REFILED, {"version": criteria.version})
            run.replaced, live.live = live.live, criteria.version
            live.save(update_fields=["live"])
            run.switched_at = timezone.now()
            _stamp(run, 0, run.total, "switched_at", "replaced")

    retrying(once)


def _settle(run: RescoreRun, criteria: Criteria, now: datetime) -> None:
    """After the switch, range by range: mark each score it moved on the score chart, apply the stage rules under
    the live version (only the contacts a rule moves are read: ``sql.moved_to``) and drop the scores of the
    versions before it (a newer version published meanwhile keeps what its rescores wrote)."""
    # A chunk's first statement marks on the score chart each score the switch moved (against the version it
    # replaced; none recorded by a run that switched before runs kept it: its switch marked them), in the stage it
    # was in, and reads whom a rule moves (the range bounds each table read: the planner carries no range across
    # a join, and the contacts were read whole by every chunk); its last drops the older versions' scores (so a chunk
    # applied again marks none), after the moves have locked the live scores: every writer locks the live scores first.
    # The replaced scores are read as the range they are (probed one by one for each score, as the planner chose,
    # they took 38 of a chunk's 66 ms at 1M).
    chunk = f"""
WITH replaced AS MATERIALIZED (  -- one range read, joined in memory
    SELECT contact_id, score FROM crm_score WHERE version = %(replaced)s AND contact_id BETWEEN %(lo)s AND %(hi)s
),
range AS MATERIALIZED (
    SELECT n.contact_id, n.score, n.fit_score, n.engagement_score, n.promotion_score, n.intent_at, n.grade, c.stage,
        c.stage_held, o.score AS replaced_score
    FROM crm_score n
    JOIN crm_contact c ON c.id = n.contact_id AND c.id BETWEEN %(lo)s AND %(hi)s
    LEFT JOIN replaced o ON o.contact_id = n.contact_id
    WHERE n.version = %(version)s AND n.contact_id BETWEEN %(lo)s AND %(hi)s
),
points AS (
    INSERT INTO scoring_scorehistory (contact_id, at, score, fit_score, engagement_score, stage)
    SELECT contact_id, %(now)s, score, fit_score, engagement_score, stage FROM range
    WHERE score <> replaced_score ORDER BY contact_id
)
SELECT contact_id, stage, score, promotion_score, intent, grade, stage_held FROM
    (SELECT *, coalesce(%(now)s - intent_at <= make_interval(days => %(intent_days)s), false) AS intent FROM range) r
WHERE {sql.moved_to("stage", "score", "promotion_score", "intent", "stage_held")} <> stage
ORDER BY contact_id"""
    params = {
        "now": now,
        "intent_days": criteria.intent_days,
        "version": criteria.version,
        "replaced": run.replaced,
        **sql.move_bounds(criteria),
    }
    with connection.cursor() as cursor:  # the versions before it that have scores (each has its legend)
        cursor.execute("SELECT array_agg(version) FROM crm_scorelegend WHERE version < %s", [criteria.version])
        params["before"] = cursor.fetchone()[0] or []

    def one(lo: int, hi: int, _n: int) -> None:
        def once() -> None:
            with transaction.atomic(), connection.cursor() as cursor:
                # A chunk's few thousand rows: parallel workers would take longer to start than the query runs.
                cursor.execute(f"SELECT set_config('max_parallel_workers_per_gather', '0', true), {CUSTOM_PLANS}")
                cursor.execute(chunk, params | {"lo": lo, "hi": hi})
                _move(criteria, cursor.fetchall(), now)
                # Each version's range by the primary key (a version range would walk every older version's rows).
                cursor.execute(
                    "DELETE FROM crm_score WHERE version = ANY(%(before)s) AND contact_id BETWEEN %(lo)s AND %(hi)s",
                    params | {"lo": lo, "hi": hi},
                )

        retrying(once)

    # Chunks at once on a quiet database: a chunk is mostly the database's work. Resumed after a batch's last
    # chunk, so a lost worker applies a batch again, which moves nobody twice (moves are conditional).
    with Crew() as crew:
        for batch in batches(run.last_contact_id, SETTLE_CHUNK, busy_size=BUSY_CHUNK, yielding=True):
            crew.at_once(one, batch)
            _stamp(run, batch[-1][1], run.total)


UNSCALABLE = """
    SELECT c.id FROM crm_contact c
    LEFT JOIN crm_score s ON s.version = %(version)s AND s.contact_id = c.id AND s.contact_id BETWEEN %(lo)s AND %(hi)s
    WHERE c.id BETWEEN %(lo)s AND %(hi)s
        AND (s.facts_at IS NULL OR s.recompute_at <= %(now)s OR cardinality(s.sums) <> %(rules)s)
    ORDER BY c.id"""


def refresh(*, criteria: Criteria, lo: int, hi: int, now: datetime) -> list[Move]:
    """Bring the live scores of contacts lo..hi to ``now`` and apply the stage rules (one transaction, retried
    after a deadlock): rescale the stored sums by their decay (no events read), and score from events the
    contacts whose facts do not scale (a window passed, other rules, never scored)."""
    text, params = _rescale(criteria)

    def once() -> list[Move]:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"SELECT {CUSTOM_PLANS}")
            cursor.execute(text, params | {"lo": lo, "hi": hi, "now": now})
            moved = _move(criteria, cursor.fetchall(), now)
            cursor.execute(
                UNSCALABLE,
                {"version": criteria.version, "lo": lo, "hi": hi, "now": now, "rules": len(criteria.behaviour)},
            )
            ids = [row[0] for row in cursor.fetchall()]
            if len(ids) > CHUNK:  # many (new rules, a first refresh): one pass over the range's events
                moved += _rescore(criteria, now, lo=lo, hi=hi).moves
            elif ids:
                moved += _rescore(criteria, now, ids=ids).moves
            return moved

    return retrying(once)


def _refresh(run: RescoreRun, criteria: Criteria, now: datetime) -> None:
    """The decay refresh of the run's contacts, chunks at once on a quiet database (see ``batches``), resumed
    after a batch (a chunk refreshed twice gives the same: its scores decay from the instant of their facts)."""

    def one(lo: int, hi: int, _n: int) -> None:
        refresh(criteria=criteria, lo=lo, hi=hi, now=now)

    with Crew() as crew:
        for batch in batches(run.last_contact_id, REFRESH_CHUNK, busy_size=BUSY_CHUNK, yielding=True):
            crew.at_once(one, batch)
            _stamp(run, batch[-1][1], run.done + sum(n for _, _, n in batch))


def _execute(run: RescoreRun) -> RescoreRun:
    """Carry the run to its end from its resume point, stamping progress and liveness as it goes. For a
    version not yet live: compute its scores beside the live ones, switch, apply the stage rules; for the live
    version: the decay refresh. Call holding the full-rescore lock. A finished or failed run is left as it is."""
    if not run.running:
        return run
    if run.version.status != CriteriaVersion.Status.ACTIVE:  # a newer version was published meanwhile
        run.failed_at, run.problem = timezone.now(), "Superseded: another version was published before it finished."
        run.save(update_fields=["failed_at", "problem"])
        return run
    criteria = criteria_of(run.version)
    now = run.heartbeat_at = timezone.now()  # started (or resumed): from here a silence means a lost worker
    run.save(update_fields=["heartbeat_at"])
    if run.switched_at is None and live_version() != criteria.version:
        _compute(run, criteria, now)
        _switch(run, criteria, now)
    if run.switched_at is None:
        _refresh(run, criteria, now)
    else:
        _settle(run, criteria, now)
    run.finished_at = run.heartbeat_at = timezone.now()
    run.done = run.total
    run.save(update_fields=["finished_at", "heartbeat_at", "done"])
    # A row per contact is dead now (a publish dropped a version's, a refresh wrote new ones), and one per contact it
    # moved: vacuumed by a task of its own, after the run (its readers need not wait for it, nor the next run for the
    # lock).
    transaction.on_commit(partial(send_soon, VACUUM_TASK, what="the vacuum after a run (the next run asks again)"))
    return run


def vacuum_after_run() -> None:
    """Make the rows a run left dead reusable, and plan for what is left: PostgreSQL's autovacuum may be off or far
    behind (off on this project's CI machine, where six publishes at 1M left 11.5 million dead rows and an 8 GB
    score table that every pass and page then read through). The scores, and the contacts whose stages it moved: a
    contact updated is a page the index-only scans that count and range the contacts (each pass, a preview's
    total) read again, until a vacuum marks it visible (at 1M a preview took 11.1-11.5 s before, 10.4 after). A
    failure is logged: the next run asks again."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("VACUUM (ANALYZE) crm_score, crm_contact")
    except (OperationalError, InterfaceError) as e:
        log.warning("the tables were not vacuumed after a run (%s)", e)


def run_full_rescore(*, run_id: int) -> RescoreRun | None:
    """Execute a recorded run, resuming where a lost worker stopped. Returns None, doing nothing, while
    another full rescore holds the lock (the task then tries again later)."""
    with _full_rescore_lock() as held:
        if not held:
            return None
        return _execute(RescoreRun.objects.select_related("version").get(pk=run_id))


def refresh_decay() -> RescoreRun | None:
    """Rescore everyone against the active criteria (scores decay with time), or first finish a run that
    lost its worker. Skipped, recording nothing, while another full rescore runs: that one does the job."""
    with _full_rescore_lock() as held:
        if not held:
            log.info("decay refresh skipped: a full rescore is running")
            return None
        unfinished = RescoreRun.objects.select_related("version").filter(finished_at=None, failed_at=None)
        for run in unfinished.order_by("pk"):
            _execute(run)
        return _execute(start_full_rescore(version=CriteriaVersion.objects.get(status=CriteriaVersion.Status.ACTIVE)))


def resume_stalled_runs(*, now: datetime | None = None) -> list[int]:
    """Find runs nobody executes and queue each again from its resume point: a run that started and lost its
    worker (no progress for RUN_STALLED, nobody holding the lock) counts as a resume, and is failed, saying
    so, after MAX_RESUMES; a run still waiting for a worker after RUN_QUEUED is only sent again.
    Returns the runs re-queued."""
    now = now or timezone.now()
    running = RescoreRun.objects.filter(finished_at=None, failed_at=None)
    stalled = running.filter(heartbeat_at__lt=now - RUN_STALLED) | running.filter(
        heartbeat_at=None, started_at__lt=now - RUN_QUEUED
    )
    if not stalled.exists():
        return []
    with _full_rescore_lock() as held:
        if not held:  # a live worker is executing a full rescore: the others wait their turn
            return []
        resumed = []
        for run in stalled.order_by("pk"):
            # Never started: its task is late or lost (Redis may keep no messages across a restart, and a publish
            # while it was down sent none). A copy that finds the run running or finished does nothing.
            if run.heartbeat_at is None:
                resumed.append(run.pk)
                continue
            if run.resumes >= MAX_RESUMES:
                run.failed_at = now
                run.problem = (
                    f"Stopped at {run.done:,} of {run.total:,} contacts: its worker was lost {run.resumes + 1} "
                    "times. Publish again to start over; the worker's log says why it died."
                )
                run.save(update_fields=["failed_at", "problem"])
                continue
            run.resumes, run.heartbeat_at = run.resumes + 1, now
            run.save(update_fields=["resumes", "heartbeat_at"])
            resumed.append(run.pk)
    for pk in resumed:
        queue_run(pk)
    if resumed:
        log.warning("queued again full rescore runs nobody was executing: %s", resumed)
    return resumed


def queue_run(run_id: int) -> None:
    """Send a run to the workers. Never raises for a broker outage: the sweeper sends it again later."""
    send_soon(FULL_RESCORE_TASK, [run_id], what=f"full rescore {run_id} (the sweeper sends it again)")
