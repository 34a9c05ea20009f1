"""A score's breakdown is read from its facts (crm.models.Breakdown), no longer stored as JSON: each behaviour rule's
share in cents, how many manual adjustments count, which fit rules matched, named by the version's legend. Every
published version's legend comes from its rules; every stored breakdown moves into those facts (its behaviour
entries are the rules with events, in rule order; a score stored before the counts were, by the rules' names: one
moved off the contact row from a version other than the live one keeps the entries its names match, and is scored
from its events by the next refresh, as it would have been)."""

import django.contrib.postgres.fields
from django.db import migrations, models

FACTS = """
UPDATE crm_score s SET shares = m.shares, counts = m.counts, manual_n = m.manual_n, manual = m.manual, fits = m.fits
FROM (
    SELECT s.version, s.contact_id,
        ARRAY(
            SELECT coalesce(CASE WHEN o.positional THEN
                    CASE WHEN s.counts[i] > 0 THEN (o.behaviour -> ((
                        SELECT count(*) FROM generate_subscripts(s.counts, 1) k WHERE k <= i AND s.counts[k] > 0
                    )::int - 1) ->> 'points')::float8 END
                ELSE (named.entry ->> 'points')::float8
            END, 0)
            FROM generate_subscripts(l.behaviour, 1) i LEFT JOIN LATERAL ({NAMED}) named ON true
            ORDER BY i)::float8[] AS shares,
        CASE WHEN o.positional THEN s.counts ELSE ARRAY(
            SELECT coalesce((named.entry ->> 'events')::int, 0)
            FROM generate_subscripts(l.behaviour, 1) i LEFT JOIN LATERAL ({NAMED}) named ON true
            ORDER BY i)::int[] END AS counts,
        coalesce(o.manual_n, 0) AS manual_n,
        CASE WHEN s.facts_at IS NULL THEN coalesce(o.manual, 0) ELSE s.manual END AS manual,
        ARRAY(  -- the k-th fit rule of a name and points matched if the breakdown has k entries of them
            SELECT (SELECT count(*) FROM generate_subscripts(l.fit, 1) k
                    WHERE k <= j AND l.fit[k] = l.fit[j] AND l.fit_points[k] = l.fit_points[j])
                <= (SELECT count(*) FROM jsonb_array_elements(s.breakdown) e WHERE e ->> 'kind' = 'fit'
                    AND e ->> 'rule' = l.fit[j] AND (e ->> 'points')::float8 = l.fit_points[j])
            FROM generate_subscripts(l.fit, 1) j ORDER BY j)::bool[] AS fits
    FROM crm_score s
    JOIN crm_scorelegend l ON l.version = s.version
    CROSS JOIN LATERAL (
        SELECT cardinality(s.counts) = cardinality(l.behaviour) AS positional,
            jsonb_path_query_array(s.breakdown, '$[*] ? (@.kind == "behaviour")') AS behaviour,
            (SELECT sum((e ->> 'events')::int) FROM jsonb_array_elements(s.breakdown) e WHERE e ->> 'kind' = 'manual')
                AS manual_n,
            (SELECT sum((e ->> 'points')::float8) FROM jsonb_array_elements(s.breakdown) e
             WHERE e ->> 'kind' = 'manual') AS manual
    ) o
    WHERE s.breakdown <> '[]'
) m
WHERE s.version = m.version AND s.contact_id = m.contact_id
""".replace(
    # Rule i's entry by name: the k-th entry of its name for the k-th rule of that name.
    "{NAMED}",
    """SELECT x.entry FROM jsonb_array_elements(o.behaviour) WITH ORDINALITY x(entry, n)
        WHERE x.entry ->> 'rule' = l.behaviour[i] ORDER BY x.n
        OFFSET (SELECT count(*) FROM generate_subscripts(l.behaviour, 1) k WHERE k < i AND l.behaviour[k] = l.behaviour[i])
        LIMIT 1""",
)
# Back: each breakdown as crm.models.Breakdown reads it (the legends and facts are still there then); a copy of its SQL
# as of this migration, which must not change with the model's code.
UNFACTS = """
UPDATE crm_score s SET breakdown = (SELECT coalesce(jsonb_agg(x.entry ORDER BY x.n), '[]'::jsonb)
    FROM crm_scorelegend l CROSS JOIN LATERAL (
        SELECT i AS n, jsonb_build_object('rule', l.behaviour[i], 'kind', 'behaviour', 'events', s.counts[i],
            'points', s.shares[i]) AS entry
        FROM generate_subscripts(s.counts, 1) i WHERE s.counts[i] > 0
        UNION ALL
        SELECT 100000, jsonb_build_object('rule', l.manual, 'kind', 'manual', 'events', s.manual_n,
            'points', floor(s.manual * 100 + 0.5) / 100)
        WHERE s.manual_n > 0
        UNION ALL
        SELECT 200000 + j, jsonb_build_object('rule', l.fit[j], 'kind', 'fit', 'events', NULL, 'points', l.fit_points[j])
        FROM generate_subscripts(l.fit, 1) j WHERE s.fits[j]
    ) x
    WHERE l.version = s.version)
"""


def write_legends(apps, schema_editor):
    """Every published version's legend, from its rules (in their order)."""
    Version, Legend = apps.get_model("scoring", "CriteriaVersion"), apps.get_model("crm", "ScoreLegend")
    for version in Version.objects.exclude(status="draft").prefetch_related("behaviour_rules", "fit_rules"):
        fits = sorted(version.fit_rules.all(), key=lambda r: (r.position, r.id))
        Legend.objects.get_or_create(
            version=version.number,
            defaults={
                "behaviour": [r.name for r in sorted(version.behaviour_rules.all(), key=lambda r: (r.position, r.id))],
                "fit": [r.name for r in fits],
                "fit_points": [r.points for r in fits],
                "manual": "Manual adjustment",
            },
        )


PLACEHOLDER = """
CREATE OR REPLACE FUNCTION crm_contact_placeholder_score() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO crm_score (version, contact_id, score, fit_score, engagement_score, promotion_score, grade, trend,
        {breakdown}sums, fresh_sums, counts, manual, manual_fresh, recent_counts, prior_counts{facts})
    SELECT v.live, n.id, 0, 0, 0, 0, 'C', 'steady', {empty}'{{}}', '{{}}', '{{}}', 0, 0, '{{}}', '{{}}'{no_facts}
    FROM inserted n CROSS JOIN crm_scoreversion v
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("crm", "0015_score_trend_counts"),
        ("scoring", "0009_indexes_covered"),  # the rules the legends name
    ]

    operations = [
        migrations.CreateModel(
            name="ScoreLegend",
            fields=[
                ("version", models.PositiveIntegerField(primary_key=True, serialize=False)),
                ("behaviour", django.contrib.postgres.fields.ArrayField(base_field=models.TextField(), size=None)),
                ("fit", django.contrib.postgres.fields.ArrayField(base_field=models.TextField(), size=None)),
                ("fit_points", django.contrib.postgres.fields.ArrayField(base_field=models.FloatField(), size=None)),
                ("manual", models.TextField()),
            ],
        ),
        migrations.AddField(
            model_name="score",
            name="shares",
            field=django.contrib.postgres.fields.ArrayField(base_field=models.FloatField(), default=list, size=None),
        ),
        migrations.AddField(model_name="score", name="manual_n", field=models.IntegerField(default=0)),
        migrations.AddField(
            model_name="score",
            name="fits",
            field=django.contrib.postgres.fields.ArrayField(base_field=models.BooleanField(), default=list, size=None),
        ),
        migrations.RunPython(write_legends, migrations.RunPython.noop),
        migrations.RunSQL(FACTS, UNFACTS),
        migrations.RunSQL(
            PLACEHOLDER.format(breakdown="", empty="", facts=", shares, manual_n, fits", no_facts=", '{}', 0, '{}'"),
            PLACEHOLDER.format(breakdown="breakdown, ", empty="'[]', ", facts="", no_facts=""),
        ),
        migrations.RemoveField(model_name="score", name="breakdown"),
    ]
