"""Scores in their own table: a publish computes the new version beside the live one and switches readers at once;
the decay refresh rescales stored sums without reading events; rescoring races ingest without deadlocking."""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import replace
from datetime import timedelta

import psycopg
import pytest
from django.db import connection, connections
from django.test import Client
from django.utils import timezone

from crm.models import STAGE_COPY, Contact, Score, ScoreVersion, Stage, StageChange
from leads import ingest
from leads.models import Event
from scoring import criteria, engine, services
from scoring.models import CriteriaVersion, RescoreRun, ScoreHistory
from tests.conftest import database_url, wait_for
from tests.scores import reloaded
from tests.scoring.conftest import NOW

_n = itertools.count()


def _events(source, contact, kinds: list[tuple[str, dict]], at) -> None:
    Event.objects.bulk_create(
        Event(
            source=source,
            client_id=f"t{next(_n)}",
            contact=contact,
            type=type_,
            properties=properties,
            occurred_at=at,
            received_at=at,
        )
        for type_, properties in kinds
    )


def _draft_with_points_times(factor: int) -> CriteriaVersion:
    """A draft of the active version whose behaviour points are ``factor`` times as many."""
    draft = criteria.draft()
    for rule in draft.behaviour_rules.all():
        rule.points *= factor
        rule.save(update_fields=["points"])
    return draft


def test_the_refresh_rescales_stored_sums_without_reading_events(db, source, contact):
    """Events a month and more old (no window left to cross): weeks later the refresh gives what the definition
    gives, even with the events gone — it never read them."""
    at = NOW - timedelta(days=40)
    _events(source, contact, [("page_view", {"path": "/pricing"})] * 3 + [("email_open", {})] * 5, at)
    services.rescore(contact_ids=[contact.pk], now=NOW)
    active = services.active_criteria()
    facts = [
        engine.EventFacts(e.type, e.occurred_at, e.properties, None) for e in Event.objects.filter(contact=contact)
    ]
    Event.objects.filter(contact=contact).delete()
    later = NOW + timedelta(days=25)

    services.refresh(criteria=active, lo=contact.pk, hi=contact.pk, now=later)

    expected = engine.score(active, {"job_title": "Engineer"}, facts, now=later)
    contact = reloaded(contact)
    assert abs(contact.engagement_score - expected.engagement) < 0.015
    assert contact.score == expected.score
    assert contact.scored_at == later
    assert sum(e["points"] for e in contact.breakdown) == pytest.approx(contact.fit_score + contact.engagement_score)


def test_a_passed_window_is_scored_from_events_again(db, source, contact):
    """An event 13 days old counts in the trend's recent window: two days on it has moved to the prior one,
    which no rescaling can know, so the refresh scores the contact from its events."""
    _events(source, contact, [("page_view", {"path": "/pricing"})] * 4, NOW - timedelta(days=13))
    contact = reloaded(contact)
    services.rescore(contact_ids=[contact.pk], now=NOW)
    assert reloaded(contact).trend == "rising"
    assert Score.objects.get(contact=contact).recompute_at == NOW + timedelta(days=1)

    services.refresh(criteria=services.active_criteria(), lo=contact.pk, hi=contact.pk, now=NOW + timedelta(days=2))

    assert reloaded(contact).trend == "cooling"


def _contacts_scored_under_v1(source, n: int) -> list[int]:
    now = timezone.now()
    Contact.objects.bulk_create(Contact(email=f"v{i}@example.com") for i in range(n))
    made = list(Contact.objects.filter(email__startswith="v").order_by("pk"))
    for contact in made:
        _events(source, contact, [("page_view", {"path": "/pricing"})] * (1 + contact.pk % 3), now)
    services.rescore(contact_ids=[c.pk for c in made])
    return [c.pk for c in made]


@pytest.mark.django_db(transaction=True)
def test_readers_see_one_version_at_a_time_while_a_publish_computes(admin_ada, source, monkeypatch):
    """Polls the contacts (as the leads list and the API read them) while a worker thread computes v2 in many
    chunks: every read is all v1 or all v2, v1 is read while v2 is being computed, and v2 after."""
    ids = _contacts_scored_under_v1(source, 400)
    v1 = dict(Contact.objects.scored().filter(pk__in=ids).values_list("pk", "score"))
    monkeypatch.setattr(criteria, "queue_run", lambda run_id: None)  # executed here, not by a worker
    monkeypatch.setattr(services, "CHUNK", 10)
    monkeypatch.setattr(services, "COMPUTE_PASSES", 40)  # 40 chunks of 10 contacts, a pause after each
    stamp = services._stamp

    def slowly(*args, **kwargs):
        stamp(*args, **kwargs)
        time.sleep(0.05)

    monkeypatch.setattr(services, "_stamp", slowly)
    run = criteria.publish(version=_draft_with_points_times(2), by=admin_ada)
    worker = threading.Thread(target=lambda: (services.run_full_rescore(run_id=run.pk), connection.close()))
    worker.start()
    seen, during = [], 0
    while worker.is_alive():
        rows = list(Contact.objects.scored().filter(pk__in=ids).values_list("criteria_version", "pk", "score"))
        versions = {v for v, _, _ in rows}
        seen.append(versions)
        run.refresh_from_db()
        if versions == {1} and 0 < run.done < run.total:
            during += 1
            assert all(score == v1[pk] for _, pk, score in rows)
    worker.join()
    assert all(len(versions) == 1 for versions in seen), [v for v in seen if len(v) > 1][:3]
    assert during > 3, (during, len(seen), seen[:5], run.done, run.total)
    assert ScoreVersion.objects.get().live == 2
    after = dict(Contact.objects.scored().filter(pk__in=ids).values_list("pk", "score"))
    assert all(after[pk] > v1[pk] for pk in ids)
    assert set(Score.objects.values_list("version", flat=True)) == {2}  # v1's scores dropped after the switch


def _last_vacuum(table: str):
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT last_vacuum FROM pg_stat_user_tables WHERE relname = %s", [table])
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_a_publish_has_the_worker_vacuum_the_scores_and_contacts_after_it(
    admin_ada, source, monkeypatch, celery_worker
):
    """The version before it is dropped, a row per contact, and the contacts it moved were updated: once the run
    has finished, a task of its own vacuums both tables (autovacuum may be off, as on the CI machine), so the next
    publish writes into that space and readers do not read through it."""
    _contacts_scored_under_v1(source, 20)
    monkeypatch.setattr(criteria, "queue_run", lambda run_id: None)
    run = criteria.publish(version=_draft_with_points_times(2), by=admin_ada)
    started = timezone.now()

    services.run_full_rescore(run_id=run.pk)

    for table in ("crm_score", "crm_contact"):
        vacuumed = wait_for(lambda: (at := _last_vacuum(table)) is not None and at >= started and at)  # noqa: B023
        assert RescoreRun.objects.get(pk=run.pk).finished_at <= vacuumed  # after the run, not within it


@pytest.mark.django_db(transaction=True)
def test_a_publish_whose_database_connection_is_lost_carries_on_at_once_through_the_worker(
    admin_ada, source, celery_worker
):
    """The worker's connection ends midway (as a PostgreSQL restart ends every one): the task tries again within
    seconds from where the run stopped, instead of waiting for the sweeper to find the run stalled (RUN_STALLED;
    the suite's worker runs no sweeper, so the run would never finish)."""
    _contacts_scored_under_v1(source, 20)
    url = database_url(connection.settings_dict).replace("postgres://", "postgresql://")
    with psycopg.connect(url) as switch:
        switch.execute("SELECT pg_advisory_xact_lock(%s)", [STAGE_COPY])  # the run's switch waits for it
        run = criteria.publish(version=_draft_with_points_times(2), by=admin_ada)  # the worker executes it
        waiting = "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        pid = wait_for(lambda: (row := switch.execute(waiting).fetchone()) and row[0])
        switch.execute("SELECT pg_terminate_backend(%s)", [pid])
        switch.rollback()

    run = wait_for(lambda: RescoreRun.objects.filter(pk=run.pk, finished_at__isnull=False).first(), timeout=30)
    assert run.resumes == 0 and run.failed_at is None
    assert ScoreVersion.objects.get().live == 2


@pytest.mark.django_db(transaction=True)
def test_a_publish_racing_ingest_and_its_rescores_finishes_and_loses_nothing(
    admin_ada, source, ingest_key, monkeypatch
):
    """Four threads post events for 200 contacts (the contact rows ingest writes) and two rescore them (as the
    worker does) while v2 is computed, switched and its stage rules applied, moving most contacts to MQL: the
    run finishes, no request or rescore fails, and every contact's score is what its events say under v2."""
    ids = _contacts_scored_under_v1(source, 200)
    emails = list(Contact.objects.filter(pk__in=ids).values_list("email", flat=True))
    # The run is executed here and the two rescoring threads stand in for the worker: nothing is left queued for
    # the suite's worker to run into the next test.
    monkeypatch.setattr(criteria, "queue_run", lambda run_id: None)
    monkeypatch.setattr(ingest, "request_rescore_soon", lambda contact_ids: None)
    source.rate_limit = 1_000_000  # a race, not a flood: no 429s
    source.save()
    stop, failures, posted = threading.Event(), [], itertools.count()

    def post(offset: int) -> None:
        client = Client()
        for i in itertools.count(offset, 4):
            if stop.is_set():
                break
            answer = client.post(
                "/api/v1/events",
                {
                    "events": [
                        {
                            "id": f"race-{i}-{k}",
                            "type": "page_view",
                            "email": emails[(i + 37 * k) % len(emails)],
                            "properties": {"path": "/pricing"},
                            "contact": {"job_title": f"Title {i}"},  # the contact row's upsert writes
                        }
                        for k in range(5)
                    ]
                },
                content_type="application/json",
                headers={"authorization": f"Bearer {ingest_key}"},
            )
            if answer.status_code != 202:
                failures.append(answer.content)
            next(posted)
        connections.close_all()

    def rescore() -> None:
        while not stop.is_set():
            try:
                services.rescore_all_stale(notify=False)
            except Exception as e:  # noqa: BLE001 - any failure is the finding
                failures.append(repr(e))
        connections.close_all()

    threads = [threading.Thread(target=post, args=(k,)) for k in range(4)]
    threads += [threading.Thread(target=rescore) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        run = criteria.publish(version=_draft_with_points_times(10), by=admin_ada)
        services.run_full_rescore(run_id=run.pk)
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == []
    run = RescoreRun.objects.get(pk=run.pk)
    assert run.finished_at is not None and run.problem == ""
    assert next(posted) > 50
    services.rescore_all_stale(notify=False)
    stored = dict(Score.objects.filter(version=2).values_list("contact_id", "score"))
    text, params = services.sql.statement(services.active_criteria(), by_range=False, write=False)
    with connection.cursor() as cursor:
        cursor.execute(text, params | {"ids": ids, "now": timezone.now()})
        recomputed = {pk: score for pk, _, score, *_ in cursor.fetchall()}
    assert stored == recomputed
    assert Contact.objects.filter(pk__in=ids, stage=Stage.MQL).count() > 100


def test_computing_a_new_version_keeps_a_score_a_rescore_of_newer_activity_wrote_meanwhile(
    admin_ada, source, contact, monkeypatch
):
    """While v2 is computed, a rescore writes v2 too (from newer activity): the pass that reaches the contact later
    from an older snapshot leaves that score as it is."""
    monkeypatch.setattr(criteria, "queue_run", lambda run_id: None)
    run = criteria.publish(version=_draft_with_points_times(2), by=admin_ada)
    _events(source, contact, [("page_view", {"path": "/pricing"})] * 2, NOW)
    newer = NOW + timedelta(minutes=5)
    services.rescore(contact_ids=[contact.pk], now=newer)  # writes the live v1 and the v2 being computed
    assert Score.objects.get(version=2, contact=contact).scored_at == newer

    services._compute(run, services.active_criteria(), NOW)  # a pass that read the events before that rescore

    assert Score.objects.get(version=2, contact=contact).scored_at == newer


def test_a_publish_marks_each_score_it_moves_on_the_score_chart_once(admin_ada, source, monkeypatch):
    """Each contact whose score the new version moves gets one point on its score chart at the switch, with the
    new score and the stage it is in (the stage rules' moves add their own); a score that stays gets none."""
    moving, staying = Contact.objects.create(email="moving@example.com"), Contact.objects.create(email="s@example.com")
    _events(source, moving, [("page_view", {"path": "/pricing"})] * 2, NOW)
    services.rescore(contact_ids=[moving.pk, staying.pk], now=NOW)
    before = reloaded(moving).score
    monkeypatch.setattr(criteria, "queue_run", lambda run_id: None)
    run = criteria.publish(version=_draft_with_points_times(2), by=admin_ada)

    services.run_full_rescore(run_id=run.pk)

    moved = reloaded(moving)
    assert moved.score > before > 0 == reloaded(staying).score
    switch = ScoreHistory.objects.filter(at__gt=NOW)
    assert list(switch.values_list("contact_id", "score", "fit_score", "engagement_score", "stage")) == [
        (moving.pk, moved.score, moved.fit_score, moved.engagement_score, Stage.LEAD)
    ]


def test_a_switched_version_drops_the_scores_before_it_and_keeps_a_newer_versions(
    admin_ada, source, contact, monkeypatch
):
    """After v2's switch its run drops v1's scores; the scores a v3 published meanwhile has had written (its rescores
    write it as it is computed) stay, for v3's own run."""
    monkeypatch.setattr(criteria, "queue_run", lambda run_id: None)
    _events(source, contact, [("page_view", {"path": "/pricing"})] * 2, NOW)
    services.rescore(contact_ids=[contact.pk], now=NOW)
    run = criteria.publish(version=_draft_with_points_times(2), by=admin_ada)
    v2 = services.active_criteria()
    services._compute(run, v2, NOW)
    services._switch(run, v2, NOW)
    services.rescore(contact_ids=[contact.pk], criteria=replace(v2, version=3), now=NOW)  # as v3's rescores would

    services._settle(run, v2, NOW)

    assert sorted(Score.objects.filter(contact=contact).values_list("version", flat=True)) == [2, 3]


@pytest.mark.django_db(transaction=True)
def test_a_settle_that_fails_in_one_chunk_of_a_batch_resumes_before_the_batch(admin_ada, source, monkeypatch):
    """After the switch the stage rules run two chunks at once on a quiet database. The lower one fails while the
    upper one commits: the run resumes before both (the upper one's moves apply once), and nobody stays behind."""
    now = timezone.now()
    Contact.objects.bulk_create(Contact(email=f"s{i}@example.com") for i in range(8))
    made = list(Contact.objects.order_by("pk"))
    for contact in made:
        _events(source, contact, [("page_view", {"path": "/pricing"})] * 5, now)  # 30 points; 40 under v2 (a cap)
    services.rescore(contact_ids=[c.pk for c in made])
    assert set(Contact.objects.values_list("stage", flat=True)) == {Stage.LEAD}
    monkeypatch.setattr(criteria, "queue_run", lambda run_id: None)
    monkeypatch.setattr(services, "SETTLE_CHUNK", 2)
    monkeypatch.setattr(services, "_quiet", lambda: True)  # two at once, whatever else the test database runs
    run = criteria.publish(version=_draft_with_points_times(2), by=admin_ada)
    v2 = services.active_criteria()
    services._compute(run, v2, now)
    services._switch(run, v2, now)
    move, lowest = services._move, made[0].pk

    def failing_first(criteria_, rows, *args, **kwargs):
        if rows and rows[0][0] == lowest:
            raise RuntimeError("the worker was lost")
        return move(criteria_, rows, *args, **kwargs)

    monkeypatch.setattr(services, "_move", failing_first)
    with pytest.raises(RuntimeError):
        services._settle(run, v2, now)
    assert Contact.objects.filter(stage=Stage.MQL).count() == 2  # the chunk beside it committed
    run.refresh_from_db()
    assert run.last_contact_id < lowest

    monkeypatch.setattr(services, "_move", move)
    services._settle(run, v2, now)

    assert set(Contact.objects.values_list("stage", flat=True)) == {Stage.MQL}
    assert StageChange.objects.filter(by_label="scoring v2").count() == 8  # each moved once
    # On each chart once: the score the switch moved (in the stage it was in), then the move.
    points = ScoreHistory.objects.filter(at=now).order_by("contact_id", "id").values_list("contact_id", "stage")
    assert list(points) == [(c.pk, stage) for c in made for stage in (Stage.LEAD, Stage.MQL)]


@pytest.mark.django_db(transaction=True)
def test_a_refresh_that_fails_in_one_chunk_of_a_batch_resumes_before_the_batch(source, monkeypatch):
    """The decay refresh also runs two chunks at once on a quiet database: the lower one fails while the one
    beside it commits, and the run resumes before both; every score is brought to the refresh's instant."""
    Contact.objects.bulk_create(Contact(email=f"r{i}@example.com") for i in range(8))
    made = list(Contact.objects.order_by("pk"))
    for contact in made:
        _events(source, contact, [("page_view", {"path": "/pricing"})] * 5, NOW - timedelta(days=40))
    services.rescore(contact_ids=[c.pk for c in made], now=NOW)
    before = dict(Contact.objects.scored().values_list("pk", "score"))
    monkeypatch.setattr(services, "REFRESH_CHUNK", 2)
    monkeypatch.setattr(services, "_quiet", lambda: True)
    run = services.start_full_rescore(version=CriteriaVersion.objects.get(status=CriteriaVersion.Status.ACTIVE))
    refresh, lowest, later = services.refresh, made[0].pk, NOW + timedelta(days=60)

    def failing_first(**kwargs):
        if kwargs["lo"] == lowest:
            raise RuntimeError("the worker was lost")
        return refresh(**kwargs)

    monkeypatch.setattr(services, "refresh", failing_first)
    with pytest.raises(RuntimeError):
        services._refresh(run, services.active_criteria(), later)
    run.refresh_from_db()
    assert run.last_contact_id < lowest

    monkeypatch.setattr(services, "refresh", refresh)
    services._refresh(run, services.active_criteria(), later)

    after = dict(Contact.objects.scored().values_list("pk", "score"))
    assert all(after[pk] < before[pk] for pk in before), (before, after)
    assert len(set(after.values())) == 1  # alike contacts: the chunk refreshed twice decayed once


@pytest.mark.django_db(transaction=True)
def test_a_refresh_leaves_a_score_rescored_from_events_while_it_ran(source, contact):
    """The refresh reads the stored facts, then a rescore from events (newer facts) commits before the refresh
    writes: the refresh skips that contact rather than write a score decayed from the older facts."""
    import psycopg

    from tests.conftest import database_url

    at = NOW - timedelta(days=40)
    _events(source, contact, [("page_view", {"path": "/pricing"})] * 6, at)
    services.rescore(contact_ids=[contact.pk], now=NOW)
    rescorer = psycopg.connect(database_url(connection.settings_dict).replace("postgres://", "postgresql://"))
    rescorer.execute(  # as a rescore from events would write it, not committed yet
        "UPDATE crm_score SET score = 77, facts_at = %s WHERE contact_id = %s", [NOW + timedelta(days=1), contact.pk]
    )
    refresh = threading.Thread(
        target=lambda: (
            services.refresh(
                criteria=services.active_criteria(), lo=contact.pk, hi=contact.pk, now=NOW + timedelta(days=30)
            ),
            connection.close(),
        )
    )
    refresh.start()
    time.sleep(0.5)  # the refresh has read the old facts and waits for the row
    rescorer.commit()
    refresh.join()
    rescorer.close()

    assert reloaded(contact).score == 77


@pytest.mark.django_db(transaction=True)
def test_a_publish_whose_worker_dies_midway_resumes_and_switches_once_complete(admin_ada, source, monkeypatch):
    """The worker dies after two of its passes: readers still see v1 whole; run again, the run carries on from its
    resume point (the passes done are not redone), switches, and every contact has its v2 score."""
    ids = _contacts_scored_under_v1(source, 60)
    monkeypatch.setattr(criteria, "queue_run", lambda run_id: None)
    monkeypatch.setattr(services, "CHUNK", 10)
    monkeypatch.setattr(services, "COMPUTE_PASSES", 6)
    run = criteria.publish(version=_draft_with_points_times(2), by=admin_ada)
    stamp, stamped = services._stamp, []

    def dies_after_two(*args, **kwargs):
        if len(stamped) == 2:
            raise SystemExit("the worker was killed")
        stamp(*args, **kwargs)
        stamped.append(args[1])

    monkeypatch.setattr(services, "_stamp", dies_after_two)
    with pytest.raises(SystemExit):
        services.run_full_rescore(run_id=run.pk)
    run.refresh_from_db()
    assert run.finished_at is None and 0 < run.done < run.total and run.last_contact_id == stamped[-1]
    assert set(Contact.objects.scored().filter(pk__in=ids).values_list("criteria_version", flat=True)) == {1}

    monkeypatch.setattr(services, "_stamp", stamp)
    services.run_full_rescore(run_id=run.pk)

    run.refresh_from_db()
    assert run.finished_at is not None and ScoreVersion.objects.get().live == 2
    text, params = services.sql.statement(services.active_criteria(), by_range=False, write=False)
    with connection.cursor() as cursor:
        cursor.execute(text, params | {"ids": ids, "now": timezone.now()})
        expected = {pk: score for pk, _, score, *_ in cursor.fetchall()}
    assert dict(Contact.objects.scored().filter(pk__in=ids).values_list("pk", "score")) == expected


@pytest.mark.django_db(transaction=True)
def test_a_rescore_waiting_for_a_pass_holds_no_contact_row_meanwhile(admin_ada, source, monkeypatch):
    """During a publish a rescore writes the version being computed too. Where a pass has not committed that row
    yet, the rescore waits for it before it moves any stage: ingest's writes of the contact never queue behind
    the pass (a contact row locked meanwhile would hold every request for that contact for the pass's length)."""
    from django.db import OperationalError, transaction

    monkeypatch.setattr(criteria, "queue_run", lambda run_id: None)  # the run is not executed: v2 stays pending
    contact = Contact.objects.create(email="waits@example.com")
    criteria.publish(version=_draft_with_points_times(2), by=admin_ada)
    _events(source, contact, [("page_view", {"path": "/pricing"})] * 5 + [("email_click", {})] * 5, timezone.now())
    in_pass, done = threading.Event(), threading.Event()

    def a_pass_not_committed() -> None:  # as a publish's pass holds its rows until it commits
        with transaction.atomic():
            Score.objects.create(version=2, contact=contact)
            in_pass.set()
            done.wait(10)
            transaction.set_rollback(True)
        connection.close()

    holder = threading.Thread(target=a_pass_not_committed)
    holder.start()
    in_pass.wait(5)
    rescoring = threading.Thread(target=lambda: (services.rescore(contact_ids=[contact.pk]), connection.close()))
    rescoring.start()
    time.sleep(0.5)
    try:
        assert rescoring.is_alive()  # waiting for the pass
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM crm_contact WHERE id = %s FOR UPDATE NOWAIT", [contact.pk])
    except OperationalError as e:
        pytest.fail(f"the waiting rescore held the contact's row: {e}")
    finally:
        done.set()
        holder.join()
        rescoring.join()

    assert reloaded(contact).stage != Stage.LEAD  # the rescore went on once the pass had ended


@pytest.mark.django_db(transaction=True)
def test_on_a_busy_database_each_range_is_planned_for_itself(admin_ada, source, monkeypatch):
    """On a busy database a publish's passes and chunks, and the decay refresh's, run one after another on the
    worker's connection, where psycopg prepares a statement it has run five times; PostgreSQL may then keep one
    generic plan for every range (a 100k publish's stage rules took 18 s so, instead of 0.6). Here the session
    prefers generic plans: each statement over a range is still planned for its own."""
    Contact.objects.bulk_create(Contact(email=f"p{i}@example.com") for i in range(24))
    for contact in Contact.objects.all():
        _events(source, contact, [("page_view", {"path": "/pricing"})] * 5, NOW)
    services.rescore(contact_ids=list(Contact.objects.values_list("pk", flat=True)), now=NOW)
    monkeypatch.setattr(criteria, "queue_run", lambda run_id: None)
    monkeypatch.setattr(services, "_quiet", lambda: False)
    monkeypatch.setattr(services, "CHUNK", 2)  # passes of two contacts: 12 of each
    monkeypatch.setattr(services, "BUSY_CHUNK", 2)
    with connection.cursor() as cursor:
        cursor.execute("SET plan_cache_mode = force_generic_plan")

    run = criteria.publish(version=_draft_with_points_times(2), by=admin_ada)
    services.run_full_rescore(run_id=run.pk)
    services.refresh_decay()

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE %s",
            ["%BETWEEN%"],
        )
        prepared = cursor.fetchall()
        cursor.execute("RESET plan_cache_mode")
    planned = {" ".join(statement.split())[:20]: (generic, custom) for statement, generic, custom in prepared}
    # Each run prepared (five times or more): a publish's passes and chunks, the refresh's rescaling.
    assert set(planned) >= {"WITH target AS MATER", "WITH replaced AS MAT", "WITH f AS MATERIALIZ"}
    assert {key: generic for key, (generic, custom) in planned.items() if generic or not custom} == {}
    assert Contact.objects.filter(stage=Stage.MQL).count() == 24  # and the runs did their work
