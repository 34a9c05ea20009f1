"""The backtest replays stored events: under the active version it finds exactly the MQL and SQL moments that
live scoring made (same criteria, same events); a draft's replay differs as its rules do; it runs in a worker."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from crm.models import Contact, Stage
from handoff.models import QueueEntry
from leads.models import Event, Source
from scoring import backtest, criteria, services
from scoring.models import Backtest
from scoring.services import active_criteria, criteria_of
from tests.conftest import wait_for
from tests.scores import reloaded

KINDS = [
    ("page_view", {"path": "/blog"}),
    ("page_view", {"path": "/pricing"}),
    ("email_open", {}),
    ("email_click", {}),
    ("form_submit", {"form": "ebook"}),
    ("form_submit", {"form": "demo"}),
]


def live(n_contacts: int, *, seed: int, start) -> dict[int, list[tuple]]:
    """Contacts living through random events over 60 days, rescored at each event as ingest would."""
    rng, source = random.Random(seed), Source.objects.get_or_create(name="website")[0]
    plan = {}
    for i in range(n_contacts):
        with time_machine.travel(start, tick=False):
            title = rng.choice(["Head of Data", "Engineer", ""])
            c = Contact.objects.create(email=f"live{seed}-{i}@example.com", job_title=title)
        times = sorted(start + timedelta(days=rng.uniform(0, 60)) for _ in range(rng.randint(3, 14)))
        plan[c.pk] = [(at, *rng.choices(KINDS, weights=[5, 3, 3, 2, 1, 1])[0]) for at in times]
    for at, pk, kind, props in sorted((at, pk, k, p) for pk, evs in plan.items() for at, k, p in evs):
        with time_machine.travel(at, tick=False):
            Event.objects.create(
                source=source,
                client_id=f"{pk}-{at.timestamp()}",
                contact_id=pk,
                type=kind,
                properties=props,
                occurred_at=at,
                received_at=at,
            )
            services.rescore(contact_ids=[pk], now=at)
    return plan


def first_moments(stage_to: tuple[str, ...]) -> dict[int, object]:
    from crm.models import StageChange

    found = {}
    for change in StageChange.objects.filter(to_stage__in=stage_to).order_by("at"):
        found.setdefault(change.contact_id, change.at)
    return found


def test_a_backtest_of_the_active_version_finds_the_moments_live_scoring_made(db):
    start = timezone.now() - timedelta(days=80)
    live(25, seed=4, start=start)

    moments = backtest.replay(active_criteria(), start=start, end=timezone.now())

    became_mql = first_moments((Stage.MQL, Stage.SQL))  # a jump from lead to sql passes MQL in the same moment
    became_sql = first_moments((Stage.SQL,))
    assert became_mql and became_sql  # the generated history reaches both
    assert moments.mql == became_mql
    assert moments.sql == became_sql


def test_a_draft_with_a_higher_threshold_sends_fewer_and_events_before_the_window_still_count(db):
    start = timezone.now() - timedelta(days=80)
    live(25, seed=5, start=start)
    draft = criteria.draft()
    type(draft).objects.filter(pk=draft.pk).update(sql_threshold=90)
    draft = reloaded(draft)
    active = backtest.replay(active_criteria(), start=start, end=timezone.now())
    stricter = backtest.replay(criteria_of(draft), start=start, end=timezone.now())
    assert set(stricter.sql) < set(active.sql)
    late = backtest.replay(active_criteria(), start=start + timedelta(days=30), end=timezone.now())
    assert all(at >= start + timedelta(days=30) for at in late.mql.values())


def test_precision_and_recall_against_what_sales_did(db):
    start = timezone.now() - timedelta(days=80)
    live(25, seed=4, start=start)
    sent = QueueEntry.objects.order_by("pk")
    assert sent.count() >= 2
    first, *rest = list(sent)
    QueueEntry.objects.filter(pk=first.pk).update(status="rejected")
    QueueEntry.objects.filter(pk__in=[e.pk for e in rest]).update(status="accepted")

    result = backtest.summary(
        backtest.replay(active_criteria(), start=start, end=timezone.now()), start=start, end=timezone.now()
    )
    assert result["sent_labelled"] == sent.count()  # the active version sent every one of them, in time
    assert result["precision"] == pytest.approx((sent.count() - 1) / sent.count()) and result["recall"] == 1
    assert sum(result["sql_per_week"]) == result["sql"]


@pytest.mark.django_db(transaction=True)
def test_a_backtest_runs_in_the_worker_and_its_result_stays_with_the_draft(celery_worker):
    live(8, seed=6, start=timezone.now() - timedelta(days=40))
    draft = criteria.draft()
    run = backtest.start(version=draft, days=90)

    wait_for(lambda: Backtest.objects.get(pk=run.pk).finished_at, timeout=30)
    done = Backtest.objects.get(pk=run.pk)
    assert done.percent == 100 and done.result["draft"]["number"] == draft.number
    assert done.result["active"]["sql"] == done.result["draft"]["sql"]  # the draft is still a copy
    assert draft.backtests.get() == done
