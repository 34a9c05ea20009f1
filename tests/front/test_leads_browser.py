"""The leads list in headless Chromium: filters held in the URL, search, a lead's why, handing over."""

from __future__ import annotations

import pytest

from crm.models import Company, Contact, Stage
from handoff.models import QueueEntry
from tests.scores import make_contact

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_marketer_filters_searches_reads_why_and_hands_a_lead_over(signed_in, live_server, marketer_mia):
    acme = Company.objects.create(name="Acme Rockets", size=300)
    breakdown = [{"rule": "Demo or contact request", "kind": "behaviour", "events": 1, "points": 40}]
    ada = make_contact(
        email="ada@acme.example",
        first_name="Ada",
        company=acme,
        stage=Stage.MQL,
        grade="A",
        score=65,
        breakdown=breakdown,
    )
    make_contact(email="bob@other.example", first_name="Bob", stage=Stage.MQL, grade="A", score=50)
    make_contact(email="cy@acme.example", first_name="Cy", company=acme, stage=Stage.LEAD, grade="C")
    make_contact(email="di@acme.example", first_name="Di", company=acme, stage=Stage.MQL, grade="B")
    page = signed_in(marketer_mia)
    page.goto(f"{live_server.url}/leads/")
    page.wait_for_function("window.htmx !== undefined")

    page.get_by_label("Stage").select_option("mql")
    page.wait_for_url("**/leads/?*stage=mql*")
    page.get_by_label("Grade").select_option("A")
    page.wait_for_url("**grade=A*")
    page.get_by_label("Search").fill("acme")
    page.wait_for_url("**q=acme*")
    page.get_by_text("di@acme.example").wait_for(state="detached")

    rows = page.locator("#contact-table tbody tr")
    assert rows.count() == 1
    assert "ada@acme.example" in rows.first.inner_text()
    assert page.locator("#contact-table").count() == 1  # swapped in place, not nested

    page.go_back()
    page.get_by_text("bob@other.example").wait_for()  # the previous filters are back

    page.goto(f"{live_server.url}/leads/?stage=mql&q=acme")
    page.get_by_role("link", name="Ada").click()
    assert "Demo or contact request" in page.locator("table").first.inner_text()

    page.go_back()
    page.get_by_label("Select Ada").check()
    page.get_by_label("Note").fill("Met at the trade show; wants pricing")
    page.get_by_role("button", name="Send selected to sales").click()

    assert page.get_by_role("status").inner_text() == "Sent 1 lead(s) to sales."
    assert QueueEntry.objects.get(contact=ada).note == "Met at the trade show; wants pricing"


def test_a_marketer_edits_a_lead_and_a_rep_sees_it_without_marketing_actions(
    signed_in, live_server, marketer_mia, rep_sam
):
    from datetime import timedelta

    from django.utils import timezone

    from leads.models import Event, Source

    lead = Contact.objects.create(email="grace@example.com", first_name="Grace", stage=Stage.MQL, job_title="Analyst")
    Event.objects.create(
        source=Source.objects.create(name="website"),
        client_id="x1",
        contact=lead,
        type="page_view",
        properties={"path": "<script>window.pwned=1</script>", "title": "<img src=x onerror=window.pwned=2>"},
        occurred_at=timezone.now() - timedelta(minutes=5),
        received_at=timezone.now(),
    )
    page = signed_in(marketer_mia)
    page.goto(f"{live_server.url}/leads/{lead.pk}/")
    page.wait_for_function("window.htmx !== undefined")

    assert "Viewed <script>window.pwned=1</script>" in page.locator(".timeline").inner_text()  # text, not markup
    assert page.evaluate("window.pwned") is None

    page.locator("#profile").get_by_role("link", name="Edit").click()
    page.get_by_label("Job title").fill("Head of Analytics")
    page.get_by_role("button", name="Save").click()
    page.locator("#profile").get_by_text("Head of Analytics").wait_for()
    assert Contact.objects.scored().get(pk=lead.pk).job_title == "Head of Analytics"

    rep = signed_in(rep_sam)
    rep.goto(f"{live_server.url}/leads/{lead.pk}/")
    assert "Head of Analytics" in rep.locator("#profile").inner_text()
    assert rep.get_by_role("button", name="Send to sales").count() == 0
    assert rep.locator("#profile").get_by_role("link", name="Edit").count() == 0


def test_on_the_lead_page_disqualifying_asks_first_and_an_admin_reopens(
    signed_in, live_server, marketer_mia, admin_ada
):
    lead = Contact.objects.create(email="grace@example.com", first_name="Grace", stage=Stage.MQL)
    page = signed_in(marketer_mia)
    page.goto(f"{live_server.url}/leads/{lead.pk}/")
    page.wait_for_function("window.htmx !== undefined")
    page.get_by_label("Handoff note or reason").fill("A competitor, researching us")

    asked = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    page.get_by_role("button", name="Disqualify").click()
    page.wait_for_timeout(300)
    assert asked and asked[0].startswith("Disqualify Grace?")
    assert Contact.objects.scored().get(pk=lead.pk).stage == Stage.MQL  # dismissed: nothing happened

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Disqualify").click()
    page.locator("h1 .stage-disqualified").wait_for()
    assert "Disqualified: A competitor, researching us" in page.locator("ol.history").inner_text()

    admin = signed_in(admin_ada)
    admin.goto(f"{live_server.url}/leads/{lead.pk}/")
    admin.wait_for_function("window.htmx !== undefined")
    admin.get_by_label("Reason to re-open").fill("They asked for a demo")
    admin.once("dialog", lambda dialog: dialog.accept())
    admin.get_by_role("button", name="Re-open as a lead").click()
    admin.locator("h1 .stage-lead").wait_for()
    assert "Re-opened: They asked for a demo" in admin.locator("ol.history").inner_text()


def test_after_sending_a_lead_to_sales_its_page_says_sql(signed_in, live_server, marketer_mia):
    lead = Contact.objects.create(email="ada@example.com", first_name="Ada", stage=Stage.MQL)
    page = signed_in(marketer_mia)
    page.goto(f"{live_server.url}/leads/{lead.pk}/")
    page.wait_for_function("window.htmx !== undefined")

    page.get_by_label("Handoff note or reason").fill("Wants pricing for 40 seats")
    page.get_by_role("button", name="Send to sales").click()

    page.locator("h1 .stage-sql").wait_for()
    assert "Sent 1 lead(s) to sales." in page.locator(".messages").inner_text()
    assert "Wants pricing for 40 seats" in page.locator(".note").inner_text()
    assert page.get_by_role("button", name="Send to sales").count() == 0


def test_a_profile_edit_shows_the_new_score_when_it_returns(signed_in, live_server, marketer_mia):
    lead = Contact.objects.create(email="vp@example.com", first_name="Val", job_title="Analyst", stage=Stage.LEAD)
    page = signed_in(marketer_mia)
    page.goto(f"{live_server.url}/leads/{lead.pk}/")
    page.wait_for_function("window.htmx !== undefined")

    page.locator("#profile").get_by_role("link", name="Edit").click()
    page.get_by_label("Job title").fill("VP of Growth")
    page.get_by_role("button", name="Save").click()

    page.locator("#score").get_by_text("Senior job title").wait_for()
    assert "grade B" in page.locator("#score .score-card").inner_text()
