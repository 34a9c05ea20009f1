"""One-column indexes that another index already leads with are dropped: every write paid for each twice."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from crm.migration_helpers import drop_index


class Migration(migrations.Migration):

    dependencies = [
        ('handoff', '0003_sales_desk'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                drop_index("handoff_queueentry", "owner_id", "handoff_queueentry_owner_id_af6f7f5b"),
            ],
            state_operations=[
                migrations.AlterField(
                    model_name='queueentry',
                    name='owner',
                    field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='queue_entries', to=settings.AUTH_USER_MODEL),
                ),
            ],
        )
    ]
