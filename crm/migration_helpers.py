"""Operations that several apps' migrations share."""

from __future__ import annotations

from django.db import migrations


def drop_index(table: str, column: str, name: str) -> migrations.RunSQL:
    """Drop a one-column index another index already leads with (reversible). With the model's AlterField as
    the state operation: Django's own would drop and re-check the foreign key over the whole table."""
    return migrations.RunSQL(f"DROP INDEX IF EXISTS {name}", f"CREATE INDEX {name} ON {table} ({column})")
