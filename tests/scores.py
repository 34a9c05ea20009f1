"""Contacts with a given score for tests: scores live in their own table (crm.models.Score), written by scoring;
a test that needs a contact at a score, grade or trend writes the live version's row directly."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from crm.models import Contact, Score, ScoreLegend, ScoreVersion


def facts_of(breakdown: list[dict[str, Any]], version: int) -> dict[str, Any]:
    """The stored facts a breakdown is read from, under the names of the version's legend."""
    legend = ScoreLegend.objects.get(version=version)
    counts, shares = [0] * len(legend.behaviour), [0.0] * len(legend.behaviour)
    facts = {"counts": counts, "shares": shares, "fits": [False] * len(legend.fit), "manual": 0.0, "manual_n": 0}
    for entry in breakdown:
        if entry["kind"] == "behaviour":
            i = legend.behaviour.index(entry["rule"])
            counts[i], shares[i] = entry["events"], entry["points"]
        elif entry["kind"] == "fit":
            facts["fits"][legend.fit.index(entry["rule"])] = True
        else:
            facts["manual"], facts["manual_n"] = entry["points"], entry["events"]
    return facts


def set_score(contact: Contact | int, **fields: Any) -> Contact | int:
    """Give ``contact`` these live score fields (the rest as scoring would leave a contact without events); a
    ``breakdown`` as the facts it is read from."""
    pk = contact if isinstance(contact, int) else contact.pk
    version = ScoreVersion.objects.get().live
    if "breakdown" in fields:
        fields |= facts_of(fields.pop("breakdown"), version)
    defaults = {"scored_at": timezone.now()} | fields
    if "score" in fields:
        defaults.setdefault("promotion_score", fields["score"])
    Score.objects.update_or_create(version=version, contact_id=pk, defaults=defaults)
    return contact


def make_contact(**fields: Any) -> Contact:
    """``Contact.objects.create`` that also takes the score fields; the contact comes back with them read."""
    scores = {k: fields.pop(k) for k in (*Score.READ, "breakdown") if k in fields}
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
