"""Ingest reads the contacts a request only names: a stage move holding their rows does not hold it up."""

from __future__ import annotations

from contextlib import contextmanager

import psycopg
import pytest
from django.db import OperationalError, connection
from django.utils import timezone

from crm.models import Contact
from leads import ingest
from leads.models import Event
from leads.schemas import EventIn


@contextmanager
def moving(contact: Contact):
    """Another transaction holding the contact's row, as a publish's stage moves do until they commit."""
    settings = connection.settings_dict
    with psycopg.connect(
        host=settings["HOST"], port=settings["PORT"], user=settings["USER"], dbname=settings["NAME"]
    ) as other:
        other.execute("UPDATE crm_contact SET stage = 'mql' WHERE id = %s", [contact.pk])
        yield
        other.rollback()


def record(website, event: dict):
    with connection.cursor() as cursor:  # waiting for the row would fail fast, not hang the test
        cursor.execute("SET lock_timeout = '1s'")
    try:
        return ingest.record(
            source=website, events=[EventIn.model_validate(event)], received_at=timezone.now(), limit=False
        )
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")


@pytest.mark.django_db(transaction=True)
def test_an_event_for_a_known_contact_is_stored_while_a_move_holds_its_row(website):
    ada = Contact.objects.create(email="ada@example.com", channel="google")

    with moving(ada):
        result = record(website, {"id": "pv-1", "type": "page_view", "email": "ada@example.com"})

    assert result.contact_ids == [ada.pk]
    assert Event.objects.get().contact_id == ada.pk
    ada.activity.refresh_from_db()
    assert ada.activity.stale_since is not None


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("channel", "event"),
    [
        ("google", {"type": "form_submit", "properties": {"form": "demo", "job_title": "CTO"}}),
        ("google", {"type": "email_unsubscribe"}),
        ("", {"type": "page_view"}),  # its first touch is still to be written
    ],
)
def test_an_event_with_something_to_write_on_the_contact_waits_for_the_move(website, channel, event):
    ada = Contact.objects.create(email="ada@example.com", channel=channel)

    with moving(ada), pytest.raises(OperationalError, match="lock timeout"):
        record(website, {"id": "e-1", "email": "ada@example.com", **event})

    record(website, {"id": "e-1", "email": "ada@example.com", **event})
    ada.refresh_from_db()
    assert ada.channel == (channel or "website")
    assert Event.objects.count() == 1
