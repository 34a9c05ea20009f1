"""Contacts as the read API lists them (API.md): filters and the keyset cursor. The shape is crm.contact_json."""

from __future__ import annotations

import base64
import binascii

from django.db.models import Prefetch, Q, QuerySet

from crm.models import Contact, StageChange
from leads import errors
from leads.schemas import ContactQuery


def contacts() -> QuerySet[Contact]:
    return (
        Contact.objects.scored()
        .select_related("company", "owner")
        .prefetch_related(Prefetch("stage_changes", queryset=StageChange.objects.order_by("at", "id")))
    )


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        last_id = int(text.removeprefix("id:")) if text.startswith("id:") else -1
    except (ValueError, binascii.Error, UnicodeDecodeError):
        last_id = -1
    if not 0 <= last_id < 2**63:
        raise errors.invalid(
            [{"index": None, "field": "cursor", "message": "is not a cursor this API gave out; start again without it"}]
        )
    return last_id


def filtered(query: ContactQuery, found: QuerySet[Contact]) -> QuerySet[Contact]:
    """``found`` narrowed by the query's filters (not its cursor or limit)."""
    if query.email is not None:
        found = found.filter(email=query.email.strip().lower())
    if query.stage is not None:
        found = found.filter(live__stage=query.stage)  # the copy beside the live score has the index
    if query.min_score is not None:
        found = found.filter(score__gte=query.min_score)
    if query.max_score is not None:
        found = found.filter(score__lte=query.max_score)
    if query.updated_since is not None:
        # A new score is an update too (the contact row itself is not written by scoring).
        found = found.filter(Q(updated_at__gte=query.updated_since) | Q(scored_at__gte=query.updated_since))
    return found


def page(query: ContactQuery) -> tuple[list[Contact], str | None]:
    """One page of contacts by id, filtered as the (validated) query asks. Raises ApiError for a bad cursor."""
    found = filtered(query, contacts().order_by("id"))
    if query.cursor is not None:
        found = found.filter(id__gt=_decode_cursor(query.cursor))
    rows = list(found[: query.limit + 1])
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    return rows, encode_cursor(rows[-1].pk) if more else None
