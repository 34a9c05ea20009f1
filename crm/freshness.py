"""Asking the scoring worker to rescore contacts, coalesced: one Redis call that also enqueues the tasks.

PostgreSQL is the source of truth: ingest marks contacts stale in its own statement, every other change
to what a score reads (a profile edit, a company's size) through ``mark_stale``. Then, once the mark has
committed, the nudge: one task per contact at a time (its coalescing key), a quiet contact's at once and a busy
one's after a short delay, so that a burst of events becomes one rescore. A nudge lost (Redis down, a process
killed between the commit and the nudge) costs only until the sweeper's next pass.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
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
NUDGE_EVERY = 0.02  # seconds: ingest's nudges wait this long in their process, to go to Redis together


def coalescing_key(contact_id: int) -> str:
    return f"rescore:{contact_id}"


def asked_key(contact_id: int) -> str:
    return f"rescore:asked:{contact_id}"


# KEYS: per contact its coalescing key, then its "asked" key; the task queue last.
# ARGV: the coalescing key's TTL (s); how long a contact counts as busy (ms); the task message for at once and the
# one for after the delay (each with @IDS@ for a chunk's ids and @N@ for its number); the chunk size; then the
# contacts' ids. Returns the ids asked for at once and those after the delay; a contact whose rescore waits
# already is in neither.
NUDGE = """
local n, asked = #ARGV - 5, {{}, {}}
for i = 1, n do
    if redis.call('SET', KEYS[i], '', 'NX', 'EX', ARGV[1]) then
        local quiet = redis.call('SET', KEYS[n + i], 1, 'NX', 'PX', ARGV[2])
        table.insert(asked[quiet and 1 or 2], ARGV[5 + i])
    end
end
local size = tonumber(ARGV[5])
for kind = 1, 2 do
    local ids, number = asked[kind], 0
    for start = 1, #ids, size do
        number = number + 1
        local chunk = '[' .. table.concat(ids, ',', start, math.min(start + size - 1, #ids)) .. ']'
        local message = string.gsub(ARGV[2 + kind], '@N@', number)
        redis.call('LPUSH', KEYS[2 * n + 1], (string.gsub(message, '@IDS@', chunk)))
    end
end
return asked
"""


@cache
def _messages() -> tuple[str, str, str]:
    """The task queue, and Celery's own message (protocol 2, JSON body, as kombu's Redis transport stores it) for a
    rescore of @IDS@ at once and after the delay, with @ID@ (and @ETA@) to fill in per call."""
    queue = app.conf.task_default_queue

    def message(delayed: bool) -> str:
        headers, properties, body, _ = app.amqp.as_task_v2(
            "@ID@-@N@", RESCORE_TASK, args=["@IDS@"], argsrepr="[…]", ignore_result=True
        )
        headers["eta"] = "@ETA@" if delayed else None
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

    return queue, message(False), message(True)


def nudge(contact_ids: list[int]) -> tuple[list[int], list[int]]:
    """Ask for a rescore of contacts whose stale marks have committed, but not of those already waiting for one:
    a quiet contact's at once, a busy one's (asked for again within RESCORE_BUSY_MS) after RESCORE_DELAY.

    One Redis call. Returns the ids asked for at once and after the delay. Never raises for a Redis outage: it
    fails open (the sweeper stands in for the lost nudge).
    """
    if not contact_ids:
        return [], []
    queue, at_once, later = _messages()
    call = uuid.uuid4()
    eta = (timezone.now() + timedelta(seconds=settings.RESCORE_DELAY)).isoformat()
    keys = [*(coalescing_key(pk) for pk in contact_ids), *(asked_key(pk) for pk in contact_ids), queue]
    args = [
        settings.RESCORE_KEY_TTL,
        settings.RESCORE_BUSY_MS,
        at_once.replace("@ID@", f"{call}-now"),
        later.replace("@ID@", f"{call}-later").replace("@ETA@", eta),
        TASK_CHUNK,
        *contact_ids,
    ]
    try:
        now, later_ids = script(NUDGE)(keys=keys, args=args)
    except (redis.RedisError, OSError) as e:
        log.warning("rescore request skipped (%s); the sweeper will catch up", e)
        return [], []
    return [int(pk) for pk in now], [int(pk) for pk in later_ids]


def request_rescore(contact_ids: list[int]) -> None:
    """Ask for a rescore of contacts whose stale marks have committed (see ``nudge``)."""
    nudge(contact_ids)


class _Soon:
    """The contacts a process's requests asked to rescore in the last NUDGE_EVERY seconds, nudged for together by
    a thread of the process's own: a busy web process calls Redis once per interval, not once per request."""

    def __init__(self) -> None:  # again in a forked child: the parent's thread and what it held stay behind
        self._ids: set[int] = set()
        self._lock = threading.Lock()
        self._waiting = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, contact_ids: list[int]) -> None:
        with self._lock:
            self._ids.update(contact_ids)
            self._waiting.set()
            if self._thread is None:
                self._thread = threading.Thread(target=self._send, name="rescore-nudges", daemon=True)
                self._thread.start()

    def _send(self) -> None:
        while True:
            self._waiting.wait()
            time.sleep(NUDGE_EVERY)
            with self._lock:
                ids, self._ids = sorted(self._ids), set()
                self._waiting.clear()
            try:
                nudge(ids)  # fails open for Redis itself
            except Exception:  # a bug must not stop this process's nudges for good
                log.exception("rescore request failed; the sweeper will catch up")


_soon = _Soon()
os.register_at_fork(after_in_child=_soon.__init__)


def request_rescore_soon(contact_ids: list[int]) -> None:
    """``request_rescore`` within NUDGE_EVERY seconds, together with this process's other requests (ingest's).
    A process killed meanwhile loses the nudge; the sweeper stands in for it."""
    if contact_ids:
        _soon.add(contact_ids)


def taken(contact_ids: list[int], *, counter: str) -> None:
    """For a task about to rescore the contacts: delete their coalescing keys (activity from now on asks for
    another run) and count the run in ``counter``. One Redis round trip."""
    pipe = get_redis().pipeline(transaction=False)
    pipe.delete(*(coalescing_key(pk) for pk in contact_ids))
    pipe.incr(counter)
    pipe.execute()


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
