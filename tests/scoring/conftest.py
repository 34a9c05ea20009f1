from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from django.db import connection

from crm.models import Company, Contact
from leads.models import Event, Source
from scoring import services
from tests.conftest import database_url
from tests.leads.conftest import ingest_key, send, website  # noqa: F401  (fixtures shared with ingest tests)
from tests.scores import reloaded

# The suite's "now": this minute's start, so a worker scoring at the real now sees these events (nearly) undecayed.
NOW = datetime.now(UTC).replace(second=0, microsecond=0)
_ids = itertools.count()


@pytest.fixture
def another_worker_rescoring(db):
    """Another session holding the full-rescore lock, as a worker executing a run does."""
    other = psycopg.connect(database_url(connection.settings_dict).replace("postgres://", "postgresql://"))
    other.execute("SELECT pg_advisory_lock(%s)", [services.FULL_RESCORE_LOCK])
    yield
    other.close()


@pytest.fixture
def source(db):
    return Source.objects.get_or_create(name="website")[0]


@pytest.fixture
def contact(db):
    return Contact.objects.create(email="grace@example.com", job_title="Engineer")


@pytest.fixture
def add_event(source):
    """add_event(contact, type, days_ago=0, **properties): an event row as ingest would store it."""

    def add(contact, type, days_ago=0.0, **properties):
        return Event.objects.create(
            source=source,
            client_id=f"e{next(_ids)}",
            contact=contact,
            type=type,
            properties=properties,
            occurred_at=NOW - timedelta(days=days_ago),
            received_at=NOW,
        )

    return add


@pytest.fixture
def rescore():
    """rescore(contact, now=NOW): score through the set-based path; returns the contact reloaded."""

    def run(contact, now=NOW):
        services.rescore(contact_ids=[contact.pk], now=now)
        contact = reloaded(contact)
        return contact

    return run


def company(size):
    return Company.objects.create(name=f"Co {size} {next(_ids)}", size=size)


def points(contact, rule):
    return next((e["points"] for e in contact.breakdown if e["rule"] == rule), None)
