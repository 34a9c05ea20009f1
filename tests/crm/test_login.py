"""Logging in: emails in any case; failed attempts throttled per account and per address, atomically."""

from __future__ import annotations

import pytest
import redis
from django.test import Client

from crm.redis_client import get_redis
from tests.conftest import PASSWORD

WRONG = "not-the-password"
GENERIC = "Please enter a correct email and password"


@pytest.fixture(autouse=True)
def _no_earlier_attempts():
    for key in get_redis().scan_iter("login:*"):
        get_redis().delete(key)


def log_in(client, email, password, address="10.0.0.1"):
    return client.post("/login/", {"username": email, "password": password}, REMOTE_ADDR=address)


def test_the_email_is_not_case_sensitive(client, marketer_mia):
    response = log_in(client, "  MIA@BATON.TEST ", PASSWORD)

    assert response.status_code == 302
    assert client.get("/leads/").status_code == 200


def test_after_five_failed_attempts_even_the_right_password_waits(client, rep_sam):
    for _ in range(5):
        assert GENERIC in log_in(client, rep_sam.email, WRONG).content.decode()

    response = log_in(client, rep_sam.email, PASSWORD)

    assert response.status_code == 200
    assert "Too many attempts to log in. Wait 15 minutes" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_a_lockout_says_nothing_about_whether_the_account_exists(client, rep_sam):
    answers = {}
    for email in (rep_sam.email, "nobody@baton.test"):
        pages = [log_in(client, email, WRONG).content.decode() for _ in range(6)]
        answers[email] = (GENERIC in pages[0], "Too many attempts" in pages[5])

    assert answers[rep_sam.email] == answers["nobody@baton.test"] == (True, True)


def test_one_address_trying_many_accounts_is_throttled(client, db, settings):
    settings.LOGIN_ATTEMPTS_PER_ADDRESS = 8
    pages = [log_in(client, f"guess{i}@baton.test", WRONG).content.decode() for i in range(9)]

    assert all(GENERIC in page for page in pages[:8])
    assert "Too many attempts" in pages[8]
    assert GENERIC in log_in(client, "guess99@baton.test", WRONG, address="10.0.0.2").content.decode()


def test_a_success_forgets_the_accounts_failures(client, rep_sam):
    for _ in range(4):
        log_in(client, rep_sam.email, WRONG)
    assert log_in(client, rep_sam.email, PASSWORD).status_code == 302

    other = Client()
    for _ in range(4):
        log_in(other, rep_sam.email, WRONG)
    assert log_in(other, rep_sam.email, PASSWORD).status_code == 302


def test_without_redis_people_can_still_log_in(client, rep_sam, settings, monkeypatch):
    from crm import login

    unreachable = redis.Redis(port=1, socket_connect_timeout=0.2)
    monkeypatch.setattr(login, "get_redis", lambda: unreachable)
    monkeypatch.setattr(login, "_count_attempt_script", lambda: unreachable.register_script(login.COUNT_ATTEMPT))

    assert log_in(client, rep_sam.email, PASSWORD).status_code == 302
