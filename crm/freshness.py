"""Asking the scoring worker to rescore contacts, coalesced.

PostgreSQL is the source of truth: ingest marks contacts stale in its own statement, every other change
to what a score reads (a profile edit, a company's size) through ``mark_stale``. Then the nudge after
commit: one task per contact at a time (Redis SET NX), a short delay so that a burst of events becomes
one rescore, and tasks addressed by name so that ``crm`` and ``leads`` need not import ``scoring``. A
nudge lost with the broker costs only until the sweeper's next pass.
"""

from __future__ import annotations

import logging
from functools import partial

import redis
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from crm.celery import app
from crm.redis_client import get_redis

log = logging.getLogger(__name__)
RESCORE_TASK = "scoring.tasks.rescore_contacts"
TASK_CHUNK = 500


def coalescing_key(contact_id: int) -> str:
    return f"rescore:{contact_id}"


def request_rescore(contact_ids: list[int]) -> None:
    """Enqueue a rescore of the contacts not already waiting for one. Never raises for a broker outage."""
    if not contact_ids:
        return
    try:
        pipe = get_redis().pipeline(transaction=False)
        for pk in contact_ids:
            pipe.set(coalescing_key(pk), 1, nx=True, ex=settings.RESCORE_KEY_TTL)
        wanted = [pk for pk, created in zip(contact_ids, pipe.execute(), strict=True) if created]
        for start in range(0, len(wanted), TASK_CHUNK):
            app.send_task(RESCORE_TASK, args=[wanted[start : start + TASK_CHUNK]], countdown=settings.RESCORE_DELAY)
    except (redis.RedisError, OSError) as e:  # kombu raises OSError subclasses when the broker is down
        log.warning("rescore request not sent (%s); the sweeper will catch up", e)


def mark_stale(*, contact_ids: list[int], nudge: bool = True) -> None:
    """Mark contacts stale (in the caller's transaction) and nudge the worker once it commits; ``nudge=False``
    for a caller that rescores them itself right after (the mark stays for the sweeper if that fails).

    Locks the contacts' activity rows in id order, the order ingest takes them. Safe to run twice.
    """
    ids = sorted(set(contact_ids))
    if not ids:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO crm_contactactivity (contact_id, stale_since)
            SELECT id, %s FROM unnest(%s::bigint[]) AS id ORDER BY id
            ON CONFLICT (contact_id) DO UPDATE
                SET stale_since = coalesce(crm_contactactivity.stale_since, EXCLUDED.stale_since)
            """,
            [timezone.now(), ids],
        )
    if nudge:
        transaction.on_commit(partial(request_rescore, ids))
