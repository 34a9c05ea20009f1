"""CSV imports: storing an upload, starting a run, and running it batch by batch.

A run reads its file in batches of BATCH rows, each one transaction: rows are checked (the bad ones
skipped and recorded with their cells), repeats of an email met earlier in the file are skipped, the mode
decides which contacts may be created or updated, then two set-based statements write the batch's
companies and contacts, and the run's progress (file offset, row, counts) commits with them. So a run
stopped anywhere resumes at its last batch, and a run of the same file again changes nothing (a
contact is written only when a value differs). Nothing here notifies anyone or opens a queue entry;
the contacts written are marked stale and handed back to the caller to score.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections.abc import Iterator
from datetime import timedelta
from functools import cache
from typing import IO, Any

from django.db import OperationalError, connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from crm import csv_export
from crm.celery import send_soon
from crm.freshness import mark_stale
from leads import import_rows
from leads.import_rows import CHUNK_BYTES, CONTACT_TEXT, Position
from leads.models import Import, ImportFile, ImportFileChunk, ImportProblem, ImportRow

log = logging.getLogger(__name__)
BATCH = 5000
RUN_TASK = "scoring.tasks.run_import"
STALLED = timedelta(minutes=2)
QUEUED_TOO_LONG = timedelta(minutes=10)
API_ERRORS = 1000
DEADLOCK_RETRIES = 3


# Files


def store_file(*, upload: IO[bytes], name: str, checked: import_rows.Checked) -> ImportFile:
    """Keep an uploaded file that ``import_rows.scan`` checked."""
    with transaction.atomic():
        stored = ImportFile.objects.create(
            name=name[:255],
            size=0,
            delimiter=checked.delimiter,
            headers=checked.headers,
            rows=checked.rows,
            data_offset=checked.data_offset,
        )
        upload.seek(0)
        size = 0
        for seq in itertools.count():
            data = upload.read(CHUNK_BYTES)
            if not data:
                break
            ImportFileChunk.objects.create(file=stored, seq=seq, data=data)
            size += len(data)
        stored.size = size
        stored.save(update_fields=["size"])
    return stored


def _chunks(file_id: int, start: int) -> Iterator[bytes]:
    """The stored bytes from offset ``start`` on, a chunk at a time."""
    seq, skip = divmod(start, CHUNK_BYTES)
    for seq in itertools.count(seq):  # noqa: B020 (the loop starts where the offset falls)
        data = ImportFileChunk.objects.filter(file_id=file_id, seq=seq).values_list("data", flat=True).first()
        if data is None:
            return
        yield bytes(data)[skip:]
        skip = 0


def sample(file: ImportFile, *, count: int = 3) -> list[list[str]]:
    """The first few data rows, for the mapping page."""
    reader = import_rows.records(
        _chunks(file.pk, file.data_offset), start=file.data_offset, delimiter=file.delimiter, position=Position()
    )
    return [record for record in itertools.islice(reader, count * 3) if any(c.strip() for c in record)][:count]


# Runs


def create(
    *, file: ImportFile, mapping: dict[str, str], mode: str, overwrite: bool, dry_run: bool, start: bool, **who
) -> Import:
    """A run of ``file`` with a checked mapping; ``start`` queues it (after commit), else it waits as a draft."""
    run = Import.objects.create(
        file=file,
        mapping=import_rows.full_mapping(file.headers, mapping),
        mode=mode,
        overwrite=overwrite,
        dry_run=dry_run,
        offset=file.data_offset,
        **who,
    )
    if start:
        begin(run)
    return run


def begin(run: Import) -> None:
    """Queue a draft run (call in the request's transaction: the task is sent once it commits)."""
    Import.objects.filter(pk=run.pk, state=Import.State.DRAFT).update(state=Import.State.QUEUED)
    run.state = Import.State.QUEUED
    transaction.on_commit(lambda: send_soon(RUN_TASK, [run.pk], what=f"import {run.pk} (the sweeper sends it again)"))


def again(run: Import, **who) -> Import:
    """The same file and options as a finished dry run, for real."""
    return create(
        file=run.file, mapping=run.mapping, mode=run.mode, overwrite=run.overwrite, dry_run=False, start=True, **who
    )


def step(*, import_id: int) -> list[int] | None:
    """Run the next batch of an import. Returns the contacts it wrote (to be scored), or None once every row has
    been read (then ``finish`` it). Safe to run twice and from two workers at once."""
    for attempt in range(DEADLOCK_RETRIES):
        try:
            return _step(import_id)
        except OperationalError as e:
            if getattr(e.__cause__, "sqlstate", None) != "40P01" or attempt == DEADLOCK_RETRIES - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


def _step(import_id: int) -> list[int] | None:
    with transaction.atomic():
        run = Import.objects.select_for_update().select_related("file").get(pk=import_id)
        if run.finished or run.state == Import.State.DRAFT:
            return None
        now = timezone.now()
        if run.state == Import.State.QUEUED:
            run.state, run.started_at = Import.State.RUNNING, now
        run.heartbeat_at = now
        position = Position()
        reader = import_rows.records(
            _chunks(run.file_id, run.offset), start=run.offset, delimiter=run.file.delimiter, position=position
        )
        batch = [
            import_rows.check(number, cells, headers=run.file.headers, mapping=run.mapping)
            for number, cells in zip(itertools.count(run.next_row), itertools.islice(reader, BATCH), strict=False)
        ]
        if not batch:
            run.save(update_fields=["state", "started_at", "heartbeat_at"])
            return None
        written = _apply(run, [row for row in batch if not row.empty])
        run.offset, run.next_row = position.offset, batch[-1].number + 1
        run.save()
        return written


def _apply(run: Import, rows: list[import_rows.Row]) -> list[int]:
    """Write one batch's rows (or, in a dry run, count what they would do); record the skipped ones."""
    problems = [(row, field, message) for row in rows for field, message in row.problems]
    good = [row for row in rows if not row.problems]
    email_header = next((h for h, t in run.mapping.items() if t == "email"), "email")
    first_row = _take_emails(run, good)
    for row in good:
        if first_row[row.email] != row.number:
            problems.append(
                (row, email_header, f"repeats the email of row {first_row[row.email]}; only that one counts")
            )
    good = [row for row in good if first_row[row.email] == row.number]
    existing = _existing([row.email for row in good], lock=not run.dry_run)
    refused = {
        Import.Mode.CREATE: ("a contact with this email exists (this import only creates)", lambda r: r in existing),
        Import.Mode.UPDATE: ("no contact has this email (this import only updates)", lambda r: r not in existing),
    }.get(run.mode)
    if refused:
        message, refuse = refused
        problems += [(row, email_header, message) for row in good if refuse(row.email)]
        good = [row for row in good if not refuse(row.email)]
    ImportProblem.objects.bulk_create(
        ImportProblem(
            run=run,
            row=row.number,
            field=field[:100],
            message=message[:300],
            cells=[cell.replace("\x00", "\ufffd") for cell in row.cells],  # jsonb holds no NUL
        )
        for row, field, message in problems
    )
    run.rows += len(rows)
    run.skipped += len({row.number for row, _, _ in problems})
    if not good:
        return []
    params = _input(run, good)
    with connection.cursor() as cursor:
        if run.dry_run:
            _execute(cursor, _statement("dry"), params)
            created, changed = cursor.fetchone()
            run.created, run.updated = run.created + created, run.updated + changed
            run.unchanged += len(good) - created - changed
            return []
        _execute(cursor, _statement("companies"), params)
        resized = [pk for pk, inserted in cursor.fetchall() if not inserted]
        _execute(cursor, _statement("write"), params)
        created, updated = (ids or [] for ids in cursor.fetchone())
        if resized:  # a company's size or industry changed: fit rules of all its contacts may read it
            _execute(cursor, "SELECT id FROM crm_contact WHERE company_id = ANY(%s)", [resized])
            updated = sorted({*updated, *(pk for (pk,) in cursor.fetchall())})
    run.created, run.updated = run.created + len(created), run.updated + len(updated)
    run.unchanged += len(good) - len(created) - len(updated)
    written = sorted({*created, *updated})
    mark_stale(contact_ids=written, nudge=False)
    return written


def _execute(cursor, sql: str, params: Any) -> None:
    """Run a batch's statement unprepared: a plan cached while the tables were small (the first import into a
    new database) stays a sequential scan long after they have grown; planning these anew costs milliseconds."""
    cursor.cursor.execute(sql, params, prepare=False)


def _take_emails(run: Import, rows: list[import_rows.Row]) -> dict[str, int]:
    """Record the rows' emails as taken by this run; returns each email's first row in the file."""
    first: dict[str, int] = {}
    for row in rows:
        first.setdefault(row.email, row.number)
    with connection.cursor() as cursor:
        _execute(
            cursor,
            "INSERT INTO leads_importrow (run_id, row, email) SELECT %s, * FROM unnest(%s::int[], %s::text[])"
            " ON CONFLICT (run_id, email) DO NOTHING",
            [run.pk, list(first.values()), list(first)],
        )
        _execute(
            cursor,
            "SELECT email, row FROM leads_importrow WHERE run_id = %s AND email = ANY(%s)",
            [run.pk, list(first)],
        )
        return dict(cursor.fetchall())


def _existing(emails: list[str], *, lock: bool) -> set[str]:
    """Which of the emails have contacts; ``lock`` takes their rows, in email order (the order ingest takes
    them in), before this batch writes them (as an update takes them: ingest's key-share locks of the contacts
    it only names do not wait for it)."""
    with connection.cursor() as cursor:
        locking = " ORDER BY email FOR NO KEY UPDATE" if lock else ""
        _execute(cursor, f"SELECT email FROM crm_contact WHERE email = ANY(%s){locking}", [emails])
        return {email for (email,) in cursor.fetchall()}


def _input(run: Import, rows: list[import_rows.Row]) -> dict[str, Any]:
    """The batch as one JSON document (one dump, where arrays of jsonb cost one per value)."""
    data = [{"row": row.number, "email": row.email, "f": row.fields, "profile": row.profile} for row in rows]
    return {"rows": json.dumps(data), "overwrite": run.overwrite}


def _given(name: str, current: str) -> str:
    """A value from the file replaces ``current`` when given and (overwriting or) the current one is empty."""
    return f"CASE WHEN i.f ? '{name}' AND (%(overwrite)s OR coalesce({current}, '') = '') THEN i.f->>'{name}'"


INPUT = """input AS (  -- each row, with the company it names: by name; else the company with its domain, or a new
    -- one named after the domain
    SELECT i.*, coalesce(i.f->>'company', d.name, i.f->>'company_domain') AS company
    FROM jsonb_to_recordset(%(rows)s::jsonb) AS i(row int, email text, f jsonb, profile jsonb)
    LEFT JOIN LATERAL (  -- inside, so that rows naming their company skip it and the partial index serves it
        SELECT name FROM crm_company
        WHERE i.f ? 'company_domain' AND NOT i.f ? 'company' AND domain = i.f->>'company_domain' AND domain <> ''
        ORDER BY id LIMIT 1
    ) d ON true
)"""
PLAN = f"""plan AS (
    SELECT i.email, c.id AS contact_id,
        {", ".join(f"{_given(name, f'c.{name}')} ELSE coalesce(c.{name}, '') END AS {name}" for name in CONTACT_TEXT)},
        CASE WHEN i.company IS NOT NULL AND (%(overwrite)s OR c.company_id IS NULL) THEN co.id
            ELSE c.company_id END AS company_id,
        i.company IS NOT NULL AND co.id IS NULL AND (%(overwrite)s OR c.company_id IS NULL) AS new_company,
        CASE WHEN %(overwrite)s THEN coalesce(c.profile, '{{}}') || i.profile
            ELSE i.profile || coalesce(c.profile, '{{}}') END AS profile
    FROM input i
    LEFT JOIN crm_contact c ON c.email = i.email
    LEFT JOIN crm_company co ON lower(co.name) = lower(i.company)
)"""
WRITTEN = (*CONTACT_TEXT, "company_id", "profile")
DIFFERS = (
    f"({', '.join(f'c.{name}' for name in WRITTEN)}) IS DISTINCT FROM ({', '.join(f'p.{name}' for name in WRITTEN)})"
)
COMPANY_SET = {
    "domain": "CASE WHEN EXCLUDED.domain <> '' AND (%(overwrite)s OR crm_company.domain = '') THEN EXCLUDED.domain"
    " ELSE crm_company.domain END",
    "size": "CASE WHEN EXCLUDED.size IS NOT NULL AND (%(overwrite)s OR crm_company.size IS NULL) THEN EXCLUDED.size"
    " ELSE crm_company.size END",
    "industry": "CASE WHEN EXCLUDED.industry <> '' AND (%(overwrite)s OR crm_company.industry = '')"
    " THEN EXCLUDED.industry ELSE crm_company.industry END",
}


@cache
def _statement(kind: str) -> str:
    if kind == "companies":  # each column's last value in the batch wins; RETURNING the companies that changed

        def last(name: str) -> str:
            return f"(array_agg(i.f->>'{name}' ORDER BY i.row DESC) FILTER (WHERE i.f ? '{name}'))[1]"

        return f"""WITH {INPUT}
INSERT INTO crm_company (name, domain, size, industry)
SELECT (array_agg(i.company ORDER BY i.row))[1], coalesce({last("company_domain")}, ''),
    {last("company_size")}::int, coalesce({last("industry")}, '')
FROM input i WHERE i.company IS NOT NULL
GROUP BY lower(i.company)
ORDER BY lower(i.company)
ON CONFLICT (lower(name)) DO UPDATE SET {", ".join(f"{col} = {expr}" for col, expr in COMPANY_SET.items())},
    updated_at = now()
WHERE ({", ".join(COMPANY_SET.values())}) IS DISTINCT FROM
    (crm_company.domain, crm_company.size, crm_company.industry)
RETURNING id, xmax = 0"""
    if kind == "dry":
        return f"""WITH {INPUT}, {PLAN}
SELECT count(*) FILTER (WHERE p.contact_id IS NULL),
    count(*) FILTER (WHERE p.contact_id IS NOT NULL AND ({DIFFERS} OR p.new_company))
FROM plan p LEFT JOIN crm_contact c ON c.id = p.contact_id"""
    columns = ", ".join(WRITTEN)
    return f"""WITH {INPUT}, {PLAN},
inserted AS (
    INSERT INTO crm_contact (email, {columns})
    SELECT email, {columns} FROM plan WHERE contact_id IS NULL ORDER BY email
    ON CONFLICT (email) DO NOTHING
    RETURNING id
),
updated AS (
    UPDATE crm_contact c SET {", ".join(f"{name} = p.{name}" for name in WRITTEN)}, updated_at = now()
    FROM plan p WHERE c.id = p.contact_id AND {DIFFERS}
    RETURNING c.id
)
SELECT (SELECT array_agg(id ORDER BY id) FROM inserted), (SELECT array_agg(id ORDER BY id) FROM updated)"""


def unscored(*, import_id: int) -> list[int]:
    """The contacts this import wrote that still wait for their scores (stale)."""
    with connection.cursor() as cursor:
        _execute(
            cursor,
            "SELECT a.contact_id FROM leads_importrow r JOIN crm_contact c ON c.email = r.email"
            " JOIN crm_contactactivity a ON a.contact_id = c.id"
            " WHERE r.run_id = %s AND a.stale_since IS NOT NULL ORDER BY 1",
            [import_id],
        )
        return [pk for (pk,) in cursor.fetchall()]


def finish(*, import_id: int) -> None:
    """Mark a read (and scored) import done and forget its emails."""
    with transaction.atomic():
        if Import.objects.filter(pk=import_id, state=Import.State.RUNNING).update(
            state=Import.State.DONE, finished_at=timezone.now()
        ):
            ImportRow.objects.filter(run_id=import_id).delete()


def fail(*, import_id: int, problem: str) -> None:
    Import.objects.filter(pk=import_id, state__in=[Import.State.QUEUED, Import.State.RUNNING]).update(
        state=Import.State.FAILED, finished_at=timezone.now(), problem=problem[:2000]
    )


def resume_stalled(*, now: Any = None) -> list[int]:
    """Send again the runs nobody is running: started and silent for STALLED, or queued for QUEUED_TOO_LONG."""
    now = now or timezone.now()
    stalled = list(
        Import.objects.filter(state=Import.State.RUNNING, heartbeat_at__lt=now - STALLED).values_list("pk", flat=True)
    ) + list(
        Import.objects.filter(state=Import.State.QUEUED, created_at__lt=now - QUEUED_TOO_LONG).values_list(
            "pk", flat=True
        )
    )
    for pk in stalled:
        send_soon(RUN_TASK, [pk], what=f"import {pk} (the sweeper sends it again)")
    if stalled:
        log.warning("sent again imports nobody was running: %s", stalled)
    return stalled


# Reading the outcome


def history() -> QuerySet[Import]:
    return Import.objects.select_related("file", "created_by", "source").order_by("-created_at", "-pk")


def as_json(run: Import) -> dict[str, Any]:
    """An import as GET /api/v1/imports/{id} answers (API.md): the first API_ERRORS problems; the file has all."""
    problems = run.problems.order_by("row", "pk")[:API_ERRORS]
    return {
        "id": run.pk,
        "state": "queued" if run.state == Import.State.DRAFT else run.state,
        "dry_run": run.dry_run,
        "mode": run.mode,
        "overwrite": run.overwrite,
        "file": run.file.name,
        "total": run.file.rows,
        "rows": run.rows,
        "created": run.created,
        "updated": run.updated,
        "unchanged": run.unchanged,
        "skipped": run.skipped,
        "errors": [{"row": p.row, "field": p.field, "message": p.message} for p in problems],
        "problem": run.problem or None,
        "created_at": run.created_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
    }


def error_file(run: Import) -> Iterator[str]:
    """The skipped rows as CSV: the file's own columns with its cells, then the row number and what was wrong,
    so the file can be fixed and imported again."""
    width = len(run.file.headers)
    problems = run.problems.order_by("row", "pk").iterator(chunk_size=2000)
    yield from csv_export.rows(
        itertools.chain(
            [[*run.file.headers, "row", "column", "error"]],
            ([*(p.cells + [""] * width)[:width], p.row, p.field, p.message] for p in problems),
        )
    )
