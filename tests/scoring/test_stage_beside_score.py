"""The contact's stage beside its score (the leads list walks one index by stage and score): every move reaches
the scores readers see and will see, and a version computed while contacts moved switches with their stages."""

from __future__ import annotations

import threading

import psycopg
import pytest
from django.db import OperationalError, connection, transaction
from django.db.models import Case, F, Value, When

from crm import lifecycle
from crm.lifecycle import Actor
from crm.models import STAGE_COPY, Contact, Score, Stage
from scoring import criteria, services
from tests.conftest import database_url
from tests.scoring.conftest import NOW
from tests.scoring.test_score_table import _draft_with_points_times, _events


def _stages(contact) -> dict[int, str]:
    return dict(Score.objects.filter(contact=contact).values_list("version", "stage"))


def test_a_move_reaches_the_live_scores_and_those_of_a_version_being_computed(admin_ada, source, contact, monkeypatch):
    monkeypatch.setattr(criteria, "queue_run", lambda run_id: None)
    _events(source, contact, [("page_view", {"path": "/pricing"})] * 2, NOW)
    customer = Contact.objects.create(email="c@example.com", stage=Stage.CUSTOMER)
    services.rescore(contact_ids=[contact.pk, customer.pk], now=NOW)
    run = criteria.publish(version=_draft_with_points_times(2), by=admin_ada)
    services._compute(run, services.active_criteria(), NOW)
    assert _stages(contact) == {1: Stage.LEAD, 2: Stage.LEAD}
    assert _stages(customer) == {1: Stage.CUSTOMER, 2: Stage.CUSTOMER}  # each new score takes its contact's

    lifecycle.move(contact_id=contact.pk, to=Stage.MQL, by=Actor.of(admin_ada))
    assert _stages(contact) == {1: Stage.MQL, 2: Stage.MQL}

    Contact.objects.filter(pk=contact.pk).update(stage=Stage.DISQUALIFIED)  # any writer of the stage
    assert _stages(contact) == {1: Stage.DISQUALIFIED, 2: Stage.DISQUALIFIED}

    services.rescore(contact_ids=[contact.pk], now=NOW)  # a rescore rewrites both scores, not their stage
    assert _stages(contact) == {1: Stage.DISQUALIFIED, 2: Stage.DISQUALIFIED}


def test_a_statement_writing_many_contacts_copies_only_the_stages_it_moved(source):
    """Ingest upserts contact rows in batches and moves no stage: the copy leaves the score rows of the contacts whose
    stage stayed unwritten (ingest and scoring write different rows), even in a statement that moves another."""
    moving, staying = (Contact.objects.create(email=f"{name}@example.com") for name in ("moving", "staying"))
    services.rescore(contact_ids=[moving.pk, staying.pk], now=NOW)

    def score_row(contact):
        with connection.cursor() as cursor:
            cursor.execute("SELECT ctid::text, stage FROM crm_score WHERE contact_id = %s", [contact.pk])
            return cursor.fetchone()

    before = score_row(staying)

    Contact.objects.filter(pk__in=[moving.pk, staying.pk]).update(
        stage=Case(When(pk=moving.pk, then=Value(Stage.MQL)), default=F("stage"))
    )

    assert score_row(moving)[1] == Stage.MQL
    assert score_row(staying) == before


@pytest.mark.django_db(transaction=True)
def test_the_switch_waits_for_a_move_under_way_and_takes_its_stage(admin_ada, source, contact, monkeypatch):
    """A move whose trigger ran before a pass wrote the contact's v2 score, and commits after: the pass read the
    stage before it (the move had not committed), and the move's copy never saw that row. The switch waits for the
    move and puts the row right, so the list never files the contact under its old stage."""
    monkeypatch.setattr(criteria, "queue_run", lambda run_id: None)
    _events(source, contact, [("page_view", {"path": "/pricing"})] * 2, NOW)
    services.rescore(contact_ids=[contact.pk], now=NOW)
    run = criteria.publish(version=_draft_with_points_times(2), by=admin_ada)
    v2 = services.active_criteria()
    moved, commit, failures = threading.Event(), threading.Event(), []

    def move() -> None:
        try:
            with transaction.atomic():
                lifecycle.move(contact_id=contact.pk, to=Stage.MQL, by=Actor.of(admin_ada))
                moved.set()
                commit.wait(10)
        except Exception as e:  # noqa: BLE001 - any failure is the finding
            failures.append(repr(e))
        finally:
            connection.close()

    def switch() -> None:
        try:
            services._switch(run, v2, NOW)
        finally:
            connection.close()

    mover = threading.Thread(target=move)
    mover.start()
    assert moved.wait(10)
    services._compute(run, v2, NOW)  # reads the stage before the move: it has not committed
    assert Score.objects.get(version=2, contact=contact).stage == Stage.LEAD
    switcher = threading.Thread(target=switch)
    switcher.start()
    switcher.join(0.5)
    assert switcher.is_alive()  # waiting for the move
    commit.set()
    mover.join()
    switcher.join()

    assert failures == []
    assert Score.objects.get(version=2, contact=contact).stage == Stage.MQL
    assert Contact.objects.get(pk=contact.pk).stage == Stage.MQL


def test_a_contact_created_while_a_version_is_computed_is_scored_under_both(admin_ada, source, monkeypatch):
    """Its placeholders stand under the live version and the one being computed (no contact is left without a score
    at the switch), and a pass that reaches it writes its score over the placeholder."""
    monkeypatch.setattr(criteria, "queue_run", lambda run_id: None)
    run = criteria.publish(version=_draft_with_points_times(2), by=admin_ada)
    services._compute(run, services.active_criteria(), NOW)  # nobody to score yet: writes the legend
    contact = Contact.objects.create(email="new@example.com", stage=Stage.MQL)
    assert _stages(contact) == {1: Stage.MQL, 2: Stage.MQL}
    _events(source, contact, [("page_view", {"path": "/pricing"})] * 2, NOW)

    services._compute(run, services.active_criteria(), NOW)

    assert Score.objects.get(version=2, contact=contact).score > 0


@pytest.mark.django_db(transaction=True)
def test_only_a_stage_move_waits_for_a_switch_putting_stages_right(contact):
    """While a switch holds STAGE_COPY, an update that moves no stage (ingest's upserts) goes through; a move waits."""
    switch = psycopg.connect(database_url(connection.settings_dict).replace("postgres://", "postgresql://"))
    try:
        switch.execute("SELECT pg_advisory_xact_lock(%s)", [STAGE_COPY])  # in its open transaction
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL lock_timeout = '500ms'")
            Contact.objects.filter(pk=contact.pk).update(job_title="CTO")
        with pytest.raises(OperationalError, match="lock timeout"), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '500ms'")
            Contact.objects.filter(pk=contact.pk).update(stage=Stage.MQL)
    finally:
        switch.close()
    assert Contact.objects.values_list("job_title", "stage").get(pk=contact.pk) == ("CTO", Stage.LEAD)
