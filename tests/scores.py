"""Contacts with a given score for tests: scores live in their own table (crm.models.Score), written by scoring;
a test that needs a contact at a score, grade or trend writes the live version's row directly."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from crm.models import Contact, Score, ScoreVersion


def set_score(contact: Contact | int, **fields: Any) -> Contact | int:
    """Give ``contact`` these live score fields (the rest as scoring would leave a contact without events)."""
    pk = contact if isinstance(contact, int) else contact.pk
    version = ScoreVersion.objects.get().live
    defaults = {"scored_at": timezone.now()} | fields
    if "score" in fields:
        defaults.setdefault("promotion_score", fields["score"])
    Score.objects.update_or_create(version=version, contact_id=pk, defaults=defaults)
    return contact


def make_contact(**fields: Any) -> Contact:
    """``Contact.objects.create`` that also takes the score fields; the contact comes back with them read."""
    scores = {k: fields.pop(k) for k in Score.READ if k in fields}
    contact = Contact.objects.create(**fields)
    if scores:
        set_score(contact, **scores)
    return Contact.objects.scored().get(pk=contact.pk)


def make_contacts(rows: list[dict[str, Any]]) -> list[Contact]:
    return [make_contact(**row) for row in rows]


def reloaded[M](instance: M) -> M:
    """``instance`` read again; a contact with its live score's fields (``refresh_from_db`` cannot add them)."""
    if isinstance(instance, Contact):
        return Contact.objects.scored().get(pk=instance.pk)
    instance.refresh_from_db()
    return instance
