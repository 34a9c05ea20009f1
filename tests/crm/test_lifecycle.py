from __future__ import annotations

import pytest

from crm.lifecycle import Actor, StageMoveRefused, move
from crm.models import Contact, Stage, StageChange


@pytest.fixture
def lead(db):
    return Contact.objects.create(email="grace@example.com", score=42)


def test_a_move_changes_the_stage_and_records_who_why_and_the_score(lead, marketer_mia):
    change = move(contact_id=lead.pk, to=Stage.MQL, by=Actor.of(marketer_mia), reason="Asked about pricing")

    lead.refresh_from_db()
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

    lead.refresh_from_db()
    assert lead.stage == Stage.LEAD


def test_history_keeps_every_move_in_order(lead):
    move(contact_id=lead.pk, to=Stage.MQL, by=Actor.scoring(1))
    move(contact_id=lead.pk, to=Stage.SQL, by=Actor.scoring(1))

    history = list(lead.stage_changes.order_by("at").values_list("from_stage", "to_stage"))
    assert history == [("lead", "mql"), ("mql", "sql")]


def test_emails_are_stored_lower_case(db):
    assert Contact.objects.create(email="  Ada@Example.COM ").email == "ada@example.com"
