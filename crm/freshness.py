"""Asking the scoring worker to rescore contacts, coalesced.

PostgreSQL is the source of truth: ingest marks contacts stale in its own statement, every other change
to what a score reads (a profile edit, a company's size) through ``mark_stale``. Then the nudge after
commit: one task per contact at a time (Redis SET NX), a quiet contact's at once and a busy one's after a
short delay, so that a burst of events becomes one rescore; tasks addressed by name so that ``crm`` and
``leads`` need not import ``scoring``. A nudge lost with the broker costs only until the sweeper's next pass.
"""

from __future__ import annotations

import logging
from functools import partial

import redis
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from crm.celery import app
from crm.redis_client import script

log = logging.getLogger(__name__)
RESCORE_TASK = "scoring.tasks.rescore_contacts"
TASK_CHUNK = 500


def coalescing_key(contact_id: int) -> str:
    return f"rescore:{contact_id}"


# KEYS: per contact its coalescing key, then its "recently asked" key; ARGV: the coalescing key's TTL, how long a
# contact counts as busy (ms). Returns, per contact, 0 (a rescore is waiting already), 1 (busy: wait to coalesce)
# or 2 (quiet: rescore at once).
ASK = """
local n, result = #KEYS / 2, {}
for i = 1, n do
    if redis.call('SET', KEYS[i], 1, 'NX', 'EX', ARGV[1]) then
        result[i] = redis.call('SET', KEYS[n + i], 1, 'NX', 'PX', ARGV[2]) and 2 or 1
    else
        result[i] = 0
    end
end
return result
"""


def wanted(contact_ids: list[int]) -> tuple[list[int], list[int]]:
    """Which of the contacts to rescore at once (quiet) and which after RESCORE_DELAY (asked for again within
    RESCORE_BUSY_MS): one Redis call, which also marks them waiting. Those waiting already are in neither."""
    keys = [coalescing_key(pk) for pk in contact_ids] + [f"rescore:asked:{pk}" for pk in contact_ids]
    answers = script(ASK)(keys=keys, args=[settings.RESCORE_KEY_TTL, settings.RESCORE_BUSY_MS])
    pairs = list(zip(contact_ids, answers, strict=True))
    return [pk for pk, a in pairs if a == 2], [pk for pk, a in pairs if a == 1]


def request_rescore(contact_ids: list[int]) -> None:
    """Enqueue a rescore of the contacts not already waiting for one: a quiet contact's at once, a busy one's
    after RESCORE_DELAY, so that a burst of events becomes one rescore. Never raises for a broker outage."""
    if not contact_ids:
        return
    try:
        for ids, countdown in zip(wanted(contact_ids), (None, settings.RESCORE_DELAY), strict=True):
            for start in range(0, len(ids), TASK_CHUNK):
                app.send_task(RESCORE_TASK, args=[ids[start : start + TASK_CHUNK]], countdown=countdown)
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
