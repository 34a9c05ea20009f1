"""A publish's score-chart points are written by its stage rules' chunks, which compare the new scores with those
of the version it replaced (recorded at the switch); the points drop their database constraint on the contact."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('crm', '0017_stage_beside_the_score'),
        ('scoring', '0009_indexes_covered'),
    ]

    operations = [
        migrations.AddField(
            model_name='rescorerun',
            name='replaced',
            field=models.PositiveIntegerField(blank=True, help_text='The version its switch replaced: whose scores its stage rules compare', null=True),
        ),
        migrations.AlterField(
            model_name='scorehistory',
            name='contact',
            field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='score_history', to='crm.contact'),
        ),
    ]
