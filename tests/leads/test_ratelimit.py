"""The rate limit's tokens are taken from Redis in leases: a busy source costs one Redis call per lease, not per
request, and never more tokens than its bucket had."""

from __future__ import annotations

import time

import pytest

from crm.redis_client import get_redis
from leads import ratelimit
from leads.models import Event


def page_view(i):
    return {"id": f"pv-{i}", "type": "page_view", "email": "ada@example.com", "properties": {"path": "/"}}


def bucket(source) -> tuple[float, float]:
    """(tokens, at): what the bucket held when a call last took from it, and when."""
    tokens, at = get_redis().hmget(f"rate:{source.pk}", "tokens", "at")
    return float(tokens), float(at)


@pytest.fixture
def busy(website):
    website.rate_limit = 500  # a lease: 10 tokens; the burst: 1,000
    website.save()
    return website


def test_a_busy_source_takes_its_tokens_a_lease_at_a_time(send, busy):
    assert send(page_view(0)).status_code == 202
    first = bucket(busy)
    assert first[0] == 990  # one lease: a fiftieth of a second's rate

    for i in range(1, 10):
        assert send(page_view(i)).status_code == 202
    assert bucket(busy) == first  # spent from the lease: no Redis call

    assert send(page_view(10)).status_code == 202
    assert bucket(busy)[1] > first[1]  # the lease ran out: another one


def test_a_request_costing_more_than_the_lease_has_left_takes_from_the_bucket(send, busy):
    assert send(page_view(0)).status_code == 202  # 9 left in the lease

    assert send({"events": [page_view(i) for i in range(1, 151)]}).status_code == 202

    assert bucket(busy)[0] <= 990 - 150 + 50  # (refilled by half a token a millisecond meanwhile)
    assert Event.objects.count() == 151


def test_a_lease_lapses(send, busy, monkeypatch):
    monkeypatch.setattr(ratelimit, "LEASE_SECONDS", 0.05)
    assert send(page_view(0)).status_code == 202
    first = bucket(busy)
    time.sleep(0.1)

    assert send(page_view(1)).status_code == 202

    assert bucket(busy)[1] > first[1]  # 9 tokens left in the lease, but it lapsed: taken from the bucket


def test_a_slow_source_takes_what_each_request_costs(send, website):
    website.rate_limit = 10
    website.save()

    assert send({"events": [page_view(i) for i in range(3)]}).status_code == 202

    assert bucket(website)[0] == 997  # the burst (1,000) less three


def test_what_a_lease_holds_is_spent_before_the_bucket(send, busy):
    assert send(page_view(0)).status_code == 202  # a lease of 10: 9 left
    assert send({"events": [page_view(i) for i in range(1, 16)]}).status_code == 202  # 15: the 9, and 6 more
    taken_for_the_batch = bucket(busy)

    for i in range(16, 20):
        assert send(page_view(i)).status_code == 202

    assert bucket(busy) == taken_for_the_batch  # the batch took a lease of 10: 4 were left for these
