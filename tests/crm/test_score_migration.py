"""The migration that moved scores off the contact row moves every contact's score, breakdown and activity, and
leaves the new facts for the decay refresh to fill in (it scores those contacts from their events)."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from crm.models import Contact, Score, ScoreVersion

BEFORE = [("crm", "0012_stage_held"), ("scoring", "0005_backtest")]


@pytest.mark.django_db(transaction=True)
def test_every_score_moves_to_the_score_table_under_the_active_version():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    breakdown = [  # two rules of one name (v1's second and third): each its own entry, in rule order
        {"rule": "Pricing or product page", "kind": "behaviour", "events": 3, "points": 12.5},
        {"rule": "Pricing or product page", "kind": "behaviour", "events": 2, "points": 1.5},
    ]
    with connection.cursor() as cursor:
        cursor.execute("UPDATE scoring_behaviourrule SET name = 'Pricing or product page' WHERE name = 'Email open'")
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
    read = {c.email: c for c in Contact.objects.scored()}
    assert len(scores) == 301
    for i in range(1, 301):
        moved = scores[f"m{i}@example.com"]
        assert (moved.version, moved.score, moved.fit_score, moved.engagement_score) == (1, i, 10, i - 10)
        assert (moved.grade, moved.trend, read[f"m{i}@example.com"].breakdown) == ("B", "rising", breakdown)
        assert moved.facts_at is None  # the next refresh scores it from its events
    assert scores["never@example.com"].score == 0


@pytest.mark.django_db(transaction=True)
def test_every_stored_breakdown_reads_the_same_once_it_is_read_from_the_facts():
    """Scores stored with a JSON breakdown (crm 0015) read the same breakdown from their facts after crm 0016: a
    score whose counts are stored, by rule order (two rules may share a name), and fit rules and manual points."""
    executor = MigrationExecutor(connection)
    executor.migrate([("crm", "0015_score_trend_counts"), ("scoring", "0009_indexes_covered")])
    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM scoring_criteriaversion WHERE number = 1")
        v1 = cursor.fetchone()[0]
        cursor.execute("SELECT name FROM scoring_behaviourrule WHERE version_id = %s ORDER BY position, id", [v1])
        names = [row[0] for row in cursor.fetchall()]
        cursor.execute(
            "UPDATE scoring_behaviourrule SET name = %s WHERE version_id = %s AND name = %s", [names[0], v1, names[2]]
        )  # the first and the third now share a name
        cursor.execute("SELECT id, name, points FROM scoring_fitrule WHERE version_id = %s ORDER BY position, id", [v1])
        ids, *fits = zip(*cursor.fetchall(), strict=True)
        fits = list(zip(*fits, strict=True))
        cursor.execute(  # the second and the fourth fit rule now share a name and points; one of them matched
            "UPDATE scoring_fitrule SET name = %s, points = %s WHERE id = %s", [*fits[1], ids[3]]
        )
        counts = [0] * len(names)
        counts[0], counts[2] = 2, 5
        breakdown = [
            {"rule": names[0], "kind": "behaviour", "events": 2, "points": 1.25},
            {"rule": names[0], "kind": "behaviour", "events": 5, "points": 7.5},
            {"rule": "Manual adjustment", "kind": "manual", "events": 1, "points": -4.5},
            {"rule": fits[1][0], "kind": "fit", "events": None, "points": fits[1][1]},
        ]
        cursor.execute("INSERT INTO crm_contact (email) VALUES ('m@example.com'), ('z@example.com') RETURNING id")
        cursor.execute(
            "UPDATE crm_score SET breakdown = %s, counts = %s, facts_at = now(), manual = -4.5"
            " WHERE contact_id = (SELECT id FROM crm_contact WHERE email = 'm@example.com')",
            [json.dumps(breakdown), counts],
        )
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    read = {c.email: c.breakdown for c in Contact.objects.scored()}
    assert read == {"m@example.com": breakdown, "z@example.com": []}
    moved = Score.objects.get(contact__email="m@example.com")
    assert (moved.counts, moved.manual_n) == (counts, 1)
    assert moved.fits == [j == 1 for j in range(len(fits))]

    executor = MigrationExecutor(connection)  # and back: the same breakdown stored again
    executor.migrate([("crm", "0015_score_trend_counts")])
    with connection.cursor() as cursor:
        cursor.execute("SELECT c.email, s.breakdown FROM crm_score s JOIN crm_contact c ON c.id = s.contact_id")
        assert {email: json.loads(stored) for email, stored in cursor.fetchall()} == {
            "m@example.com": breakdown,
            "z@example.com": [],
        }
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
def test_every_score_takes_its_contacts_stage_and_new_contacts_theirs():
    """crm 0017 copies each contact's stage onto its scores (the leads list's "MQLs first" and stage filter read
    it there); a contact created after it has its stage on its placeholder score."""
    executor = MigrationExecutor(connection)
    executor.migrate([("crm", "0016_breakdown_read_from_facts"), ("scoring", "0009_indexes_covered")])
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO crm_contact (email, stage) SELECT 'm' || i || '@example.com',"
            " (ARRAY['lead', 'mql', 'sql', 'customer'])[1 + i % 4] FROM generate_series(1, 40) i"
        )
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    Contact.objects.create(email="new@example.com", stage="opportunity")

    scores = list(Score.objects.values_list("contact__stage", "stage"))
    assert len(scores) == 41
    assert all(stage == copied for stage, copied in scores), scores
    assert {stage for stage, _ in scores} == {"lead", "mql", "sql", "customer", "opportunity"}
