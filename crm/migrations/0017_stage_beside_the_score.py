"""The contact's stage beside its score (crm.models.Score.stage), under an index of the leads list's "MQLs first"
and stage filter: copied onto every score there is, written with each new contact's placeholder score, and kept by
a trigger on the contact's stage. The trigger holds advisory lock STAGE_COPY (7340004) shared while it copies."""

from django.db import migrations, models
from django.db.models import F

COPY = "UPDATE crm_score s SET stage = c.stage FROM crm_contact c WHERE c.id = s.contact_id AND c.stage <> 'lead'"

PLACEHOLDER = """
CREATE OR REPLACE FUNCTION crm_contact_placeholder_score() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO crm_score (version, contact_id, score, fit_score, engagement_score, promotion_score, grade, trend,
        sums, fresh_sums, counts, manual, manual_fresh, recent_counts, prior_counts, shares, manual_n, fits{stage})
    SELECT v.live, n.id, 0, 0, 0, 0, 'C', 'steady', '{{}}', '{{}}', '{{}}', 0, 0, '{{}}', '{{}}', '{{}}', 0, '{{}}'{new}
    FROM inserted n CROSS JOIN crm_scoreversion v
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
"""

# The scores readers see and will see: the live version's and those of versions being computed (their legends are
# written first). Older ones are only waiting to be deleted.
MOVED = """
CREATE FUNCTION crm_contact_stage_to_scores() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(7340004);
    UPDATE crm_score SET stage = NEW.stage
    WHERE contact_id = NEW.id AND version = ANY(ARRAY(
        SELECT live FROM crm_scoreversion
        UNION SELECT l.version FROM crm_scorelegend l, crm_scoreversion v WHERE l.version > v.live));
    RETURN NULL;
END $$;
CREATE TRIGGER contact_stage_to_scores AFTER UPDATE OF stage ON crm_contact
    FOR EACH ROW WHEN (OLD.stage IS DISTINCT FROM NEW.stage) EXECUTE FUNCTION crm_contact_stage_to_scores();
"""
UNMOVED = """
DROP TRIGGER contact_stage_to_scores ON crm_contact;
DROP FUNCTION crm_contact_stage_to_scores();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("crm", "0016_breakdown_read_from_facts"),
    ]

    operations = [
        migrations.AddField(
            model_name="score",
            name="stage",
            field=models.CharField(
                choices=[
                    ("lead", "Lead"),
                    ("mql", "MQL"),
                    ("sql", "SQL"),
                    ("opportunity", "Opportunity"),
                    ("customer", "Customer"),
                    ("disqualified", "Disqualified"),
                ],
                db_default="lead",
                default="lead",
                max_length=20,
            ),
        ),
        migrations.RunSQL(COPY, migrations.RunSQL.noop),
        migrations.RunSQL(PLACEHOLDER.format(stage=", stage", new=", n.stage"), PLACEHOLDER.format(stage="", new="")),
        migrations.RunSQL(MOVED, UNMOVED),
        migrations.AddIndex(
            model_name="score",
            index=models.Index(
                F("version"), F("stage"), F("score").desc(), F("contact_id").desc(), name="score_stage_rank_idx"
            ),
        ),
    ]
