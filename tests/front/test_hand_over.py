from __future__ import annotations

import pytest

from crm.models import Contact, Stage, StageChange
from handoff.models import QueueEntry
from tests.scores import make_contact

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def leads(db):
    return [
        make_contact(email=f"m{i}@example.com", stage=stage, score=50)
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
    assert Contact.objects.scored().get(pk=leads[0].pk).stage == Stage.MQL
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
    assert Contact.objects.scored().get(pk=leads[0].pk).stage == Stage.MQL


def test_the_list_offers_bulk_actions_to_marketing_only(client, marketer_mia, rep_sam, leads):
    client.force_login(marketer_mia)
    assert "Send selected to sales" in client.get("/leads/").content.decode()

    client.force_login(rep_sam)
    assert "Send selected to sales" not in client.get("/leads/").content.decode()


def test_disqualifying_needs_a_reason_and_records_it(client, marketer_mia, leads):
    client.force_login(marketer_mia)

    refused = client.post("/leads/hand-over", {"ids": [leads[0].pk], "action": "disqualify", "note": ""}, **HTMX)
    assert "Say why you disqualify" in refused.content.decode()
    assert Contact.objects.scored().get(pk=leads[0].pk).stage == Stage.MQL

    client.post("/leads/hand-over", {"ids": [leads[0].pk], "action": "disqualify", "note": "A student"}, **HTMX)
    assert StageChange.objects.get(contact=leads[0]).reason == "Disqualified: A student"


@pytest.mark.parametrize("back", ["https://evil.example/phish", "//evil.example/", "javascript:alert(1)"])
def test_after_handing_over_only_a_page_of_this_site_is_a_way_back(client, marketer_mia, leads, back):
    client.force_login(marketer_mia)

    response = client.post("/leads/hand-over", {"ids": [leads[0].pk], "action": "send", "note": "x", "back": back})

    assert response.status_code == 302
    assert response["Location"] == "/leads/"


def test_after_handing_over_the_marketer_returns_to_the_filtered_list(client, marketer_mia, leads):
    client.force_login(marketer_mia)

    response = client.post(
        "/leads/hand-over", {"ids": [leads[0].pk], "action": "send", "note": "x", "back": "/leads/?stage=mql"}
    )

    assert response["Location"] == "/leads/?stage=mql"


@pytest.mark.parametrize("ids", ["²", "١٢", "9" * 30, "-1", "1e3", "\x00"])
def test_a_selection_that_is_not_an_id_is_refused_clearly(client, marketer_mia, leads, ids):
    client.force_login(marketer_mia)

    response = client.post("/leads/hand-over", {"ids": [ids], "action": "send", "note": "x"}, **HTMX)

    assert response.status_code == 200
    assert "not one this page offered" in response.content.decode()
    assert not QueueEntry.objects.exists()


def test_sending_from_the_lead_page_shows_the_lead_as_sql_afterwards(client, marketer_mia, leads):
    client.force_login(marketer_mia)

    response = client.post(f"/leads/{leads[0].pk}/hand-over", {"action": "send", "note": "Hot"}, **HTMX)

    assert response["HX-Refresh"] == "true"
    page = client.get(f"/leads/{leads[0].pk}/").content.decode()
    assert 'class="stage stage-sql"' in page
    assert "Sent 1 lead(s) to sales." in page
    assert "Send to sales</button>" not in page


def test_an_admin_reopens_a_disqualified_contact_as_a_recorded_move(client, admin_ada, marketer_mia, leads):
    client.force_login(marketer_mia)
    client.post(f"/leads/{leads[0].pk}/hand-over", {"action": "disqualify", "note": "Looked like spam"})
    assert "Re-open" not in client.get(f"/leads/{leads[0].pk}/").content.decode()  # marketing cannot
    client.force_login(admin_ada)

    assert (
        "Say why you re-open"
        in client.get(client.post(f"/leads/{leads[0].pk}/reopen", {"reason": " "}).url).content.decode()
    )
    response = client.post(f"/leads/{leads[0].pk}/reopen", {"reason": "A real buyer after all"})

    assert response["Location"] == f"/leads/{leads[0].pk}/"
    move = StageChange.objects.filter(contact=leads[0]).latest("at")
    assert (move.from_stage, move.to_stage, move.by_user) == ("disqualified", "lead", admin_ada)
    assert move.reason == "Re-opened: A real buyer after all"
    assert Contact.objects.scored().get(pk=leads[0].pk).stage == Stage.LEAD


def test_only_a_disqualified_contact_can_be_reopened(client, admin_ada, leads):
    client.force_login(admin_ada)

    page = client.get(client.post(f"/leads/{leads[0].pk}/reopen", {"reason": "x"}).url).content.decode()

    assert "is MQL now, not Disqualified" in page
    assert Contact.objects.scored().get(pk=leads[0].pk).stage == Stage.MQL


def test_the_disqualify_service_itself_refuses_a_blank_reason(marketer_mia, leads):
    from handoff import services

    with pytest.raises(services.HandoffRefused, match="Say why"):
        services.disqualify(contact_ids=[leads[0].pk], marketer=marketer_mia, reason="  ")
