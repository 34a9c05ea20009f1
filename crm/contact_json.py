"""A contact as JSON: the shape of API.md's contact, shared by the read API and outgoing webhooks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from crm.models import Contact


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def of(contact: Contact, *, history: bool = True) -> dict[str, Any]:
    """``contact`` (with company and owner loaded, and its stage changes prefetched when ``history``)."""
    shape = {
        "id": contact.pk,
        "email": contact.email,
        "first_name": contact.first_name,
        "last_name": contact.last_name,
        "company": contact.company.name if contact.company else None,
        "job_title": contact.job_title,
        "channel": contact.channel,
        "stage": contact.stage,
        "score": contact.score,
        "fit_score": contact.fit_score,
        "engagement_score": contact.engagement_score,
        "grade": contact.grade,
        "trend": contact.trend,
        "owner": contact.owner.email if contact.owner else None,
        "email_opt_out": contact.email_opt_out,
        "last_activity_at": iso(contact.last_activity_at),
        "scored_at": iso(contact.scored_at),
        "criteria_version": contact.criteria_version,
        "breakdown": contact.breakdown,
    }
    if history:
        shape["stage_history"] = [
            {
                "from": c.from_stage,
                "to": c.to_stage,
                "at": iso(c.at),
                "by": c.by_label,
                "reason": c.reason,
                "score": c.score,
            }
            for c in contact.stage_changes.all()
        ]
    return shape
