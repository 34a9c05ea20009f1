"""The nudge after ingest: one Redis call decides, per contact, nothing (a rescore waits already), at once (quiet)
or after the coalescing delay (busy), queueing the tasks itself."""

from __future__ import annotations

import json
import os
import time

import pytest

from crm import freshness
from crm.celery import app
from crm.freshness import asked_key, coalescing_key, nudge, taken
from crm.redis_client import get_redis
from tests.conftest import wait_for

QUEUE = "test-nudges"  # not the queue a running test worker reads


@pytest.fixture(autouse=True)
def own_queue():
    before, app.conf.task_default_queue = app.conf.task_default_queue, QUEUE
    freshness._messages.cache_clear()
    get_redis().delete(QUEUE)
    yield
    app.conf.task_default_queue = before
    freshness._messages.cache_clear()


def queued() -> list[tuple[list[int], str | None]]:
    """The rescore tasks waiting in the queue, oldest first: (ids, eta)."""
    messages = [json.loads(m) for m in reversed(get_redis().lrange(QUEUE, 0, -1))]
    assert {m["headers"]["task"] for m in messages} <= {"scoring.tasks.rescore_contacts"}
    return [(json.loads(m["body"])[0][0], m["headers"]["eta"]) for m in messages]


def test_a_quiet_contact_is_rescored_at_once_a_busy_one_after_the_delay_and_a_waiting_one_not_again():
    assert nudge([1, 2]) == ([1, 2], [])  # quiet: at once
    assert nudge([1]) == ([], [])  # its rescore waits already (the coalescing key stands)

    get_redis().delete(coalescing_key(1))  # the task ran (it takes the key first); then more activity
    assert nudge([1, 3]) == ([3], [1])  # 1 was asked for a moment ago: it waits to coalesce; 3 is quiet

    get_redis().delete(coalescing_key(1), asked_key(1))  # quiet again after RESCORE_BUSY_MS
    assert nudge([1]) == ([1], [])

    (first, no_eta), (three, _), (one_later, eta), (one, _) = queued()
    assert (first, no_eta, three, one_later, one) == ([1, 2], None, [3], [1], [1])
    assert eta is not None


def test_many_contacts_are_asked_for_in_chunks_of_500():
    ids = list(range(10_001, 11_201))
    assert nudge(ids)[0] == ids
    assert [chunk for chunk, _ in queued()] == [ids[:500], ids[500:1000], ids[1000:]]


def test_the_task_takes_the_coalescing_keys_and_counts_its_run():
    nudge([5, 6])
    get_redis().delete("test:runs")

    taken([5, 6], counter="test:runs")

    assert not get_redis().exists(coalescing_key(5), coalescing_key(6))
    assert get_redis().get("test:runs") == b"1"
    assert nudge([5]) == ([], [5])  # asked for again: a new run, after the delay (5 is busy)


def test_ingest_nudges_from_one_process_go_to_redis_together():
    freshness.request_rescore_soon([21])
    time.sleep(freshness.NUDGE_EVERY / 4)  # another request, a moment later
    freshness.request_rescore_soon([22, 23])

    assert wait_for(lambda: queued())
    time.sleep(3 * freshness.NUDGE_EVERY)
    assert queued() == [([21, 22, 23], None)]  # one call, one task


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")  # the child only nudges
def test_a_forked_process_sends_its_own_nudges():
    freshness.request_rescore_soon([31])  # this process's thread runs
    assert wait_for(lambda: queued())

    pid = os.fork()
    if pid == 0:  # the child: the parent's thread did not come along
        try:
            freshness.request_rescore_soon([32])
            time.sleep(0.5)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)

    assert [ids for ids, _ in queued()] == [[31], [32]]


def test_a_failing_nudge_does_not_stop_the_ones_after_it(monkeypatch):
    calls = []

    def failing_once(ids):
        calls.append(ids)
        if len(calls) == 1:
            raise RuntimeError("a bug")
        return nudge(ids)

    monkeypatch.setattr(freshness, "nudge", failing_once)
    freshness.request_rescore_soon([41])
    assert wait_for(lambda: calls)

    freshness.request_rescore_soon([42])

    assert wait_for(lambda: queued()) == [([42], None)]
