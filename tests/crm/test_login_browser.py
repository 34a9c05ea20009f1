from __future__ import annotations

import pytest

from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_marketer_logs_in_and_lands_on_the_leads_list(page, live_server, marketer_mia):
    page.goto(f"{live_server.url}/")
    page.get_by_label("Email").fill(marketer_mia.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()

    page.get_by_role("heading", name="Leads", exact=True).wait_for()
    assert page.url == f"{live_server.url}/leads/"
    assert page.locator(".role-badge").inner_text().lower() == "marketing"


def test_a_wrong_password_shows_an_error_in_the_page(page, live_server, rep_sam):
    page.goto(f"{live_server.url}/login/")
    page.get_by_label("Email").fill(rep_sam.email)
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Log in").click()

    assert "correct" in page.get_by_role("alert").inner_text()
