"""Hosted forms: classifying them (which changes what their submissions score), and who asked for what."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import connection, transaction

from crm.freshness import mark_stale
from leads.models import Event, Form

REQUESTED_WINDOW = timedelta(days=30)


def classify(*, form: Form, kind: str) -> list[int]:
    """Set the form's kind and mark every contact who submitted it stale (rescored after commit).

    Returns those contacts' ids. Safe to run twice.
    """
    with transaction.atomic(), connection.cursor() as cursor:
        Form.objects.filter(pk=form.pk).update(kind=Form.Kind(kind))
        cursor.execute(
            "SELECT DISTINCT contact_id FROM leads_event"
            " WHERE type = 'form_submit' AND properties ->> 'form' = %s AND contact_id IS NOT NULL ORDER BY 1",
            [form.slug],
        )
        ids = [row[0] for row in cursor.fetchall()]
        mark_stale(contact_ids=ids)
    form.kind = kind
    return ids


def requested_forms(*, contact_ids: list[int], now: datetime) -> dict[int, list[str]]:
    """The forms each contact sent in the 30 days before ``now``, by name, oldest first (for a handoff note)."""
    names = dict(Form.objects.values_list("slug", "name"))
    requested: dict[int, list[str]] = {}
    for contact_id, form in (
        Event.objects.filter(contact_id__in=contact_ids, type="form_submit", occurred_at__gte=now - REQUESTED_WINDOW)
        .order_by("occurred_at")
        .values_list("contact_id", "properties__form")
    ):
        label = names.get(form, form)
        if label not in requested.setdefault(contact_id, []):
            requested[contact_id].append(label)
    return requested
