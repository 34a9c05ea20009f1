from __future__ import annotations

import re
import threading

import pytest
from django.db import connection, transaction

from crm.lifecycle import Actor, Move, StageMoveRefused, move, move_many
from crm.models import Contact, Score, Stage, StageChange
from tests.conftest import plans_of_statements, wait_for
from tests.scores import make_contact, reloaded
from tests.scoring.test_stage_rules import waiting_for_a_lock


@pytest.fixture
def lead(db):
    return make_contact(email="grace@example.com", score=42)


def test_a_move_changes_the_stage_and_records_who_why_and_the_score(lead, marketer_mia):
    change = move(contact_id=lead.pk, to=Stage.MQL, by=Actor.of(marketer_mia), reason="Asked about pricing")

    lead = reloaded(lead)
    assert lead.stage == Stage.MQL
    assert (change.from_stage, change.to_stage, change.score) == ("lead", "mql", 42)
    assert change.by_user == marketer_mia
    assert change.by_label == "Mia Marketer"
    assert change.reason == "Asked about pricing"


def test_scoring_moves_are_labelled_with_the_criteria_version(lead):
    change = move(contact_id=lead.pk, to=Stage.MQL, by=Actor.scoring(3))

    assert change.by_label == "scoring v3"
    assert change.by_user is None


def test_a_move_to_the_current_stage_is_refused_and_records_nothing(lead):
    with pytest.raises(StageMoveRefused, match="already Lead"):
        move(contact_id=lead.pk, to=Stage.LEAD, by=Actor.scoring(1))

    assert not StageChange.objects.exists()


def test_a_move_expecting_another_stage_is_refused(lead):
    with pytest.raises(StageMoveRefused, match="is Lead now, not MQL"):
        move(contact_id=lead.pk, to=Stage.SQL, by=Actor.scoring(1), expect=Stage.MQL)

    lead = reloaded(lead)
    assert lead.stage == Stage.LEAD


def test_history_keeps_every_move_in_order(lead):
    move(contact_id=lead.pk, to=Stage.MQL, by=Actor.scoring(1))
    move(contact_id=lead.pk, to=Stage.SQL, by=Actor.scoring(1))

    history = list(lead.stage_changes.order_by("at").values_list("from_stage", "to_stage"))
    assert history == [("lead", "mql"), ("mql", "sql")]


def test_emails_are_stored_lower_case(db):
    assert Contact.objects.create(email="  Ada@Example.COM ").email == "ada@example.com"


def test_many_moves_skip_a_contact_no_longer_in_the_stage_they_were_planned_from(lead, marketer_mia):
    planned = Move(lead.pk, "lead", "mql", "score 45", 45)  # read while it was a lead
    move(contact_id=lead.pk, to=Stage.DISQUALIFIED, by=Actor.of(marketer_mia), reason="spam")

    assert move_many(moves=[planned], by=Actor.scoring(1)) == []
    assert Contact.objects.scored().get(pk=lead.pk).stage == Stage.DISQUALIFIED
    assert StageChange.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_moves_expecting_the_same_stage_cannot_both_apply(marketer_mia, rep_sam):
    """The row lock: the second move waits for the first, then sees the stage it left and is refused."""
    lead = Contact.objects.create(email="race@example.com", stage=Stage.MQL)
    first_holds, second_waits = threading.Event(), threading.Event()

    def first():
        with transaction.atomic():
            move(contact_id=lead.pk, to=Stage.SQL, by=Actor.of(marketer_mia), expect=Stage.MQL)
            first_holds.set()
            second_waits.wait(10)
        connection.close()

    thread = threading.Thread(target=first)
    thread.start()
    first_holds.wait(10)
    threading.Thread(target=lambda: (wait_for(waiting_for_a_lock), second_waits.set()), daemon=True).start()

    with pytest.raises(StageMoveRefused, match="is SQL now, not MQL"):
        move(contact_id=lead.pk, to=Stage.DISQUALIFIED, by=Actor.of(rep_sam), expect=Stage.MQL)
    thread.join()
    assert second_waits.is_set()
    assert list(StageChange.objects.values_list("to_stage", flat=True)) == ["sql"]


@pytest.mark.django_db(transaction=True)
def test_many_moves_take_their_scores_before_their_contacts_as_a_rescore_does():
    """A rescore writes a contact's score, then moves its stage. A batch of moves meeting it (a publish settling)
    waits for that score before it locks any contact: no deadlock, the rescore's move applies and the batch's,
    planned from the stage before, is skipped."""
    lead = Contact.objects.create(email="both@example.com")
    rescore_holds, failures = threading.Event(), []

    def rescore():
        try:
            with transaction.atomic():
                Score.objects.live().filter(contact=lead).update(score=90)
                rescore_holds.set()
                wait_for(waiting_for_a_lock)  # the batch waits
                move_many(moves=[Move(lead.pk, Stage.LEAD, Stage.MQL, "rescored", 90)], by=Actor.scoring(2))
        except Exception as e:  # noqa: BLE001 - any failure is the finding
            failures.append(repr(e))
        finally:
            connection.close()

    thread = threading.Thread(target=rescore)
    thread.start()
    assert rescore_holds.wait(10)
    moved = move_many(moves=[Move(lead.pk, Stage.LEAD, Stage.MQL, "settled", 10)], by=Actor.scoring(2))
    thread.join()

    assert failures == []
    assert moved == []
    assert list(StageChange.objects.values_list("reason", flat=True)) == ["rescored"]


def test_many_moves_look_their_contacts_up_by_id_not_through_every_contact(db):
    """A publish's chunks move hundreds of contacts at once. Sorted by id, they had the planner merge them with
    the whole primary key of contacts (every contact read by every chunk); the moves' own ids bound it."""
    Contact.objects.bulk_create(Contact(email=f"m{i}@example.com") for i in range(3000))
    ids = sorted(Contact.objects.values_list("pk", flat=True))[1000:1400]
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE crm_contact")
    with plans_of_statements() as plans:
        moved = move_many(moves=[Move(pk, Stage.LEAD, Stage.MQL, "publish", 50) for pk in ids], by=Actor.scoring(2))

    assert len(moved) == 400
    [plan] = [p for p in plans if "UPDATE crm_contact c SET stage" in p]
    contacts = plan[plan.index("on crm_contact c") :]
    assert re.search(r"Index Cond: .*\bid = ANY", contacts), plan


def test_a_deleted_contact_takes_its_stage_changes_with_it(lead, marketer_mia):
    """The changes have no database constraint (crm.models.StageChange): the ORM keeps them to their contact."""
    other = make_contact(email="alan@example.com")
    move(contact_id=lead.pk, to=Stage.MQL, by=Actor.of(marketer_mia))
    move(contact_id=other.pk, to=Stage.MQL, by=Actor.of(marketer_mia))

    Contact.objects.get(pk=lead.pk).delete()

    assert list(StageChange.objects.values_list("contact_id", flat=True)) == [other.pk]
