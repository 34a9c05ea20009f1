"""Many reps claiming at once, against the real database: exactly one owner per entry, limits held."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from crm.accounts import create_user
from handoff import services
from handoff.models import QueueEntry
from tests.handoff.conftest import sql_entry

pytestmark = pytest.mark.django_db(transaction=True)


def race(claimers: list[tuple], limit: int, threads: int = 32) -> list[tuple]:
    """Run every (rep, entry id) claim from ``threads`` threads (connections) released at once; returns outcomes."""
    start, outcomes = threading.Event(), []

    def attempt(rep, entry_id):
        start.wait()
        try:
            services.claim(entry_id=entry_id, rep=rep, limit=limit)
            outcomes.append((rep.pk, entry_id, "won"))
        except services.HandoffRefused as e:
            outcomes.append((rep.pk, entry_id, str(e)))
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=min(threads, len(claimers))) as pool:
        futures = [pool.submit(attempt, *c) for c in claimers]
        start.set()
        for future in futures:
            future.result()
    return outcomes


def reps(n):
    return [
        create_user(email=f"rep{i}@example.com", password="x", role="sales", name=f"Rep {i}", validate=False)
        for i in range(n)
    ]


def test_twenty_reps_claim_one_entry_and_exactly_one_wins():
    entry = sql_entry()

    outcomes = race([(rep, entry.pk) for rep in reps(20)], limit=25)

    winners = [o for o in outcomes if o[2] == "won"]
    assert len(winners) == 1
    owner = QueueEntry.objects.get(pk=entry.pk).owner
    assert owner.pk == winners[0][0]
    assert all(o[2] == f"Already claimed by {owner.get_full_name()}." for o in outcomes if o[2] != "won")


def test_two_hundred_claims_over_fifty_entries_never_double_claim_or_pass_the_limit():
    entries = [sql_entry() for _ in range(50)]
    team = reps(5)  # 5 reps × 8 claims = 40 < 50 entries: the limit binds
    # Each entry is wanted by four different reps (entry i % 50, rep (i // 50 + i) % 5).
    claimers = [(team[(i // 50 + i) % 5], entries[i % 50].pk) for i in range(200)]

    outcomes = race(claimers, limit=8)

    won = [o for o in outcomes if o[2] == "won"]
    assert len({entry_id for _, entry_id, _ in won}) == len(won)  # no entry won twice
    held = Counter(QueueEntry.objects.exclude(owner=None).values_list("owner_id", flat=True))
    assert max(held.values()) <= 8
    assert sum(held.values()) == len(won)
    assert QueueEntry.objects.filter(status="claimed").count() == len(won)
