"""The migration that moved scores off the contact row moves every contact's score, breakdown and activity, and
leaves the new facts for the decay refresh to fill in (it scores those contacts from their events)."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from crm.models import Score, ScoreVersion

BEFORE = [("crm", "0012_stage_held"), ("scoring", "0005_backtest")]


@pytest.mark.django_db(transaction=True)
def test_every_score_moves_to_the_score_table_under_the_active_version():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    breakdown = [{"rule": "Pricing page", "kind": "behaviour", "events": 3, "points": 12.5}]
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO crm_contact (email, score, fit_score, engagement_score, grade, trend, breakdown,"
            " last_activity_at, scored_at, criteria_version)"
            " SELECT 'm' || i || '@example.com', i, 10, i - 10, 'B', 'rising', %s, now() - i * interval '1 day',"
            " now(), 1 FROM generate_series(1, 300) i",
            [json.dumps(breakdown)],
        )
        cursor.execute("INSERT INTO crm_contact (email) VALUES ('never@example.com')")  # never scored
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    assert ScoreVersion.objects.get().live == 1
    scores = {s.contact.email: s for s in Score.objects.select_related("contact")}
    assert len(scores) == 301
    for i in range(1, 301):
        moved = scores[f"m{i}@example.com"]
        assert (moved.version, moved.score, moved.fit_score, moved.engagement_score) == (1, i, 10, i - 10)
        assert (moved.grade, moved.trend, moved.breakdown) == ("B", "rising", breakdown)
        assert moved.facts_at is None  # the next refresh scores it from its events
    assert scores["never@example.com"].score == 0
