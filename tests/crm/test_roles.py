from __future__ import annotations

import importlib

import pytest
from django.apps import apps
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command

from crm.roles import roles_of
from tests.conftest import PASSWORD


def test_the_role_migration_creates_the_three_groups_once(db):
    Group.objects.all().delete()
    role_groups = importlib.import_module("crm.migrations.0002_role_groups")

    role_groups.create_groups(apps, None)
    role_groups.create_groups(apps, None)

    assert sorted(Group.objects.values_list("name", flat=True)) == ["admin", "marketing", "sales"]


@pytest.mark.parametrize(
    ("persona", "lands_on"),
    [("marketer_mia", "/leads/"), ("admin_ada", "/leads/"), ("rep_sam", "/queue/")],
)
def test_each_role_lands_on_its_home_after_login(client, request, persona, lands_on):
    user = request.getfixturevalue(persona)

    response = client.post("/login/", {"username": user.email, "password": PASSWORD})
    assert response.status_code == 302
    home = client.get(response["Location"])

    assert home.status_code == 302
    assert home["Location"] == lands_on
    assert client.get(lands_on).status_code == 200


def test_a_wrong_password_is_refused_with_a_message(client, marketer_mia):
    response = client.post("/login/", {"username": marketer_mia.email, "password": "nope"})

    assert response.status_code == 200
    assert b"correct" in response.content  # "Please enter a correct username and password."
    assert "_auth_user_id" not in client.session


def test_anonymous_visitors_are_sent_to_the_login_page(client, db):
    response = client.get("/leads/")

    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_a_user_without_a_role_is_refused_everywhere(client, roleless_nick):
    client.force_login(roleless_nick)

    assert client.get("/").status_code == 403
    assert client.get("/leads/").status_code == 403


def test_admins_hold_every_role(admin_ada):
    assert roles_of(admin_ada) == {"marketing", "sales", "admin"}
    assert admin_ada.is_staff


def test_navigation_fits_the_role(client, marketer_mia, admin_ada):
    client.force_login(marketer_mia)
    assert b'href="/admin/"' not in client.get("/leads/").content

    client.force_login(admin_ada)
    assert b'href="/admin/"' in client.get("/leads/").content


def test_create_user_command_makes_a_user_who_can_log_in(client, db):
    call_command("create_user", role="sales", email="Rita@Example.com", password="a-long-good-passphrase")

    assert client.login(username="rita@example.com", password="a-long-good-passphrase")


def test_create_user_command_refuses_a_weak_password(db):
    with pytest.raises(CommandError, match="too common"):
        call_command("create_user", role="sales", email="rita@example.com", password="password")


def test_create_user_command_refuses_an_unknown_role(db):
    with pytest.raises(CommandError):
        call_command("create_user", role="ceo", email="rita@example.com", password="a-long-good-passphrase")
