"""Criteria in headless Chromium, with a real worker behind the progress bar."""

from __future__ import annotations

import pytest
from django.utils import timezone

from crm.models import Contact
from leads.models import Event, Source
from scoring import services
from scoring.models import CriteriaVersion
from tests.scores import reloaded

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_admin_changes_the_criteria_publishes_and_the_lead_follows(
    signed_in, live_server, celery_worker, admin_ada, marketer_mia
):
    lead = Contact.objects.create(email="ada@example.com", first_name="Ada")
    source, now = Source.objects.create(name="website"), timezone.now()
    events = [("email_click", {})] * 10 + [("form_submit", {"form": "webinar"})]
    Event.objects.bulk_create(
        [
            Event(
                source=source, client_id=f"e{i}", contact=lead, type=t, properties=p, occurred_at=now, received_at=now
            )
            for i, (t, p) in enumerate(events)
        ]
    )
    services.rescore(contact_ids=[lead.pk])
    lead = reloaded(lead)
    assert (lead.score, lead.stage) == (45, "mql")  # 10 clicks × 3 (cap 30) + a webinar 15

    page = signed_in(admin_ada)
    page.goto(f"{live_server.url}/criteria/")
    page.locator("tr:has(input[value='Email click']) input[name$='-points']").fill("1")
    page.locator("input[name=mql_threshold]").fill("50")
    page.get_by_role("button", name="Preview impact").click()
    page.locator("#preview table").first.wait_for(timeout=30_000)  # the worker computed it; the panel polled
    assert "mql" in page.locator("#preview").inner_text()
    asked = []
    page.on("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
    page.get_by_role("button", name="Publish v2").click()
    page.get_by_text("done —").wait_for(timeout=30_000)  # the bar polls the worker's progress
    assert page.locator("progress").get_attribute("value") == "100"
    assert "rescored" in asked[0] and "from mql to lead" in asked[0]  # it said what publishing would do

    page.goto(f"{live_server.url}/leads/{lead.pk}/")
    heading = page.get_by_role("heading", level=1).inner_text()
    assert "Lead" in heading
    assert page.locator(".score-card strong").inner_text() == "25"  # 10 clicks × 1 + 15

    marketer = signed_in(marketer_mia)
    response = marketer.goto(f"{live_server.url}/criteria/")
    assert response.status == 403


def test_publishing_asks_first_and_cancel_changes_nothing(signed_in, live_server, admin_ada):
    page = signed_in(admin_ada)
    page.goto(f"{live_server.url}/criteria/")
    page.locator("input[name=mql_threshold]").fill("55")
    page.get_by_role("button", name="Save draft").click()
    page.get_by_role("button", name="Publish v2").wait_for()
    asked = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    page.get_by_role("button", name="Publish v2").click()

    assert asked and asked[0].startswith("Publish v2?")
    assert list(CriteriaVersion.objects.order_by("number").values_list("number", "status")) == [
        (1, "active"),
        (2, "draft"),
    ]
    assert page.get_by_role("button", name="Publish v2").is_visible()  # still on the editor, nothing sent


def test_an_admin_reads_the_evidence_backtests_applies_suggested_points_and_publishes(
    signed_in, live_server, celery_worker, admin_ada
):
    from tests.scoring.test_evidence import history

    history(250)
    page = signed_in(admin_ada)
    page.goto(f"{live_server.url}/criteria/")
    assert "Evidence rests on 250 labelled handoffs" in page.locator("#evidence-basis").inner_text()
    pricing = page.locator("#evidence-rules tr[data-rule='Pricing or product page']")
    assert pricing.locator("[data-label='Flag']").inner_text() == "predictive"

    page.get_by_role("button", name="Backtest v2").click()
    page.locator("#backtest-result").wait_for(timeout=30_000)  # the bar polls the worker's progress
    assert "Active v1" in page.locator("#backtest-result").inner_text()

    page.get_by_role("button", name="Suggest points into the draft").click()
    page.locator("#suggestions").wait_for()
    assert "Pricing or product page: 5 →" in page.locator("#suggestions").inner_text()
    suggested = page.locator("tr:has(input[value='Pricing or product page']) input[name$='-points']").input_value()
    assert float(suggested) != 5  # written into the draft's editor

    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Publish v2").click()
    page.get_by_text("done —").wait_for(timeout=30_000)
    assert CriteriaVersion.objects.get(status="active").number == 2
