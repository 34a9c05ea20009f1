from __future__ import annotations

import pytest

from crm.models import Contact, Stage, StageChange
from handoff.models import QueueEntry

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def leads(db):
    return [
        Contact.objects.create(email=f"m{i}@example.com", stage=stage, score=50)
        for i, stage in enumerate((Stage.MQL, Stage.LEAD, Stage.SQL))
    ]


def test_marketing_sends_leads_to_sales_with_a_note(client, marketer_mia, leads):
    client.force_login(marketer_mia)

    response = client.post(
        "/leads/hand-over",
        {"ids": [c.pk for c in leads], "action": "send", "note": "Asked for a quote at the trade show"},
        **HTMX,
    )

    assert "Sent 2 lead(s) to sales. Others were not leads or MQLs." in response.content.decode()
    assert response["HX-Trigger"] == "leads-changed"
    entries = QueueEntry.objects.filter(contact__in=leads[:2])
    assert {(e.sent_by, e.note) for e in entries} == {("Mia Marketer", "Asked for a quote at the trade show")}
    assert StageChange.objects.filter(to_stage="sql", by_label="Mia Marketer").count() == 2


def test_sending_without_a_note_is_refused_and_changes_nothing(client, marketer_mia, leads):
    client.force_login(marketer_mia)

    response = client.post("/leads/hand-over", {"ids": [leads[0].pk], "action": "send", "note": " "}, **HTMX)

    assert "Add a handoff note" in response.content.decode()
    assert Contact.objects.get(pk=leads[0].pk).stage == Stage.MQL
    assert not QueueEntry.objects.exists()


def test_marketing_disqualifies_leads_but_not_sales_ones(client, marketer_mia, leads):
    client.force_login(marketer_mia)

    client.post("/leads/hand-over", {"ids": [c.pk for c in leads], "action": "disqualify", "note": "Student"}, **HTMX)

    assert list(Contact.objects.order_by("email").values_list("stage", flat=True)) == [
        "disqualified",
        "disqualified",
        "sql",
    ]


@pytest.mark.parametrize("persona", ["rep_sam", "roleless_nick"])
def test_only_marketing_and_admins_hand_over(client, request, leads, persona):
    client.force_login(request.getfixturevalue(persona))

    response = client.post("/leads/hand-over", {"ids": [leads[0].pk], "action": "send", "note": "x"}, **HTMX)

    assert response.status_code == 403
    assert Contact.objects.get(pk=leads[0].pk).stage == Stage.MQL


def test_the_list_offers_bulk_actions_to_marketing_only(client, marketer_mia, rep_sam, leads):
    client.force_login(marketer_mia)
    assert "Send selected to sales" in client.get("/leads/").content.decode()

    client.force_login(rep_sam)
    assert "Send selected to sales" not in client.get("/leads/").content.decode()
