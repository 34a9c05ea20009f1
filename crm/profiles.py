"""Changing what a contact's profile says: the write, and the stale mark that gets it rescored."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from crm.freshness import mark_stale
from crm.models import Contact

# The contact's own text fields of its profile (company fields belong to its company): the lead page's form
# edits them, imports fill them.
TEXT_FIELDS = (
    "first_name",
    "last_name",
    "phone",
    "job_title",
    "seniority",
    "country",
    "budget",
    "authority",
    "need",
    "timeline",
)


def update(*, contact_id: int, fields: dict[str, Any], nudge: bool = True) -> None:
    """Write profile ``fields`` of one contact and mark it stale (the worker rescores it after commit, unless
    ``nudge=False``: the caller rescores it itself). Safe to run twice."""
    with transaction.atomic():
        Contact.objects.filter(pk=contact_id).update(**fields, updated_at=timezone.now())
        mark_stale(contact_ids=[contact_id], nudge=nudge)
