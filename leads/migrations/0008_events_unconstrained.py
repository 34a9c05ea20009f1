"""Events keep their contact and source without database constraints (leads.models.Event): the constraints' checks,
a lookup and a key-share lock per event stored, were a third of PostgreSQL's work on a batch of 500 events."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('crm', '0018_stage_copy_planned_for_batches'),
        ('leads', '0007_indexes_covered'),
    ]

    operations = [
        migrations.AlterField(
            model_name='event',
            name='contact',
            field=models.ForeignKey(blank=True, db_constraint=False, db_index=False, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='events', to='crm.contact'),
        ),
        migrations.AlterField(
            model_name='event',
            name='source',
            field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='leads.source'),
        ),
    ]
