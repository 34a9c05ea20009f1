"""A marketer opens the reports in Chromium, changes the period, clicks a funnel count and lands on exactly those
leads; the page fits a phone."""

from __future__ import annotations

import pytest

from tests.front.test_reports import october  # noqa: F401 (the fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("width", [1440, 390])
def test_a_marketer_changes_the_period_and_opens_a_funnel_count(signed_in, live_server, marketer_mia, october, width):  # noqa: F811
    page = signed_in(marketer_mia)
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(f"{live_server.url}/leads/")
    page.get_by_role("link", name="Reports").click()
    assert page.locator("#funnel").is_visible()

    page.get_by_label("Period", exact=True).select_option("custom")
    page.get_by_label("From", exact=True).fill("2026-10-01")
    page.get_by_label("To", exact=True).fill("2026-10-31")
    page.get_by_role("button", name="Show").click()
    page.locator("#funnel a[data-stage='sql']").wait_for()
    assert page.locator("#funnel a[data-stage='sql']").inner_text() == "3"
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

    page.locator("#funnel a[data-stage='sql']").click()
    page.wait_for_url("**/leads/**")
    emails = page.locator("#contact-table").inner_text()
    assert all(f"{name}@example.com" in emails for name in ("ann", "bob", "fay"))
    assert not any(f"{name}@example.com" in emails for name in ("cy", "dee", "eve"))
