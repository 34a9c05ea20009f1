from __future__ import annotations

from handoff.models import QueueEntry
from scoring import services as scoring


def test_a_contact_scored_into_sql_enters_the_queue_once(contact, add_event, rescore):
    add_event(contact, "form_submit", form="demo")
    for _ in range(6):
        add_event(contact, "page_view", path="/pricing")

    rescore(contact)
    scoring.rescore(contact_ids=[contact.pk])

    entry = QueueEntry.objects.get(contact=contact)
    assert entry.sent_by == "scoring v1"
    assert entry.facts["requested"] == ["Demo request"]
    assert entry.reasons[0]["rule"] == "Demo or contact request"
