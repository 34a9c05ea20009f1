"""The nudge after ingest: one Redis call decides, per contact, nothing (a rescore waits already), at once (quiet)
or after the coalescing delay (busy)."""

from __future__ import annotations

from crm.freshness import coalescing_key, wanted
from crm.redis_client import get_redis


def test_a_quiet_contact_is_rescored_at_once_a_busy_one_after_the_delay_and_a_waiting_one_not_again():
    assert wanted([1, 2]) == ([1, 2], [])  # quiet: at once
    assert wanted([1]) == ([], [])  # its rescore waits already (the coalescing key stands)

    get_redis().delete(coalescing_key(1))  # the task ran (it deletes the key first); then more activity
    assert wanted([1, 3]) == ([3], [1])  # 1 was asked for a moment ago: it waits to coalesce; 3 is quiet

    get_redis().delete(coalescing_key(1), "rescore:asked:1")  # quiet again after RESCORE_BUSY_MS
    assert wanted([1]) == ([1], [])
