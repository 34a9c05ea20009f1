"""Claim next under a crowd, round robin's fairness and offers, routing rules, business-hours due times,
breach emails, lost reasons and the closed tab — against the real database (and a real worker)."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.utils import timezone

from crm.accounts import create_user
from crm.models import Company, Contact, Stage
from handoff import services
from handoff.models import Desk, QueueEntry, Rep, RoutingRule, SlaBreach
from handoff.tasks import enforce_sla
from tests.conftest import wait_for
from tests.handoff.conftest import sql_entry

HTMX = {"HTTP_HX_REQUEST": "true"}


def reps(n, prefix="rep"):
    return [
        create_user(email=f"{prefix}{i}@example.com", password="x", role="sales", name=f"Rep {i}", validate=False)
        for i in range(n)
    ]


def round_robin(**fields):
    Desk.objects.update_or_create(pk=1, defaults={"mode": Desk.Mode.ROUND_ROBIN, **fields})


@pytest.mark.django_db(transaction=True)
def test_64_reps_clicking_claim_next_each_get_a_different_entry_and_none_is_skipped():
    entries = [sql_entry() for _ in range(100)]
    crowd, start, outcomes = reps(64), threading.Event(), []

    def click(rep):
        start.wait()
        try:
            outcomes.append((rep.pk, services.claim_next(rep=rep, limit=100).pk))
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=64) as pool:
        futures = [pool.submit(click, rep) for rep in crowd]
        start.set()
        [f.result() for f in futures]

    claimed = [pk for _, pk in outcomes]
    assert len(claimed) == 64 and len(set(claimed)) == 64  # everyone got one, nobody the same
    top = sorted(entries, key=lambda e: (-e.score, e.entered_at, e.pk))[:64]
    assert set(claimed) == {e.pk for e in top}  # the top 64: none skipped
    owners = dict(QueueEntry.objects.filter(pk__in=claimed).values_list("pk", "owner"))
    assert all(owners[pk] == rep for rep, pk in outcomes)


def test_claim_next_takes_the_highest_score_and_says_when_nothing_waits(db, rep_sam):
    low, high = sql_entry(), sql_entry()
    QueueEntry.objects.filter(pk=low.pk).update(score=75)
    assert services.claim_next(rep=rep_sam).pk == high.pk
    assert services.claim_next(rep=rep_sam).pk == low.pk
    with pytest.raises(services.HandoffRefused, match="queue is empty"):
        services.claim_next(rep=rep_sam)


def test_claim_next_respects_the_claim_limit(db, rep_sam):
    sql_entry(), sql_entry()
    services.claim_next(rep=rep_sam, limit=1)
    with pytest.raises(services.HandoffRefused, match="1 open claims"):
        services.claim_next(rep=rep_sam, limit=1)


def test_round_robin_over_1000_sqls_follows_the_weights_1_1_2(db):
    round_robin()
    a, b, c = reps(3)
    for rep, weight in ((a, 1), (b, 1), (c, 2)):
        services.set_available(rep=rep, available=True)
        Rep.objects.filter(pk=rep.pk).update(weight=weight)
    for _ in range(1000):
        sql_entry()
        services.route(limit=10_000)

    counts = Counter(QueueEntry.objects.exclude(offered_to=None).values_list("offered_to", flat=True))
    assert sum(counts.values()) == 1000
    for rep, share in ((a, 0.25), (b, 0.25), (c, 0.5)):
        assert abs(counts[rep.pk] - 1000 * share) <= 10  # within ±1 % of the weights


def test_routing_skips_reps_away_inactive_or_at_their_limit_and_never_offers_twice(db):
    round_robin()
    here, away, gone, full = reps(4)
    for rep in (here, gone, full):
        services.set_available(rep=rep, available=True)
    gone.is_active = False
    gone.save()
    held = sql_entry()
    services.route()
    services.claim(entry_id=held.pk, rep=QueueEntry.objects.get(pk=held.pk).offered_to)
    first = sql_entry()

    assert services.route(limit=1) == 1
    offered = QueueEntry.objects.get(pk=first.pk).offered_to_id
    assert offered in (here.pk, full.pk) and offered != QueueEntry.objects.get(pk=held.pk).owner_id
    assert services.route(limit=1) == 0  # decided once
    assert QueueEntry.objects.get(pk=first.pk).offered_to_id == offered


def test_routing_rules_pick_the_pool(db):
    round_robin()
    big, small = reps(2)
    for rep in (big, small):
        services.set_available(rep=rep, available=True)
    rule = RoutingRule.objects.create(name="Enterprise", min_size=1000)
    rule.reps.set([big])
    enterprise = sql_entry(company=Company.objects.create(name="Huge", size=5000))
    others = [sql_entry(company=Company.objects.create(name=f"Small {i}", size=20)) for i in range(4)]
    services.route()

    assert QueueEntry.objects.get(pk=enterprise.pk).offered_to_id == big.pk
    assert {QueueEntry.objects.get(pk=e.pk).offered_to_id for e in others} == {big.pk, small.pk}  # no rule: all


def test_an_offer_is_only_for_its_rep_until_it_runs_out_or_is_passed(db):
    round_robin(offer_minutes=5)
    sam, ria = reps(2)
    services.set_available(rep=sam, available=True)
    entry = sql_entry()
    services.route()

    with pytest.raises(services.HandoffRefused, match="Offered to Rep 0 until"):
        services.claim(entry_id=entry.pk, rep=ria)
    with pytest.raises(services.HandoffRefused, match="queue is empty"):
        services.claim_next(rep=ria)
    services.decline(entry_id=entry.pk, rep=sam)
    assert services.claim(entry_id=entry.pk, rep=ria).owner == ria


def test_a_newly_available_rep_starts_level_instead_of_taking_every_offer(db):
    round_robin()
    old, new = reps(2)
    services.set_available(rep=old, available=True)
    for _ in range(10):
        sql_entry()
    services.route(limit=100)
    services.set_available(rep=new, available=True)
    for _ in range(10):
        sql_entry()
    services.route(limit=100)

    counts = Counter(QueueEntry.objects.exclude(offered_to=None).values_list("offered_to", flat=True))
    assert (counts[old.pk], counts[new.pk]) == (15, 5)


@pytest.mark.django_db(transaction=True)
def test_a_new_sql_is_offered_by_the_worker_and_an_untaken_offer_opens_to_everyone(celery_worker):
    round_robin(offer_minutes=5)
    (sam,) = reps(1)
    services.set_available(rep=sam, available=True)
    entry = sql_entry()  # enqueued: the route task goes to the worker on commit

    wait_for(lambda: QueueEntry.objects.filter(pk=entry.pk, offered_to=sam).exists())
    QueueEntry.objects.filter(pk=entry.pk).update(offer_expires_at=timezone.now() - timedelta(seconds=1))
    enforce_sla.delay()

    wait_for(lambda: QueueEntry.objects.filter(pk=entry.pk, offered_to=None, offer_expires_at=None).exists())
    assert QueueEntry.objects.get(pk=entry.pk).status == "waiting"


def test_with_business_hours_a_friday_evening_sql_is_due_monday(db, rep_sam):
    from datetime import datetime
    from zoneinfo import ZoneInfo

    import time_machine

    Desk.objects.update_or_create(
        pk=1,
        defaults={
            "business_hours": True,
            "time_zone": "Europe/Berlin",
            "hours": {str(d): ["09:00", "17:00"] for d in range(5)},
        },
    )
    berlin = ZoneInfo("Europe/Berlin")
    with time_machine.travel(datetime(2026, 12, 4, 18, 0, tzinfo=berlin), tick=False):
        entry = sql_entry()  # unclaimed SLA 60 minutes
        assert entry.unclaimed_due_at == datetime(2026, 12, 7, 10, 0, tzinfo=berlin)
    with time_machine.travel(datetime(2026, 12, 7, 16, 30, tzinfo=berlin), tick=False):
        claimed = services.claim(entry_id=entry.pk, rep=rep_sam)  # first touch 120 minutes
        assert claimed.first_touch_due_at == datetime(2026, 12, 8, 10, 30, tzinfo=berlin)


def test_the_queue_shows_working_time_left(client, db, rep_sam):
    from datetime import datetime
    from zoneinfo import ZoneInfo

    import time_machine

    Desk.objects.update_or_create(
        pk=1,
        defaults={"business_hours": True, "time_zone": "UTC", "hours": {str(d): ["09:00", "17:00"] for d in range(5)}},
    )
    client.force_login(rep_sam)
    with time_machine.travel(datetime(2026, 12, 7, 13, 50, tzinfo=ZoneInfo("UTC")), tick=False):
        sql_entry()
        QueueEntry.objects.update(unclaimed_due_at=datetime(2026, 12, 8, 9, 0, tzinfo=ZoneInfo("UTC")))
        page = client.get("/queue/").content.decode()
    assert "3 h 10 min of working time left" in page


def test_breaches_are_emailed_to_the_rep_and_unclaimed_ones_to_marketing(db, rep_sam, marketer_mia):
    late, waiting = sql_entry(first_name="Late"), sql_entry(first_name="Waiting")
    services.claim(entry_id=late.pk, rep=rep_sam)
    past = timezone.now() - timedelta(minutes=1)
    QueueEntry.objects.filter(pk=late.pk).update(first_touch_due_at=past)
    QueueEntry.objects.filter(pk=waiting.pk).update(unclaimed_due_at=past)
    services.enforce_sla()

    sent = services.tell_breaches(breach_ids=list(SlaBreach.objects.values_list("pk", flat=True)))

    assert sent == 2
    by_to = {tuple(m.to): m for m in mail.outbox}
    assert (
        "Late" in by_to[("sam@baton.test",)].subject and f"/leads/{late.contact_id}/" in by_to[("sam@baton.test",)].body
    )
    assert "Waiting" in by_to[("mia@baton.test",)].subject


def test_lost_needs_a_reason_from_the_list_and_the_closed_tab_lists_it(client, db, rep_sam):
    entry = sql_entry(first_name="Closed")
    services.claim(entry_id=entry.pk, rep=rep_sam)
    services.accept(entry_id=entry.pk, rep=rep_sam)
    client.force_login(rep_sam)

    refused = client.post(f"/queue/{entry.pk}/lost", {"reason": "bored"}, **HTMX).content.decode()
    assert "Choose why the opportunity was lost" in refused
    assert QueueEntry.objects.get(pk=entry.pk).status == "accepted"
    client.post(f"/queue/{entry.pk}/lost", {"reason": "competitor"}, **HTMX)

    page = client.get("/queue/?tab=closed").content.decode()
    assert "Closed" in page and "Chose a competitor" in page and "Lost" in page
    assert Contact.objects.scored().get(pk=entry.contact_id).stage == Stage.DISQUALIFIED


def test_the_waiting_list_is_paged(client, db, rep_sam):
    for _ in range(60):
        sql_entry()
    client.force_login(rep_sam)
    first, second = client.get("/queue/").content.decode(), client.get("/queue/?page=2").content.decode()
    assert first.count('id="entry-') == 50 and second.count('id="entry-') == 10
    assert "Page 1 of 2" in first
    assert client.get("/queue/?page=x").status_code == 200  # a page that is not a number: the first


@pytest.mark.django_db(transaction=True)
def test_claim_next_does_not_wait_for_an_entry_another_rep_is_taking(rep_sam):
    top, second = sql_entry(), sql_entry()
    holding, release = threading.Event(), threading.Event()

    def another_claim_in_progress():
        from django.db import transaction

        with transaction.atomic():
            QueueEntry.objects.select_for_update().get(pk=top.pk)
            holding.set()
            release.wait(10)
        connection.close()

    with ThreadPoolExecutor(max_workers=2) as pool:
        holder = pool.submit(another_claim_in_progress)
        holding.wait(5)
        try:
            taken = pool.submit(lambda: (services.claim_next(rep=rep_sam), connection.close())[0]).result(timeout=3)
        finally:
            release.set()
        holder.result()
    assert taken.pk == second.pk


def test_a_rep_who_goes_away_or_leaves_gives_back_their_offers(db):
    round_robin()
    sam, ria = reps(2)
    for rep in (sam, ria):
        services.set_available(rep=rep, available=True)
    first, second = sql_entry(), sql_entry()
    services.route()
    offered = dict(QueueEntry.objects.values_list("pk", "offered_to"))
    away = next(r for r in (sam, ria) if r.pk == offered[first.pk])
    services.set_available(rep=away, available=False)
    assert QueueEntry.objects.get(pk=first.pk).offered_to is None  # open to everyone at once

    leaving = next(r for r in (sam, ria) if r.pk == offered[second.pk])
    services.release(rep=leaving)
    assert QueueEntry.objects.get(pk=second.pk).offered_to is None
