"""One-column indexes that another index already leads with are dropped: every write paid for each twice."""

import django.db.models.deletion
from django.db import migrations, models

from crm.migration_helpers import drop_index


class Migration(migrations.Migration):

    dependencies = [
        ('crm', '0013_scores_off_the_contact'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                drop_index("crm_stagechange", "contact_id", "crm_stagechange_contact_id_6bce3974"),
                drop_index("crm_note", "contact_id", "crm_note_contact_id_8d258ea9"),
                drop_index("crm_webhookdelivery", "endpoint_id", "crm_webhookdelivery_endpoint_id_295fa3c1"),
            ],
            state_operations=[
                migrations.AlterField(
                    model_name='note',
                    name='contact',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='notes', to='crm.contact'),
                ),
                migrations.AlterField(
                    model_name='stagechange',
                    name='contact',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='stage_changes', to='crm.contact'),
                ),
                migrations.AlterField(
                    model_name='webhookdelivery',
                    name='endpoint',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='deliveries', to='crm.webhookendpoint'),
                ),
            ],
        )
    ]
