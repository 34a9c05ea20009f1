"""No index of ours is a second copy of another's leading columns: every write pays for each index."""

from __future__ import annotations

from django.db import connection

# Every b-tree index of ours: unique? partial? on expressions? and its columns with their operator classes.
INDEXES = """
SELECT t.relname, i.relname, x.indisunique, x.indpred IS NOT NULL, x.indexprs IS NOT NULL,
    array(SELECT a.attname || ' ' || c.opcname
          FROM unnest(x.indkey, x.indclass) WITH ORDINALITY k(attnum, opclass, n)
          JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
          JOIN pg_opclass c ON c.oid = k.opclass ORDER BY k.n)
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_class t ON t.oid = x.indrelid
JOIN pg_namespace ns ON ns.oid = t.relnamespace AND ns.nspname = 'public'
JOIN pg_am am ON am.oid = i.relam AND am.amname = 'btree'
WHERE t.relname ~ '^(crm|leads|scoring|handoff|front)_'
    AND t.relname <> 'handoff_routingrule_reps'  -- Django's own many-to-many table
"""


def test_no_plain_index_repeats_the_leading_columns_of_another(db):
    with connection.cursor() as cursor:
        cursor.execute(INDEXES)
        indexes = cursor.fetchall()

    redundant = [
        (table, name, other)
        for table, name, unique, partial, expressions, columns in indexes
        if not (unique or partial or expressions)
        for other_table, other, _, other_partial, other_expressions, other_columns in indexes
        if other_table == table
        and other != name
        and not (other_partial or other_expressions)
        and len(other_columns) >= len(columns)
        and other_columns[: len(columns)] == columns
        and (len(other_columns) > len(columns) or name > other)
    ]

    assert redundant == [], "\n".join(map(str, redundant))
