"""Manual score adjustments (PRODUCT.md §12): points with a reason and an optional expiry, stored as an
event of Baton's own type (so the timeline and the audit show who, when and why), scored by the built-in
rule in scoring.engine, and rescored at once. Expired adjustments stop counting at the next rescore; the
hourly decay refresh rescores everyone."""

from __future__ import annotations

import uuid
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from crm.lifecycle import Actor
from leads.models import ADJUSTMENT, Event, Source
from scoring import services

SOURCE = "Baton (manual)"


def adjust(*, contact_id: int, points: int, reason: str, expires_at: datetime | None, by: AbstractBaseUser) -> Event:
    """Add ``points`` (negative to lower) to the contact's score for ``reason``, until ``expires_at`` (None: for
    good); the contact is rescored before this returns (and may change stage, as with any rescore)."""
    now = timezone.now()
    source = Source.objects.get_or_create(name=SOURCE, defaults={"kind": Source.Kind.OTHER})[0]
    with transaction.atomic():
        event = Event.objects.create(
            source=source,
            client_id=f"adjustment-{uuid.uuid4()}",
            contact_id=contact_id,
            type=ADJUSTMENT,
            occurred_at=now,
            received_at=now,
            properties={
                "points": points,
                "reason": reason,
                "by": Actor.of(by).label,
                "by_id": by.pk,
                "expires": expires_at.timestamp() if expires_at else None,
            },
        )
        services.rescore(contact_ids=[contact_id], now=now)
    return event
