"""Forgotten passwords (PRODUCT.md §13): Django's reset flow, the same answer whether the address has an account,
case-insensitive, throttled."""

from __future__ import annotations

import re

import pytest
from django.core import mail

from crm.redis_client import get_redis


@pytest.fixture(autouse=True)
def _fresh_counters():
    redis = get_redis()
    for key in redis.scan_iter("login:*"):
        redis.delete(key)
    for key in redis.scan_iter("reset:*"):
        redis.delete(key)


def test_a_user_resets_a_forgotten_password_and_logs_in_with_the_new_one(client, marketer_mia):
    assert client.get("/login/").content.decode().count("/password_reset/") == 1

    asked = client.post("/password_reset/", {"email": marketer_mia.email.upper()})

    assert asked.status_code == 302 and asked["Location"] == "/password_reset/done/"
    assert len(mail.outbox) == 1 and mail.outbox[0].to == [marketer_mia.email]
    link = re.search(r"http://testserver(/reset/\S+/)", mail.outbox[0].body).group(1)
    form = client.get(link, follow=True)
    assert form.status_code == 200 and "Choose a new password" in form.content.decode()
    saved = client.post(
        form.redirect_chain[-1][0], {"new_password1": "a-new-one-42!", "new_password2": "a-new-one-42!"}
    )
    assert saved.status_code == 302 and saved["Location"] == "/reset/done/"
    assert client.login(username=marketer_mia.username, password="a-new-one-42!")
    assert "expired" in client.get(link, follow=True).content.decode()  # a link works once


def test_an_unknown_address_gets_the_same_answer_and_no_email(client, db):
    asked = client.post("/password_reset/", {"email": "nobody@example.com"})

    assert asked.status_code == 302 and asked["Location"] == "/password_reset/done/"
    assert mail.outbox == []


def test_resets_are_throttled_per_account_and_per_address(client, marketer_mia, settings):
    settings.RESET_REQUESTS_PER_ACCOUNT, settings.RESET_REQUESTS_PER_ADDRESS = 2, 4
    for _ in range(3):
        assert client.post("/password_reset/", {"email": marketer_mia.email}).status_code == 302
    assert len(mail.outbox) == 2  # the third looks the same and sends nothing

    client.post("/password_reset/", {"email": "a@example.com"})
    refused = client.post("/password_reset/", {"email": "b@example.com"})
    assert refused.status_code == 200 and "Too many requests" in refused.content.decode()
