"""The trend's per-rule counts on every score (empty on the rows already there: a version cannot take their facts
as they are, and computes those contacts from their events), and the new contact's placeholder score with them."""

import django.contrib.postgres.fields
from django.db import migrations, models

PLACEHOLDER = """
CREATE OR REPLACE FUNCTION crm_contact_placeholder_score() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO crm_score (version, contact_id, score, fit_score, engagement_score, promotion_score, grade, trend,
        breakdown, sums, fresh_sums, counts, manual, manual_fresh{counts})
    SELECT v.live, n.id, 0, 0, 0, 0, 'C', 'steady', '[]', '{{}}', '{{}}', '{{}}', 0, 0{empty}
    FROM inserted n CROSS JOIN crm_scoreversion v
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
"""


def counts_array() -> models.Field:
    return django.contrib.postgres.fields.ArrayField(base_field=models.IntegerField(), default=list)


class Migration(migrations.Migration):
    dependencies = [
        ("crm", "0014_indexes_covered"),
    ]

    operations = [
        migrations.AddField(model_name="score", name="prior_counts", field=counts_array()),
        migrations.AddField(model_name="score", name="recent_counts", field=counts_array()),
        migrations.RunSQL(
            PLACEHOLDER.format(counts=", recent_counts, prior_counts", empty=", '{}', '{}'"),
            PLACEHOLDER.format(counts="", empty=""),
        ),
    ]
