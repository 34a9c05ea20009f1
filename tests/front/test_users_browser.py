"""In Chromium: an admin invites a rep, the rep opens the emailed link, chooses a password and logs in."""

from __future__ import annotations

import re

import pytest
from django.core import mail

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_invite_accept_and_log_in(signed_in, page, live_server, admin_ada):
    ada = signed_in(admin_ada)
    ada.goto(f"{live_server.url}/settings/users/")
    ada.get_by_label("Email", exact=True).fill("neo@example.com")
    ada.get_by_label("Name", exact=True).fill("Neo Anderson")
    ada.get_by_label("Role", exact=True).select_option("sales")
    ada.get_by_role("button", name="Send invitation").click()
    ada.get_by_text("invited, not yet joined").wait_for()

    link = re.search(r"https?://\S+(/invite/\S+/)", mail.outbox[0].body).group(1)
    page.goto(f"{live_server.url}{link}")
    page.get_by_label("Password", exact=True).fill("matrix-has-you-7")
    page.get_by_label("The same again").fill("matrix-has-you-7")
    page.get_by_role("button", name="Join").click()
    page.wait_for_url("**/queue/")
    page.get_by_role("link", name="Log out").or_(page.get_by_role("button", name="Log out")).click()

    page.goto(f"{live_server.url}/login/")
    page.get_by_label("Email").fill("NEO@example.com")
    page.get_by_label("Password").fill("matrix-has-you-7")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/queue/")
    assert "Neo Anderson" in page.locator(".topbar").inner_text()
