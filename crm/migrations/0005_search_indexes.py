# Trigram indexes for the leads list's text search, where the server has pg_trgm. The embedded PostgreSQL
# of `make run` (pgserver) ships without it: there search still works, by scanning.

import django.contrib.postgres.indexes
import django.db.models.functions.text
from django.conf import settings
from django.db import migrations

INDEXES = [
    ("crm_company", "company_name_trgm", "name"),
    ("crm_contact", "contact_email_trgm", "email"),
    ("crm_contact", "contact_first_name_trgm", "first_name"),
    ("crm_contact", "contact_last_name_trgm", "last_name"),
]


def create_if_available(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")
        if cursor.fetchone() is None:
            return
        cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        for table, name, column in INDEXES:
            cursor.execute(f'CREATE INDEX IF NOT EXISTS "{name}" ON "{table}" USING gin (upper("{column}") gin_trgm_ops)')


def drop(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        for _table, name, _column in INDEXES:
            cursor.execute(f'DROP INDEX IF EXISTS "{name}"')


def gin(column, name):
    return django.contrib.postgres.indexes.GinIndex(
        django.contrib.postgres.indexes.OpClass(django.db.models.functions.text.Upper(column), name="gin_trgm_ops"),
        name=name,
    )


class Migration(migrations.Migration):
    dependencies = [
        ("crm", "0004_contact_breakdown_contact_recycled_at"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddIndex(model_name="company" if table == "crm_company" else "contact", index=gin(column, name))
                for table, name, column in INDEXES
            ],
            database_operations=[migrations.RunPython(create_if_available, drop)],
        )
    ]
