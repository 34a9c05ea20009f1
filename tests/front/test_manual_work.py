"""Marketing's hand on the score and the stage (PRODUCT.md §12): adjustments with a reason and an expiry,
lead ↔ MQL moves that scoring respects, and each handoff's first-touch log and breaches on the lead page."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from crm.models import Contact, Stage
from handoff import services as handoff
from handoff.models import QueueEntry
from leads.models import Event
from scoring import services
from tests.front.test_lead_page import add_events
from tests.handoff.conftest import sql_entry
from tests.scores import reloaded

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def grace(db):
    return Contact.objects.create(email="grace@example.com", first_name="Grace", job_title="Engineer")


def adjust(client, contact, **data):
    return client.post(f"/leads/{contact.pk}/adjust", {"points": "20", "reason": "Met at the fair", **data})


def test_an_adjustment_shows_in_the_breakdown_and_the_timeline_and_moves_the_stage(client, marketer_mia, grace):
    add_events(grace, 3, path="/blog")  # 3 page views: 3 points
    services.rescore(contact_ids=[grace.pk])
    client.force_login(marketer_mia)

    assert adjust(client, grace, points="40").status_code == 302
    grace = reloaded(grace)
    assert grace.score == 43 and grace.stage == Stage.MQL  # rescored at once, and scoring moved it
    assert {"rule": "Manual adjustment", "kind": "manual", "events": 1, "points": 40.0} in grace.breakdown
    event = Event.objects.get(contact=grace, type="score_adjustment")
    assert (event.properties["by"], event.properties["reason"]) == ("Mia Marketer", "Met at the fair")
    page = client.get(f"/leads/{grace.pk}/").content.decode()
    assert "Score adjusted +40 by Mia Marketer: Met at the fair" in page and "Manual adjustment" in page


def test_an_adjustment_expires(client, marketer_mia, grace):
    client.force_login(marketer_mia)
    tomorrow = timezone.localdate() + timedelta(days=1)
    adjust(client, grace, points="-15", expires_on=tomorrow.isoformat())
    grace = reloaded(grace)
    assert grace.score == -15

    with time_machine.travel(timezone.now() + timedelta(days=3)):
        services.rescore(contact_ids=[grace.pk])
    grace = reloaded(grace)
    assert grace.score == 0 and not any(b["kind"] == "manual" for b in grace.breakdown)


def test_an_adjustment_is_never_sales_intent(client, marketer_mia, grace):
    client.force_login(marketer_mia)
    adjust(client, grace, points="100")
    grace = reloaded(grace)
    assert grace.score == 100 and grace.stage == Stage.MQL  # past the SQL threshold, but no intent: not sql


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"points": "0"}, "0 points changes nothing"),
        ({"points": "101"}, "less than or equal to 100"),
        ({"points": "ten"}, "whole number"),
        ({"reason": ""}, "required"),
        ({"reason": "a\x00b"}, "Null characters"),
        ({"expires_on": "2001-01-01"}, "That day has passed"),
        ({"expires_on": "9999-12-31"}, "five years"),
    ],
)
def test_a_bad_adjustment_is_refused_and_nothing_is_written(client, marketer_mia, grace, data, message):
    client.force_login(marketer_mia)
    response = adjust(client, grace, **data)
    assert response.status_code == 400 and message in response.content.decode()
    assert not Event.objects.filter(contact=grace).exists()


def test_only_marketing_and_admins_adjust_or_move(client, rep_sam, grace):
    client.force_login(rep_sam)
    assert adjust(client, grace).status_code == 403
    assert client.post(f"/leads/{grace.pk}/stage", {"to": "mql", "reason": "x"}).status_code == 403
    assert "Adjust the score" not in client.get(f"/leads/{grace.pk}/").content.decode()


def test_a_lead_moved_to_mql_by_hand_stays_there_and_says_why(client, marketer_mia, grace):
    client.force_login(marketer_mia)
    response = client.post(f"/leads/{grace.pk}/stage", {"to": "mql", "reason": "Asked for a call at the fair"}, **HTMX)
    assert response.status_code == 200 and response["HX-Refresh"] == "true"

    services.rescore(contact_ids=[grace.pk])  # score 0: scoring alone would take it back to lead
    grace = reloaded(grace)
    assert grace.stage == Stage.MQL
    change = grace.stage_changes.get()
    assert (change.from_stage, change.to_stage, change.by_user) == ("lead", "mql", marketer_mia)
    assert change.reason == "Moved by hand: Asked for a call at the fair"

    client.post(f"/leads/{grace.pk}/stage", {"to": "lead", "reason": "Not now"})
    add_events(grace, 40, path="/pricing")  # plenty for MQL
    services.rescore(contact_ids=[grace.pk])
    grace = reloaded(grace)
    assert grace.stage == Stage.LEAD  # held where marketing put it


def test_a_move_by_hand_needs_a_reason_and_the_right_stage(client, marketer_mia, grace):
    client.force_login(marketer_mia)
    client.post(f"/leads/{grace.pk}/stage", {"to": "mql", "reason": ""})
    client.post(f"/leads/{grace.pk}/stage", {"to": "lead", "reason": "already a lead"})
    client.post(f"/leads/{grace.pk}/stage", {"to": "sql", "reason": "skip the queue"})
    grace = reloaded(grace)
    assert grace.stage == Stage.LEAD and not grace.stage_changes.exists()


def test_marketing_reads_each_handoffs_first_touch_and_breaches(client, marketer_mia, rep_sam, rep_ria):
    entry = sql_entry(first_name="Touched")
    handoff.claim(entry_id=entry.pk, rep=rep_sam)
    QueueEntry.objects.filter(pk=entry.pk).update(first_touch_due_at=timezone.now() - timedelta(minutes=1))
    handoff.enforce_sla()  # Sam let it lapse: back to the queue
    handoff.claim(entry_id=entry.pk, rep=rep_ria)
    handoff.first_touch(entry_id=entry.pk, rep=rep_ria, kind="call", note="Wants a trial")
    client.force_login(marketer_mia)

    page = client.get(f"/leads/{entry.contact_id}/").content.decode()

    assert "First touch: Call by Ria Rep" in page and "“Wants a trial”" in page
    assert "SLA breach: no first touch within its sla" in page
