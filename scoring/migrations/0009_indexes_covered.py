"""One-column indexes that another index already leads with are dropped: every write paid for each twice."""

import django.db.models.deletion
from django.db import migrations, models

from crm.migration_helpers import drop_index


class Migration(migrations.Migration):

    dependencies = [
        ('crm', '0014_indexes_covered'),
        ('scoring', '0008_preview_runs'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                drop_index("scoring_scorehistory", "contact_id", "scoring_scorehistory_contact_id_21494867"),
            ],
            state_operations=[
                migrations.AlterField(
                    model_name='scorehistory',
                    name='contact',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='score_history', to='crm.contact'),
                ),
            ],
        )
    ]
