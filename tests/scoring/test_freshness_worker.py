"""Scores kept fresh by a real Celery worker: end to end, coalescing, lost nudges, worker loss."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from datetime import timedelta

import psutil
import psycopg
import pytest
from django.db import connection, transaction
from django.utils import timezone

from crm import freshness, retry
from crm.models import Contact, ContactActivity, Stage
from crm.redis_client import get_redis
from leads import ingest
from leads.schemas import EventIn
from scoring import services
from scoring.models import CriteriaVersion, RescoreRun
from scoring.tasks import full_rescore, refresh_decay, rescore_contacts, sweep_stale
from tests.conftest import database_url, running_worker, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def sales_ready(email, prefix="e"):
    return {
        "events": [
            {"id": f"{prefix}-demo", "type": "form_submit", "email": email, "properties": {"form": "demo"}},
            *(
                {"id": f"{prefix}-p{i}", "type": "page_view", "email": email, "properties": {"path": "/pricing"}}
                for i in range(6)
            ),
            {"id": f"{prefix}-c", "type": "email_click", "email": email},
        ]
    }


def test_posted_events_make_a_contact_an_sql_through_the_worker(send, celery_worker):
    assert send(sales_ready("ada@example.com")).status_code == 202

    ada = wait_for(lambda: Contact.objects.scored().filter(email="ada@example.com", stage=Stage.SQL).first())

    rules = {entry["rule"]: entry for entry in ada.breakdown}
    assert rules["Demo or contact request"] == {
        "rule": "Demo or contact request",
        "kind": "behaviour",
        "events": 1,
        "points": 40,
    }
    assert rules["Pricing or product page"]["events"] == 6
    assert ada.stage_changes.get().by_label == "scoring v1"
    assert ada.last_activity_at is not None
    wait_for(lambda: ContactActivity.objects.filter(contact=ada, stale_since=None).exists())


def test_a_burst_for_one_contact_coalesces_into_a_handful_of_rescores(send, celery_worker):
    get_redis().delete(services.RESCORE_RUNS)
    started = time.monotonic()
    for i in range(200):
        send({"id": f"burst-{i}", "type": "email_open", "email": "ada@example.com"})
    elapsed = time.monotonic() - started

    wait_for(lambda: ContactActivity.objects.filter(contact__email="ada@example.com", stale_since=None).exists())
    runs = int(get_redis().get(services.RESCORE_RUNS) or 0)

    assert 1 <= runs <= 5 + 6 * elapsed  # ~one run per 0.2 s coalescing window, not 200
    assert Contact.objects.scored().get(email="ada@example.com").engagement_score == 10  # capped at 10


def test_a_nudge_that_reaches_the_worker_before_its_ingest_commits_waits_for_the_commit(website, celery_worker):
    event = EventIn.model_validate(
        {"id": "early", "type": "form_submit", "email": "eve@example.com", "properties": {"form": "demo"}}
    )
    with transaction.atomic():
        ingest.record(source=website, events=[event], received_at=timezone.now())  # the task is queued now
        time.sleep(1)  # and has reached the worker, which must not read before this commits

    eve = wait_for(lambda: Contact.objects.scored().filter(email="eve@example.com", scored_at__isnull=False).first())
    assert eve.activity.stale_since is None


@pytest.mark.django_db(transaction=False)
def test_a_rescore_inside_the_ingesting_transaction_sees_its_events(website):
    event = EventIn.model_validate({"id": "own", "type": "email_open", "email": "own@example.com"})
    contact_id = ingest.record(source=website, events=[event], received_at=timezone.now()).contact_ids[0]

    services.rescore_stale(contact_ids=[contact_id])  # as the demo's seeding does, in the same transaction

    assert Contact.objects.scored().get(pk=contact_id).scored_at is not None


def test_when_the_broker_is_unreachable_the_sweeper_catches_up(send, celery_worker, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    get_redis.cache_clear()
    try:
        assert send(sales_ready("ria@example.com")).status_code == 202  # stored; the nudge is lost
        time.sleep(5 * freshness.NUDGE_EVERY)  # (it is sent from the process's nudging thread)
    finally:
        settings.REDIS_URL = os.environ["REDIS_URL"]
        get_redis.cache_clear()
    time.sleep(1)
    assert Contact.objects.scored().get(email="ria@example.com").scored_at is None
    ContactActivity.objects.update(stale_since=timezone.now() - timedelta(minutes=2))  # as if time passed

    sweep_stale.delay()

    ria = wait_for(lambda: Contact.objects.scored().filter(email="ria@example.com", stage=Stage.SQL).first())
    assert ria.activity.stale_since is None


def test_a_full_rescore_runs_through_the_worker_with_progress(celery_worker, add_event):
    contacts = [Contact.objects.create(email=f"c{i}@example.com") for i in range(30)]
    for contact in contacts[:10]:
        add_event(contact, "form_submit", form="demo")
    run = services.start_full_rescore(version=CriteriaVersion.objects.get(status="active"))

    full_rescore.delay(run.pk)

    run = wait_for(lambda: RescoreRun.objects.filter(pk=run.pk, finished_at__isnull=False).first())
    assert (run.done, run.total, run.percent) == (30, 30, 100)
    assert Contact.objects.scored().filter(score__gt=30, scored_at__isnull=False).count() == 10
    assert Contact.objects.scored().filter(score=0, criteria_version=1).count() == 20


def test_the_decay_refresh_runs_through_the_worker(celery_worker, add_event):
    contact = Contact.objects.create(email="old@example.com")
    add_event(contact, "form_submit", days_ago=0, form="demo")

    refresh_decay.delay()

    wait_for(lambda: RescoreRun.objects.filter(finished_at__isnull=False).exists())
    assert Contact.objects.scored().get(pk=contact.pk).scored_at is not None


@pytest.fixture
def lone_worker():
    """A worker with one child on a queue of its own, so a test can kill the child that runs a task."""
    queue = f"kill-{uuid.uuid4().hex[:6]}"
    with running_worker(concurrency=1, queue=queue) as proc:
        yield queue, proc


def test_a_task_whose_worker_child_dies_is_run_again(lone_worker, add_event):
    queue, worker = lone_worker
    contact = Contact.objects.create(email="kill@example.com")
    add_event(contact, "form_submit", form="demo")
    # Hold the contact's row so the rescore blocks mid-task, then kill the child running it.
    blocker = psycopg.connect(database_url(connection.settings_dict).replace("postgres://", "postgresql://"))
    blocker.execute("SELECT 1 FROM crm_contact WHERE id = %s FOR UPDATE", [contact.pk])
    rescore_contacts.apply_async(args=[[contact.pk]], queue=queue)
    child = wait_for(lambda: next(iter(psutil.Process(worker.pid).children()), None))
    wait_for(
        lambda: (
            blocker.execute(
                "SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = 'transactionid'"
            ).fetchone()[0]
            > 0
        )
    )

    os.kill(child.pid, signal.SIGKILL)
    time.sleep(1)
    blocker.rollback()
    blocker.close()

    scored = wait_for(
        lambda: Contact.objects.scored().filter(pk=contact.pk, scored_at__isnull=False).first(), timeout=30
    )
    assert scored.score > 30  # the demo request, a little decayed


def test_a_stale_mark_set_after_a_rescore_began_survives_it(contact, add_event):
    later = timezone.now() + timedelta(minutes=1)  # as if activity arrived while the rescore ran
    ContactActivity.objects.create(contact=contact, stale_since=later)

    services.rescore_stale(contact_ids=[contact.pk])

    assert ContactActivity.objects.get(pk=contact.pk).stale_since == later


def test_clearing_stale_marks_looks_the_contacts_up_by_id_whatever_the_statistics_say(db):
    """Statistics taken when nothing was stale, then a backlog of stale marks (as ingest builds in seconds): the
    clearing after a rescore still reads only its contacts, not every stale mark."""
    Contact.objects.bulk_create(Contact(email=f"s{i}@example.com") for i in range(3000))
    ids = list(Contact.objects.values_list("pk", flat=True))
    ContactActivity.objects.bulk_create(ContactActivity(contact_id=pk) for pk in ids)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE crm_contactactivity")
        cursor.execute("UPDATE crm_contactactivity SET stale_since = now()")

        cursor.execute("EXPLAIN (FORMAT JSON) " + services.CLEAR_STALE, [ids[:5], timezone.now()])
        plan = json.dumps(cursor.fetchone()[0])

    assert "crm_contactactivity_pkey" in plan and "activity_stale_idx" not in plan


@pytest.mark.django_db(transaction=True)
def test_clearing_stale_marks_locks_them_in_id_order_as_ingest_does(monkeypatch):
    """Ingest locks activity rows in id order. A rescore clearing its marks in the heap's order (a bitmap or a
    sequential scan) held a later contact's row while it waited for an earlier one a request held, and the
    request then waited for the later one: a deadlock (bench, 100k, under ingest)."""
    monkeypatch.setattr(retry, "ATTEMPTS", 1)  # a deadlock the rescore lost is not hidden by its second attempt
    first, second = Contact.objects.bulk_create(Contact(email=f"o{i}@example.com") for i in range(2))
    ContactActivity.objects.create(contact=second, stale_since=timezone.now())  # first in the heap
    ContactActivity.objects.create(contact=first, stale_since=timezone.now())
    url = database_url(connection.settings_dict).replace("postgres://", "postgresql://")
    failures = []

    def rescore():
        try:
            with connection.cursor() as cursor:  # the heap's order, as a bitmap scan of many ids gives
                cursor.execute("SET enable_indexscan = off")
                cursor.execute("SET enable_bitmapscan = off")
            services.rescore_stale(contact_ids=[first.pk, second.pk])
        except Exception as e:  # noqa: BLE001 - any failure is the finding
            failures.append(repr(e))
        finally:
            connection.close()

    with psycopg.connect(url) as request, psycopg.connect(url) as watcher:
        request.execute("SET lock_timeout = '3s'")  # the deadlock would be found after a second
        lock = "SELECT FROM crm_contactactivity WHERE contact_id = %s FOR NO KEY UPDATE"
        request.execute(lock, [first.pk])
        thread = threading.Thread(target=rescore)
        thread.start()
        wait_for(lambda: watcher.execute("SELECT count(*) FROM pg_locks WHERE NOT granted").fetchone()[0])
        request.execute(lock, [second.pk])  # the rescore holds none of the marks while it waits
        request.commit()
        thread.join()

    assert failures == []
    assert not ContactActivity.objects.filter(stale_since__isnull=False).exists()
