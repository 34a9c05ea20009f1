"""Users in the product (PRODUCT.md §13): invite by email (7 days, resend, revoke), change a role, deactivate
(open claims back to the queue)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.core import mail

from crm.models import Contact, Stage
from crm.roles import roles_of
from handoff import services
from handoff.models import QueueEntry
from tests.scores import reloaded


@pytest.fixture
def ada(client, admin_ada):
    client.force_login(admin_ada)
    return client


def invitation_link(message) -> str:
    return re.search(r"http://testserver(/invite/\S+/)", message.body).group(1)


def test_an_admin_invites_someone_who_joins_with_a_password_of_their_own(ada, client):
    sent = ada.post("/settings/users/", {"email": "Neo@Example.com", "name": "Neo Anderson", "role": "sales"})
    assert sent.status_code == 302 and len(mail.outbox) == 1
    neo = get_user_model().objects.get(email="neo@example.com")
    assert not neo.has_usable_password() and roles_of(neo) == {"sales"}
    link = invitation_link(mail.outbox[0])
    ada.logout()

    assert "Welcome to Baton" in client.get(link).content.decode()
    joined = client.post(link, {"new_password1": "matrix-has-you-7", "new_password2": "matrix-has-you-7"})

    assert joined.status_code == 302 and client.get("/queue/").status_code == 200
    assert client.get(link).status_code == 404  # used once
    assert client.login(username="neo@example.com", password="matrix-has-you-7")


def test_an_invitation_expires_after_7_days_and_resending_replaces_the_link(ada):
    ada.post("/settings/users/", {"email": "neo@example.com", "role": "marketing"})
    first = invitation_link(mail.outbox[0])
    neo = get_user_model().objects.get(email="neo@example.com")

    ada.post(f"/settings/users/{neo.pk}/resend")
    second = invitation_link(mail.outbox[1])
    assert ada.get(first).status_code == 404 and ada.get(second).status_code == 200
    with time_machine.travel(timedelta(days=7, minutes=1)):
        assert ada.get(second).status_code == 404

    ada.post(f"/settings/users/{neo.pk}/revoke")
    assert ada.get(second).status_code == 404


def test_an_admin_changes_a_role(ada, rep_sam):
    ada.post(f"/settings/users/{rep_sam.pk}/role", {"role": "marketing"})

    rep_sam = reloaded(rep_sam)
    assert roles_of(get_user_model().objects.get(pk=rep_sam.pk)) == {"marketing"}


def test_deactivating_a_rep_returns_their_open_claims_and_ends_their_access(ada, client, rep_sam, rep_ria):
    contacts = [Contact.objects.create(email=f"l{i}@example.com", stage=Stage.SQL) for i in range(3)]
    services.enqueue(contact_ids=[c.pk for c in contacts], sent_by="t", sla=services.Sla(60, 120), requested={})
    entries = list(QueueEntry.objects.order_by("id"))
    for entry in entries[:2]:
        services.claim(entry_id=entry.pk, rep=rep_sam)
    services.first_touch(entry_id=entries[1].pk, rep=rep_sam, kind="call")
    services.claim(entry_id=entries[2].pk, rep=rep_ria)

    ada.post(f"/settings/users/{rep_sam.pk}/deactivate")

    assert list(QueueEntry.objects.order_by("id").values_list("status", "owner")) == [
        ("waiting", None),
        ("waiting", None),
        ("claimed", rep_ria.pk),
    ]
    assert Contact.objects.filter(owner=rep_sam).count() == 0
    assert not client.login(username=rep_sam.username, password="x")  # and no session survives either
    client.force_login(rep_sam)
    assert client.get("/queue/").status_code == 302


def test_only_admins_and_never_on_themselves(client, marketer_mia, admin_ada):
    client.force_login(marketer_mia)
    assert client.get("/settings/users/").status_code == 403
    assert client.post(f"/settings/users/{admin_ada.pk}/deactivate").status_code == 403
    client.force_login(admin_ada)
    client.post(f"/settings/users/{admin_ada.pk}/deactivate")
    assert get_user_model().objects.get(pk=admin_ada.pk).is_active


def test_the_users_page_keeps_the_admins_navigation(ada):
    page = ada.get("/settings/users/").content.decode()

    assert ">Criteria</a>" in page and ">Webhooks</a>" in page  # the page's own context must not hide the nav
