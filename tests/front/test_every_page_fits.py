"""Every page of every role, on the demo data, in Chromium at 1440 px and at 390 px: it opens, nothing makes it
scroll sideways, and a screenshot of it lands in var/artifacts/screens/ for a person to look at."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command

from crm import accounts
from crm.models import Contact, Note, Stage, WebhookEndpoint
from leads.models import ApiKey, Form, Source
from scoring import criteria, previews

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENS = Path(settings.BASE_DIR) / "var" / "artifacts" / "screens"

PAGES = {
    "marketing": ["/leads/", "/leads/{lead}/", "/leads/{sql}/", "/queue/", "/reports/", "/imports/"],
    "sales": ["/queue/", "/queue/?tab=closed", "/leads/", "/leads/{sql}/", "/reports/"],
    "admin": [
        "/leads/",
        "/leads/{lead}/",
        "/queue/",
        "/reports/",
        "/imports/",
        "/criteria/",
        "/settings/users/",
        "/settings/webhooks/",
        "/settings/webhooks/{webhook}/",
        "/settings/desk/",
    ],
    "anonymous": ["/login/", "/password_reset/", "/f/{form}?key={key}", "/invite/{invitation}/", "/no-such-page/"],
}


@pytest.fixture
def demo(db):
    call_command("seed_demo", contacts=300, events=6000)
    users = get_user_model().objects
    lead = Contact.objects.filter(stage=Stage.MQL).order_by("pk").first()
    # A long unbroken note is what once made the lead page 60,028 px wide.
    Note.objects.create(contact=lead, author=users.get(email="mia@baton.test"), body="x" * 5000)
    website = Source.objects.create(name="site", kind=Source.Kind.WEBSITE, allowed_origins=["https://www.example.com"])
    invited = accounts.invite(email="new.rep@example.com", name="New Rep", role="sales")
    previews.run(preview_id=previews.start(version=criteria.draft()).pk)  # the criteria page with its preview
    slack = WebhookEndpoint.objects.create(
        name="Slack",
        kind="slack",
        url="https://hooks.slack.com/services/" + "T0123456789" * 20,
        events=["handoff.created"],
    )
    return {
        "users": {
            role: users.get(email=f"{name}@baton.test")
            for role, name in [("marketing", "mia"), ("sales", "sam"), ("admin", "ada")]
        },
        "ids": {
            "lead": lead.pk,
            "sql": Contact.objects.filter(stage=Stage.SQL).order_by("pk").first().pk,
            "webhook": slack.pk,
            "form": Form.objects.order_by("pk").first().slug,
            "key": ApiKey.issue(source=website, scope=ApiKey.Scope.SITE)[1],
            "invitation": accounts.invite_token(invited),
        },
    }


@pytest.mark.parametrize("width", [1440, 390])
def test_every_page_of_every_role_fits_the_screen(browser, signed_in, live_server, demo, width):
    SCREENS.mkdir(parents=True, exist_ok=True)
    wide = []
    for role, paths in PAGES.items():
        page = signed_in(demo["users"][role]) if role != "anonymous" else browser.new_context().new_page()
        page.set_viewport_size({"width": width, "height": 900})
        for path in paths:
            url = path.format(**demo["ids"])
            response = page.goto(f"{live_server.url}{url}")
            assert response.status == (404 if url == "/no-such-page/" else 200), (role, url, response.status)
            name = (
                path.replace("?tab=", "-").split("?")[0].strip("/").replace("/", "-").replace("{", "").replace("}", "")
            )
            page.screenshot(path=SCREENS / f"{width}-{role}-{name}.png", full_page=True)
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            if overflow > 0:
                wide.append((role, url, overflow))
        if role == "anonymous":
            page.context.close()
    assert not wide, wide
