from __future__ import annotations

import itertools

import pytest
from django.utils import timezone

from crm.models import Stage
from handoff import services
from handoff.models import QueueEntry
from tests.scores import make_contact
from tests.scoring.conftest import add_event, contact, rescore, source  # noqa: F401  (shared fixtures)

_n = itertools.count()
SLA = services.Sla(unclaimed_minutes=60, first_touch_minutes=120)


def sql_entry(**contact_fields) -> QueueEntry:
    """A contact in sql with its waiting queue entry, as scoring leaves it."""
    lead = make_contact(email=f"sql{next(_n)}@example.com", stage=Stage.SQL, score=80, **contact_fields)
    services.enqueue(contact_ids=[lead.pk], sent_by="scoring v1", sla=SLA, requested={}, now=timezone.now())
    return QueueEntry.objects.get(contact=lead)


@pytest.fixture
def entry(db):
    return sql_entry(first_name="Ada", job_title="Head of Data", phone="+1 555")
