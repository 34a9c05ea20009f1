"""The leads list in headless Chromium: filters held in the URL, search, a lead's why, handing over."""

from __future__ import annotations

import pytest
from django.test import Client

from crm.models import Company, Contact, Stage
from handoff.models import QueueEntry

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def signed_in(browser, live_server, user):
    client = Client()
    client.force_login(user)
    context = browser.new_context()
    context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}])
    page = context.new_page()
    page.set_default_timeout(10_000)
    return page


def test_a_marketer_filters_searches_reads_why_and_hands_a_lead_over(browser, live_server, marketer_mia):
    acme = Company.objects.create(name="Acme Rockets", size=300)
    breakdown = [{"rule": "Demo or contact request", "kind": "behaviour", "events": 1, "points": 40}]
    ada = Contact.objects.create(
        email="ada@acme.example",
        first_name="Ada",
        company=acme,
        stage=Stage.MQL,
        grade="A",
        score=65,
        breakdown=breakdown,
    )
    Contact.objects.create(email="bob@other.example", first_name="Bob", stage=Stage.MQL, grade="A", score=50)
    Contact.objects.create(email="cy@acme.example", first_name="Cy", company=acme, stage=Stage.LEAD, grade="C")
    page = signed_in(browser, live_server, marketer_mia)
    page.goto(f"{live_server.url}/leads/")
    page.wait_for_function("window.htmx !== undefined")

    page.get_by_label("Stage").select_option("mql")
    page.wait_for_url("**/leads/?*stage=mql*")
    page.get_by_label("Search").fill("acme")
    page.wait_for_url("**q=acme*")
    page.get_by_text("cy@acme.example").wait_for(state="detached")

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
