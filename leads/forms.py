"""Classifying hosted forms, which changes what their submissions score."""

from __future__ import annotations

from functools import partial

from django.db import connection, transaction
from django.utils import timezone

from crm.freshness import request_rescore
from leads.models import Form


def classify(*, form: Form, kind: str) -> list[int]:
    """Set the form's kind and mark every contact who submitted it stale (rescored after commit).

    Returns those contacts' ids. Safe to run twice.
    """
    with transaction.atomic(), connection.cursor() as cursor:
        Form.objects.filter(pk=form.pk).update(kind=Form.Kind(kind))
        cursor.execute(
            """
            UPDATE crm_contactactivity a SET stale_since = coalesce(a.stale_since, %s)
            WHERE a.contact_id IN (
                SELECT DISTINCT contact_id FROM leads_event
                WHERE type = 'form_submit' AND properties ->> 'form' = %s AND contact_id IS NOT NULL
            )
            RETURNING a.contact_id
            """,
            [timezone.now(), form.slug],
        )
        ids = [row[0] for row in cursor.fetchall()]
        transaction.on_commit(partial(request_rescore, ids))
    form.kind = kind
    return ids
