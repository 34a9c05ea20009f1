"""Readers see the active version's scores: on a new database no contact is scored yet, so it is live at once."""

from django.db import migrations


def live_is_active(apps, schema_editor) -> None:
    active = apps.get_model("scoring", "CriteriaVersion").objects.filter(status="active").first()
    versions = apps.get_model("crm", "ScoreVersion").objects
    if active is not None and not versions.exclude(live=0).exists():
        versions.all().delete()
        versions.create(live=active.number)


class Migration(migrations.Migration):
    dependencies = [("scoring", "0005_backtest"), ("crm", "0013_scores_off_the_contact")]
    operations = [migrations.RunPython(live_is_active, migrations.RunPython.noop)]
