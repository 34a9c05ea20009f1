"""Full rescore runs never jam publishing: a run nobody executes is superseded, resumed or failed, visibly."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from crm.celery import app
from crm.models import Contact
from scoring import criteria, services
from scoring.criteria import CriteriaRefused
from scoring.models import CriteriaVersion, RescoreRun
from scoring.tasks import sweep_stale
from tests.conftest import plans_of_statements, wait_for
from tests.scores import reloaded


def active() -> CriteriaVersion:
    return CriteriaVersion.objects.get(status="active")


def stalled_run(*, resumes: int = 0, done_through: int = 0) -> RescoreRun:
    run = services.start_full_rescore(version=active())
    RescoreRun.objects.filter(pk=run.pk).update(
        heartbeat_at=timezone.now() - services.RUN_STALLED - timedelta(seconds=1),
        resumes=resumes,
        last_contact_id=done_through,
    )
    return RescoreRun.objects.get(pk=run.pk)


def test_publishing_is_refused_while_a_worker_executes_a_full_rescore(admin_ada, another_worker_rescoring):
    with pytest.raises(CriteriaRefused, match="still running"):
        criteria.publish(version=criteria.draft(), by=admin_ada)

    assert active().number == 1


def test_a_run_nobody_executes_does_not_block_publishing_and_says_it_was_superseded(admin_ada):
    first = criteria.publish(version=criteria.draft(), by=admin_ada)  # queued; no worker ran it

    second = criteria.publish(version=criteria.draft(), by=admin_ada)

    first = reloaded(first)
    assert (first.finished_at, first.running) == (None, False)
    assert first.problem == "Superseded: v3 was published before it finished."
    assert second.running and active().number == 3


def test_the_decay_refresh_records_no_run_while_another_full_rescore_runs(another_worker_rescoring):
    assert services.refresh_decay() is None

    assert not RescoreRun.objects.exists()


def test_the_decay_refresh_first_finishes_a_run_that_lost_its_worker(db):
    Contact.objects.create(email="a@example.com")
    lost = stalled_run()

    services.refresh_decay()

    lost = reloaded(lost)
    assert lost.finished_at is not None and lost.done == 1
    assert not RescoreRun.objects.filter(finished_at=None).exists()


def test_a_run_of_a_version_no_longer_active_is_not_executed(admin_ada):
    Contact.objects.create(email="a@example.com")
    old, newer = stalled_run(), criteria.draft()
    CriteriaVersion.objects.filter(pk=old.version_id).update(status="retired")
    CriteriaVersion.objects.filter(pk=newer.pk).update(status="active")

    services.run_full_rescore(run_id=old.pk)

    old = reloaded(old)
    assert old.done == 0 and old.problem.startswith("Superseded")
    assert Contact.objects.scored().get().scored_at is None  # its placeholder, never scored


def test_a_stalled_run_is_left_alone_while_a_worker_holds_the_lock(another_worker_rescoring):
    run = stalled_run()

    assert services.resume_stalled_runs() == []
    run = reloaded(run)
    assert (run.resumes, run.running) == (0, True)


def test_a_run_whose_progress_is_recent_is_not_resumed(db):
    services.start_full_rescore(version=active())

    assert services.resume_stalled_runs() == []


def test_a_run_lost_too_often_fails_and_the_criteria_page_says_why(client, admin_ada):
    run = stalled_run(resumes=services.MAX_RESUMES)

    assert services.resume_stalled_runs() == []

    run = reloaded(run)
    assert run.failed_at is not None
    assert "its worker was lost 6 times" in run.problem
    client.force_login(admin_ada)
    page = client.get("/criteria/?part=progress", HTTP_HX_REQUEST="true").content.decode()
    assert "its worker was lost 6 times" in page and "every 1s" not in page
    criteria.publish(version=criteria.draft(), by=admin_ada)  # and publishing is open again


@pytest.mark.django_db(transaction=True)
def test_a_run_whose_worker_died_is_resumed_from_where_it_stopped_through_a_worker(celery_worker):
    contacts = Contact.objects.bulk_create([Contact(email=f"c{i}@example.com") for i in range(30)])
    run = stalled_run(done_through=contacts[9].pk)  # a worker died after the first ten

    sweep_stale.delay()

    run = wait_for(lambda: RescoreRun.objects.filter(pk=run.pk, finished_at__isnull=False).first(), timeout=30)
    assert run.resumes == 1
    assert Contact.objects.scored().filter(scored_at__isnull=False).count() == 20  # the other ten were done before


def test_the_broker_redelivers_a_task_only_after_its_time_limit_has_passed():
    visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    app.loader.import_default_modules()
    ours = [task for name, task in app.tasks.items() if not name.startswith("celery.")]

    assert ours
    for task in ours:
        assert (task.time_limit or settings.CELERY_TASK_TIME_LIMIT) < visibility, task.name


def test_a_run_still_waiting_for_a_worker_is_sent_again_without_counting_as_lost(db):
    run = services.start_full_rescore(version=active())
    RescoreRun.objects.filter(pk=run.pk).update(started_at=timezone.now() - services.RUN_QUEUED - timedelta(seconds=1))

    assert services.resume_stalled_runs() == [run.pk]
    run = reloaded(run)
    assert (run.resumes, run.running) == (0, True)


def test_republishing_a_version_that_is_not_a_number_is_a_404(client, admin_ada):
    client.force_login(admin_ada)

    assert client.post("/criteria/", {"action": "republish", "version": "abc"}).status_code == 404


def test_a_publish_settles_each_range_reading_only_its_contacts(admin_ada, monkeypatch):
    """After the switch each short transaction of the stage rules reads its range of contacts by their key (joined
    on the scores alone, every range read the whole contacts table: a third of a publish at 100k), and the scores
    the switch replaced as one range (probed one by one for each score: 38 of a range's 66 ms at 1M)."""
    monkeypatch.setattr(services, "SETTLE_CHUNK", 100)
    Contact.objects.bulk_create(Contact(email=f"s{i}@example.com") for i in range(1200))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE crm_contact")
    run = criteria.publish(version=criteria.draft(), by=admin_ada)

    with plans_of_statements() as plans:
        services.run_full_rescore(run_id=run.pk)

    ranges = [p for p in plans if "range AS MATERIALIZED" in p]
    assert len(ranges) == 12
    for plan in ranges:
        assert re.search(r"on crm_contact c .*\n\s*Index Cond: \(\(id >= ", plan), plan
        assert not re.search(r"Index Cond: .*\(contact_id = n\.contact_id\)", plan), plan  # no probe per score


def test_a_publish_settles_by_reading_only_the_contacts_a_rule_moves(admin_ada, monkeypatch):
    """The stage rules after a switch read, of each range, only the contacts they move (``sql.moved_to`` in the
    range's statement): MQLs that stay MQLs are not fetched and decided one by one in Python (at 100k nearly every
    contact was, 4,785 of each 5,000)."""
    Contact.objects.bulk_create(Contact(email=f"stays{i}@example.com", stage="mql") for i in range(30))
    Contact.objects.bulk_create(Contact(email=f"rises{i}@example.com") for i in range(10))
    draft = criteria.draft()
    draft.fit_rules.all().delete()
    draft.fit_rules.create(name="Has an email", field="email_domain", operator="is_set", values=[], points=50)
    run = criteria.publish(version=draft, by=admin_ada)
    read = []
    move = services._move
    monkeypatch.setattr(
        services, "_move", lambda criteria, rows, now, **kw: read.extend(rows) or move(criteria, rows, now, **kw)
    )

    services.run_full_rescore(run_id=run.pk)

    rising = set(Contact.objects.filter(email__startswith="rises").values_list("pk", flat=True))
    assert {row[0] for row in read} == rising
    assert set(Contact.objects.filter(stage="mql").values_list("pk", flat=True)) == rising | set(
        Contact.objects.filter(email__startswith="stays").values_list("pk", flat=True)
    )
