from __future__ import annotations

import threading
from dataclasses import replace
from datetime import timedelta

import psycopg
import pytest
from django.db import connection, transaction
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from crm.lifecycle import Actor, move
from crm.models import Stage, StageChange
from handoff.models import QueueEntry
from scoring import sql
from scoring.engine import Criteria
from scoring.models import ScoreHistory
from scoring.stages import automatic_move
from tests.conftest import database_url, wait_for
from tests.scoring.conftest import NOW

DEFAULTS = Criteria(version=1, behaviour=(), fit=())


def decide(stage, score, intent=False, promotion=None):
    move_ = automatic_move(
        stage=stage,
        score=score,
        promotion_score=score if promotion is None else promotion,
        has_intent=intent,
        criteria=DEFAULTS,
    )
    return move_[0] if move_ else None


@pytest.mark.parametrize(
    ("stage", "score", "intent", "to"),
    [
        ("lead", 39, False, None),
        ("lead", 40, False, "mql"),
        ("lead", 70, False, "mql"),  # the SQL threshold alone is not enough
        ("lead", 70, True, "sql"),
        ("lead", 69, True, "mql"),
        ("mql", 70, True, "sql"),
        ("mql", 36, False, None),  # inside the hysteresis band: stays an MQL
        ("mql", 35, False, None),
        ("mql", 34, False, "lead"),
        ("sql", 0, False, None),
        ("opportunity", 0, False, None),
        ("customer", 0, False, None),
        ("disqualified", 99, True, None),
    ],
)
def test_the_stage_rules(stage, score, intent, to):
    assert decide(stage, score, intent) == to


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    stage=st.sampled_from(Stage.values),
    score=st.integers(-50, 150),
    promotion=st.integers(-50, 150),
    intent=st.booleans(),
    held=st.booleans(),
    mql=st.integers(0, 100) | st.floats(0, 100, allow_nan=False),
    above=st.integers(0, 50) | st.floats(0, 50, allow_nan=False),
    hysteresis=st.integers(0, 20) | st.floats(0, 20, allow_nan=False),
)
# On each threshold, where a >= made > (or the reverse) would move someone else.
@example(stage="lead", score=70, promotion=70, intent=True, held=False, mql=40, above=30, hysteresis=5)
@example(stage="lead", score=40, promotion=40, intent=False, held=False, mql=40, above=30, hysteresis=5)
@example(stage="mql", score=35, promotion=35, intent=False, held=False, mql=40, above=30, hysteresis=5)
@example(stage="mql", score=34, promotion=34, intent=False, held=True, mql=40.5, above=0.5, hysteresis=5.5)
def test_the_rules_in_sql_move_whom_the_function_moves(
    db, stage, score, promotion, intent, held, mql, above, hysteresis
):
    """sql.moved_to (a preview's count of a million moves) and automatic_move agree, thresholds included."""
    criteria = replace(DEFAULTS, mql_threshold=mql, sql_threshold=mql + above, hysteresis=hysteresis)
    move_ = automatic_move(
        stage=stage, score=score, promotion_score=promotion, has_intent=intent, criteria=criteria, held=held
    )
    columns = ("%(stage)s::text", "%(score)s::int", "%(promotion)s::int", "%(intent)s::bool", "%(held)s::bool")
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {sql.moved_to(*columns)}",
            {"stage": stage, "score": score, "promotion": promotion, "intent": intent, "held": held}
            | sql.move_bounds(criteria),
        )
        assert cursor.fetchone()[0] == (move_[0] if move_ else stage)


def test_a_recycled_contact_is_promoted_only_by_its_newer_activity():
    assert decide("lead", 80, intent=True, promotion=20) is None
    assert decide("lead", 80, intent=True, promotion=72) == "sql"


def test_scoring_moves_are_recorded_as_scoring_v1_with_reason_and_score(contact, add_event, rescore):
    for _ in range(3):
        add_event(contact, "email_click")
    add_event(contact, "form_submit", form="demo")
    for _ in range(5):
        add_event(contact, "page_view", path="/pricing")

    scored = rescore(contact)

    assert scored.stage == Stage.SQL
    change = StageChange.objects.get(contact=contact)
    assert (change.from_stage, change.to_stage, change.by_label) == ("lead", "sql", "scoring v1")
    assert "SQL threshold 70" in change.reason
    assert change.score == scored.score >= 70
    assert ScoreHistory.objects.filter(contact=contact, stage="sql").exists()


def test_an_mql_on_the_threshold_does_not_flap(contact, add_event, rescore):
    for _ in range(4):
        add_event(contact, "form_submit", form="ebook")  # capped at 30
    for _ in range(10):
        add_event(contact, "email_open")  # 10: exactly 40
    assert rescore(contact).stage == Stage.MQL

    # A month later decay takes the score to ~20: below 35, so back to lead — but at 36-39 it would stay.
    assert rescore(contact, now=NOW + timedelta(days=5)).stage == Stage.MQL
    assert rescore(contact, now=NOW + timedelta(days=30)).stage == Stage.LEAD
    assert list(StageChange.objects.filter(contact=contact).values_list("to_stage", flat=True)) == ["mql", "lead"]


def test_decayed_interest_leaves_the_mql_list(contact, add_event, rescore):
    add_event(contact, "form_submit", form="demo")
    assert rescore(contact).stage == Stage.MQL

    assert rescore(contact, now=NOW + timedelta(days=45)).stage == Stage.LEAD


def test_nothing_automatic_moves_a_contact_out_of_sql(contact, add_event, rescore):
    contact.stage = Stage.SQL
    contact.save()
    add_event(contact, "email_unsubscribe")

    assert rescore(contact).stage == Stage.SQL


def test_a_recycled_contacts_old_activity_does_not_promote_it_again(contact, add_event, rescore, marketer_mia):
    add_event(contact, "form_submit", days_ago=3, form="demo")
    for _ in range(6):
        add_event(contact, "page_view", days_ago=3, path="/pricing")
    contact.recycled_at = NOW - timedelta(days=1)
    contact.save()

    assert rescore(contact).stage == Stage.LEAD

    add_event(contact, "form_submit", form="demo")
    for _ in range(6):
        add_event(contact, "page_view", path="/pricing")
    assert rescore(contact).stage == Stage.SQL


@pytest.mark.django_db(transaction=True)
def test_a_human_move_racing_scoring_wins(contact, add_event, rescore, marketer_mia):
    """The marketer's move holds the contact's row while scoring (which would make it an SQL) runs into it."""
    add_event(contact, "form_submit", form="demo")
    for _ in range(6):
        add_event(contact, "page_view", path="/pricing")
    holding, scoring_waits = threading.Event(), threading.Event()

    def marketer():
        with transaction.atomic():
            move(contact_id=contact.pk, to=Stage.DISQUALIFIED, by=Actor.of(marketer_mia), reason="spam")
            holding.set()
            scoring_waits.wait(10)
        connection.close()

    human = threading.Thread(target=marketer)
    human.start()
    holding.wait(10)
    watcher = threading.Thread(target=lambda: (wait_for(lambda: waiting_for_a_lock()), scoring_waits.set()))
    watcher.start()

    assert rescore(contact).stage == Stage.DISQUALIFIED
    human.join()
    watcher.join()
    assert scoring_waits.is_set()  # scoring really waited on the marketer's row lock
    assert list(StageChange.objects.values_list("to_stage", flat=True)) == ["disqualified"]
    assert not QueueEntry.objects.exists()


def waiting_for_a_lock() -> bool:
    with psycopg.connect(database_url(connection.settings_dict).replace("postgres://", "postgresql://")) as other:
        return other.execute("SELECT count(*) FROM pg_locks WHERE NOT granted").fetchone()[0] > 0
