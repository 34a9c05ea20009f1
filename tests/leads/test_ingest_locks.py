"""Ingest reads the contacts a request only names: what holds their rows (a stage move, an import) does not hold
it up, and a contact deleted meanwhile is created again."""

from __future__ import annotations

import threading
from contextlib import contextmanager

import psycopg
import pytest
from django.db import OperationalError, connection, transaction
from django.utils import timezone

from crm import lifecycle
from crm.models import Contact, Stage
from leads import imports, ingest
from leads.models import Event
from leads.schemas import EventIn
from tests.conftest import database_url


@contextmanager
def holding(*statements: str):
    """Another transaction that ran ``statements`` and holds what they locked until the block ends."""
    with psycopg.connect(database_url(connection.settings_dict)) as other:
        for statement in statements:
            other.execute(statement)
        try:
            yield other
        finally:
            other.rollback()


@contextmanager
def held_by(work):
    """``work()`` run in a transaction of another thread, which holds what it locked until the block ends."""
    from django.db import connections

    ran, done, failures = threading.Event(), threading.Event(), []

    def hold():
        try:
            with transaction.atomic():
                work()
                ran.set()
                done.wait(10)
        except Exception as e:  # noqa: BLE001 - reported below
            failures.append(e)
            ran.set()
        finally:
            connections["default"].close()

    thread = threading.Thread(target=hold)
    thread.start()
    assert ran.wait(10)
    try:
        yield
    finally:
        done.set()
        thread.join()
    assert failures == []


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


def page_view(i: int = 1) -> dict:
    return {"id": f"pv-{i}", "type": "page_view", "email": "ada@example.com"}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("holder", ["stage rules", "import", "marketer"])
def test_an_event_for_a_known_contact_is_stored_while_another_transaction_holds_its_row(website, holder):
    ada = Contact.objects.create(email="ada@example.com", channel="google")
    work = {
        "stage rules": lambda: lifecycle.move_many(
            moves=[lifecycle.Move(ada.pk, Stage.LEAD, Stage.MQL, "publish", 50)], by=lifecycle.Actor.scoring(2)
        ),
        "import": lambda: imports._existing([ada.email], lock=True),
        "marketer": lambda: lifecycle.move(contact_id=ada.pk, to=Stage.MQL, by=lifecycle.Actor.scoring(2)),
    }[holder]

    with held_by(work):
        result = record(website, page_view())

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

    with (
        holding(f"UPDATE crm_contact SET stage = 'mql' WHERE id = {ada.pk}"),
        pytest.raises(OperationalError, match="lock timeout"),
    ):
        record(website, {"id": "e-1", "email": "ada@example.com", **event})

    record(website, {"id": "e-1", "email": "ada@example.com", **event})
    ada.refresh_from_db()
    assert ada.channel == (channel or "website")
    assert Event.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_an_event_for_a_contact_deleted_meanwhile_creates_it_again(website):
    from django.db import connections

    ada = Contact.objects.create(email="ada@example.com", channel="google")
    stored, failures = [], []

    def post() -> None:
        try:
            stored.append(
                ingest.record(
                    source=website,
                    events=[EventIn.model_validate(page_view())],
                    received_at=timezone.now(),
                    limit=False,
                )
            )
        except Exception as e:  # noqa: BLE001 - the finding
            failures.append(e)
        finally:
            connections["default"].close()

    with holding(
        f"DELETE FROM crm_score WHERE contact_id = {ada.pk}",
        f"DELETE FROM crm_contactactivity WHERE contact_id = {ada.pk}",
        f"DELETE FROM crm_contact WHERE id = {ada.pk}",
    ) as deleting:
        thread = threading.Thread(target=post)
        thread.start()
        thread.join(1)  # it waits for the deletion
        deleting.commit()
    thread.join(10)

    assert failures == []
    again = Contact.objects.get(email="ada@example.com")
    assert again.pk != ada.pk
    assert stored[0].contact_ids == [again.pk]
    assert Event.objects.get().contact_id == again.pk


@pytest.mark.django_db(transaction=True)
def test_a_contact_is_not_deleted_under_the_events_being_stored_on_it(website):
    """The events have no foreign key to hold their contact: the statement's own lock on it does, until they commit."""
    ada = Contact.objects.create(email="ada@example.com", channel="google")
    with (
        held_by(lambda: record(website, page_view())),
        holding("SET lock_timeout = '300ms'") as deleting,
        pytest.raises(psycopg.errors.LockNotAvailable),
    ):
        deleting.execute(f"DELETE FROM crm_contact WHERE id = {ada.pk}")
    assert Event.objects.get().contact_id == ada.pk
