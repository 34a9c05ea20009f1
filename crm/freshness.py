"""Asking the scoring worker to rescore contacts, coalesced: one Redis call that also takes the rate limit's
tokens and enqueues the tasks.

PostgreSQL is the source of truth: ingest marks contacts stale in its own statement, every other change
to what a score reads (a profile edit, a company's size) through ``mark_stale``. Then the nudge: one task per
contact at a time (its coalescing key), a quiet contact's at once and a busy one's after a short delay, so that
a burst of events becomes one rescore. Ingest nudges from inside its transaction (so that a request refused by
its rate limit stores nothing) and writes its transaction's id into each contact's coalescing key: the task
that takes the key waits for those transactions to end before it reads. A nudge lost with Redis costs only
until the sweeper's next pass.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta
from functools import cache, partial

import redis
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from crm.celery import app
from crm.redis_client import get_redis, script

log = logging.getLogger(__name__)
RESCORE_TASK = "scoring.tasks.rescore_contacts"  # by name, so that crm and leads need not import scoring
TASK_CHUNK = 500


def coalescing_key(contact_id: int) -> str:
    return f"rescore:{contact_id}"


def asked_key(contact_id: int) -> str:
    return f"rescore:asked:{contact_id}"


@dataclass(frozen=True)
class Bucket:
    """A token bucket to take ``cost`` tokens from first: ``rate`` tokens/s, at most ``burst``."""

    key: str
    rate: int
    burst: int
    cost: int


# KEYS: the bucket ('' for none), the task queue, per contact its coalescing key, then its "asked" key.
# ARGV: rate, burst, cost (0: no bucket); the coalescing key's TTL (s); how long a contact counts as busy (ms);
# the asking transaction's id ('' when it has committed); the task message for at once and the one for after the
# delay (each with @IDS@ for a chunk's ids and @N@ for its number); the chunk size; then the contacts' ids.
# Returns the seconds to wait (0: the tokens were taken, or there is no bucket) and the ids asked for at once and
# after the delay; a contact whose rescore waits already is in neither, and a refused call changes nothing.
NUDGE = """
local rate, burst, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if cost > 0 then
    local t = redis.call('TIME')
    local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
    local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
    local tokens, at = tonumber(state[1]) or burst, tonumber(state[2]) or now
    tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
    if tokens < cost then
        return {tostring((cost - tokens) / rate), {}, {}}
    end
    redis.call('HSET', KEYS[1], 'tokens', tokens - cost, 'at', now)
    redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 1)
end
local n, xid, asked = #ARGV - 9, ARGV[6], {{}, {}}
for i = 1, n do
    local key = KEYS[2 + i]
    local waiting = redis.call('EXISTS', key) == 1
    redis.call('APPEND', key, xid == '' and '' or xid .. ',')
    if not waiting then
        redis.call('EXPIRE', key, ARGV[4])
        local quiet = redis.call('SET', KEYS[2 + n + i], 1, 'NX', 'PX', ARGV[5])
        table.insert(asked[quiet and 1 or 2], ARGV[9 + i])
    end
end
local size = tonumber(ARGV[9])
for kind = 1, 2 do
    local ids, number = asked[kind], 0
    for start = 1, #ids, size do
        number = number + 1
        local chunk = '[' .. table.concat(ids, ',', start, math.min(start + size - 1, #ids)) .. ']'
        local message = string.gsub(ARGV[6 + kind], '@N@', number)
        redis.call('LPUSH', KEYS[2], (string.gsub(message, '@IDS@', chunk)))
    end
end
return {'0', asked[1], asked[2]}
"""


@cache
def _message_template(delayed: bool) -> str:
    """Celery's own message (protocol 2, JSON body, as kombu's Redis transport stores it) for a rescore of
    @IDS@, with @ID@ (and @ETA@ when ``delayed``) to fill in per call."""
    headers, properties, body, _ = app.amqp.as_task_v2(
        "@ID@-@N@", RESCORE_TASK, args=["@IDS@"], argsrepr="[…]", ignore_result=True
    )
    headers["eta"] = "@ETA@" if delayed else None
    queue = app.conf.task_default_queue
    envelope = {
        "body": json.dumps(body),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": headers,
        "properties": {
            **properties,
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "utf-8",  # the body as it is, not base64
            "delivery_tag": "@ID@-@N@",
        },
    }
    return json.dumps(envelope).replace('\\"@IDS@\\"', "@IDS@")  # the ids go into the body's JSON as they are


def nudge(contact_ids: list[int], *, xid: int | None = None, bucket: Bucket | None = None) -> tuple[float, list, list]:
    """Take ``bucket``'s tokens, then ask for a rescore of the contacts not already waiting for one: a quiet
    contact's at once, a busy one's (asked for again within RESCORE_BUSY_MS) after RESCORE_DELAY. One Redis call.

    ``xid``: the caller's transaction, not yet committed (the task waits for it); None once committed. Returns the
    seconds to wait when the bucket is short (then nothing is asked for), and the ids asked for at once and after
    the delay. Never raises for a Redis outage: it fails open (the sweeper stands in for the lost nudge).
    """
    if not contact_ids and bucket is None:
        return 0.0, [], []
    eta = (timezone.now() + timedelta(seconds=settings.RESCORE_DELAY)).isoformat()
    keys = [
        bucket.key if bucket else "",
        app.conf.task_default_queue,
        *(coalescing_key(pk) for pk in contact_ids),
        *(asked_key(pk) for pk in contact_ids),
    ]
    args = [
        *((bucket.rate, bucket.burst, bucket.cost) if bucket else (0, 0, 0)),
        settings.RESCORE_KEY_TTL,
        settings.RESCORE_BUSY_MS,
        "" if xid is None else xid,
        _message_template(False).replace("@ID@", str(uuid.uuid4())),
        _message_template(True).replace("@ID@", str(uuid.uuid4())).replace("@ETA@", eta),
        TASK_CHUNK,
        *contact_ids,
    ]
    try:
        wait, now, later = script(NUDGE)(keys=keys, args=args)
    except (redis.RedisError, OSError) as e:
        log.warning("rate limit and rescore request skipped (%s); the sweeper will catch up", e)
        return 0.0, [], []
    return float(wait), [int(pk) for pk in now], [int(pk) for pk in later]


def request_rescore(contact_ids: list[int]) -> None:
    """Ask for a rescore of contacts whose stale marks have committed (see ``nudge``)."""
    nudge(contact_ids)


def taken(contact_ids: list[int], *, counter: str) -> list[int]:
    """For a task about to rescore the contacts: delete their coalescing keys (activity from now on asks for
    another run), count the run in ``counter``, and return the ids of the transactions that asked while the keys
    stood, to wait for. One Redis round trip."""
    pipe = get_redis().pipeline(transaction=False)
    for pk in contact_ids:
        pipe.getdel(coalescing_key(pk))
    pipe.incr(counter)
    values = pipe.execute()[:-1]
    return sorted({int(xid) for value in values if value for xid in value.split(b",") if xid})


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
