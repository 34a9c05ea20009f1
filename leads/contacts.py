"""Contacts as the read API shows them (API.md): filters, keyset cursor, the JSON shape."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any

from django.db.models import Prefetch, QuerySet
from django.http import QueryDict

from crm.models import Contact, Stage, StageChange
from leads import errors
from leads.schemas import check_timestamp

MAX_LIMIT = 500


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def as_json(contact: Contact) -> dict[str, Any]:
    return {
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
        "last_activity_at": _iso(contact.last_activity_at),
        "scored_at": _iso(contact.scored_at),
        "criteria_version": contact.criteria_version,
        "breakdown": contact.breakdown,
        "stage_history": [
            {
                "from": c.from_stage,
                "to": c.to_stage,
                "at": _iso(c.at),
                "by": c.by_label,
                "reason": c.reason,
                "score": c.score,
            }
            for c in contact.stage_changes.all()
        ],
    }


def contacts() -> QuerySet[Contact]:
    return Contact.objects.select_related("company", "owner").prefetch_related(
        Prefetch("stage_changes", queryset=StageChange.objects.order_by("at", "id"))
    )


def _problem(field: str, message: str) -> errors.ApiError:
    return errors.invalid([{"index": None, "field": field, "message": message}])


def _int(query: QueryDict, name: str) -> int | None:
    if name not in query:
        return None
    try:
        return int(query[name])
    except ValueError:
        raise _problem(name, "must be a whole number") from None


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        return int(text.removeprefix("id:")) if text.startswith("id:") else int("x")
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise _problem("cursor", "is not a cursor this API gave out; start again without it") from None


def page(query: QueryDict) -> tuple[list[Contact], str | None]:
    """One page of contacts by id, filtered as the query asks. Raises ApiError naming a bad parameter."""
    found = contacts().order_by("id")
    if "email" in query:
        found = found.filter(email=query["email"].strip().lower())
    if "stage" in query:
        if query["stage"] not in Stage.values:
            raise _problem("stage", f"must be one of {', '.join(Stage.values)}")
        found = found.filter(stage=query["stage"])
    if (low := _int(query, "min_score")) is not None:
        found = found.filter(score__gte=low)
    if (high := _int(query, "max_score")) is not None:
        found = found.filter(score__lte=high)
    if "updated_since" in query:
        try:
            found = found.filter(updated_at__gte=check_timestamp(query["updated_since"]))
        except ValueError as e:
            raise _problem("updated_since", str(e)) from None
    if "cursor" in query:
        found = found.filter(id__gt=_decode_cursor(query["cursor"]))
    limit = _int(query, "limit")
    limit = 100 if limit is None else limit
    if not 1 <= limit <= MAX_LIMIT:
        raise _problem("limit", f"must be between 1 and {MAX_LIMIT}")
    rows = list(found[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, encode_cursor(rows[-1].pk) if more else None
