"""An admin adds a webhook endpoint in Chromium, copies its secret, and sends a test event through the worker."""

from __future__ import annotations

import json

import pytest

from crm.models import WebhookDelivery
from tests.conftest import wait_for
from tests.crm.test_webhooks import Receiver, verify

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_admin_adds_an_endpoint_and_sends_a_test_event(signed_in, live_server, admin_ada, celery_worker, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE = True
    receiver = Receiver()
    page = signed_in(admin_ada)
    page.goto(f"{live_server.url}/leads/")
    page.get_by_role("link", name="Webhooks").click()

    page.get_by_label("Name").fill("Sales tool")
    page.get_by_label("Address (https://…)").fill(receiver.url)
    page.get_by_label("A lead entered the handoff queue").check()
    page.get_by_role("button", name="Add endpoint").click()

    secret = page.locator("#new-secret code").inner_text()
    assert secret.startswith("whsec_")
    page.get_by_role("link", name="Sales tool").click()
    page.get_by_role("button", name="Send test event").click()

    page.locator("#log").get_by_role("cell", name="Delivered").wait_for(timeout=20_000)
    wait_for(lambda: receiver.requests)
    assert verify(secret, receiver.requests[0])
    assert json.loads(receiver.requests[0]["body"])["type"] == "webhook.test"
    assert WebhookDelivery.objects.get().status == "delivered"
    receiver.server.shutdown()


def test_an_address_on_a_private_network_is_refused_on_the_form(signed_in, live_server, admin_ada, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE = False
    page = signed_in(admin_ada)
    page.goto(f"{live_server.url}/settings/webhooks/")

    page.get_by_label("Name").fill("Internal")
    page.get_by_label("Address (https://…)").fill("https://10.0.0.8/hook")
    page.get_by_label("A contact changed stage").check()
    page.get_by_role("button", name="Add endpoint").click()

    assert "private or local address" in page.get_by_role("alert").inner_text()
