"""One-column indexes that another index already leads with are dropped: every write paid for each twice."""

import django.db.models.deletion
from django.db import migrations, models

from crm.migration_helpers import drop_index


class Migration(migrations.Migration):

    dependencies = [
        ('crm', '0014_indexes_covered'),
        ('leads', '0006_origin_validation'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                drop_index("leads_event", "contact_id", "leads_event_contact_id_65ad91ff"),
                drop_index("leads_event", "source_id", "leads_event_source_id_6e028183"),
                drop_index("leads_importfilechunk", "file_id", "leads_importfilechunk_file_id_61f7b361"),
                drop_index("leads_importproblem", "run_id", "leads_importproblem_run_id_1115dc0b"),
                drop_index("leads_importrow", "run_id", "leads_importrow_run_id_5c0820b9"),
            ],
            state_operations=[
                migrations.AlterField(
                    model_name='event',
                    name='contact',
                    field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='events', to='crm.contact'),
                ),
                migrations.AlterField(
                    model_name='event',
                    name='source',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='leads.source'),
                ),
                migrations.AlterField(
                    model_name='importfilechunk',
                    name='file',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='chunks', to='leads.importfile'),
                ),
                migrations.AlterField(
                    model_name='importproblem',
                    name='run',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='problems', to='leads.import'),
                ),
                migrations.AlterField(
                    model_name='importrow',
                    name='run',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='leads.import'),
                ),
            ],
        )
    ]
