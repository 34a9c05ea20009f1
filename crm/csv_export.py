"""Contacts as CSV, streamed: one header row, a row per contact, in constant memory, safe to open in a sheet."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from datetime import datetime

from django.db.models import QuerySet
from django.http import StreamingHttpResponse

from crm.models import Contact

# (header, value path in .values())
COLUMNS = (
    ("id", "id"),
    ("email", "email"),
    ("first_name", "first_name"),
    ("last_name", "last_name"),
    ("company", "company__name"),
    ("job_title", "job_title"),
    ("phone", "phone"),
    ("country", "country"),
    ("channel", "channel"),
    ("stage", "stage"),
    ("score", "score"),
    ("fit_score", "fit_score"),
    ("engagement_score", "engagement_score"),
    ("grade", "grade"),
    ("trend", "trend"),
    ("owner", "owner__email"),
    ("email_opt_out", "email_opt_out"),
    ("last_activity_at", "last_activity_at"),
    ("created_at", "created_at"),
)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CHUNK = 2000


def cell(value: object) -> str:
    """A value as a CSV cell; text that a spreadsheet would run as a formula is prefixed with '."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    return "'" + text if isinstance(value, str) and text.startswith(FORMULA_STARTS) else text


class Echo:
    """csv.writer writes into this and hands the line back."""

    def write(self, text: str) -> str:
        return text


# How each column's value becomes a cell (see ``cell``), decided once rather than per value.
TEXT = [
    i
    for i, (h, _) in enumerate(COLUMNS)
    if h in {"email", "first_name", "last_name", "company", "job_title", "phone", "country", "channel", "owner"}
]
TIMES = [i for i, (h, _) in enumerate(COLUMNS) if h.endswith("_at")]
FLAGS = [i for i, (h, _) in enumerate(COLUMNS) if h == "email_opt_out"]


def _cells(row: tuple) -> list:
    values = list(row)
    for i in TEXT:
        text = values[i]
        if text and text.startswith(FORMULA_STARTS):
            values[i] = "'" + text
    for i in TIMES:
        if values[i] is not None:
            values[i] = values[i].isoformat().replace("+00:00", "Z")
    for i in FLAGS:
        values[i] = "true" if values[i] else "false"
    return values  # numbers and None (an empty cell) as csv.writer writes them


def lines(contacts: QuerySet[Contact]) -> Iterator[str]:
    """The header, then the rows a CHUNK at a time (one string each: a million small writes cost more)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([header for header, _ in COLUMNS])
    rows: Iterable = contacts.values_list(*(path for _, path in COLUMNS)).iterator(chunk_size=CHUNK)
    for count, row in enumerate(rows, start=1):
        writer.writerow(_cells(row))
        if count % CHUNK == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def rows(values: Iterable[Iterable[object]]) -> Iterator[str]:
    """Any rows (the header first) as CSV lines, each cell through ``cell``."""
    writer = csv.writer(Echo())
    for row in values:
        yield writer.writerow([cell(v) for v in row])


def response(contacts: QuerySet[Contact], *, filename: str) -> StreamingHttpResponse:
    answer = StreamingHttpResponse(lines(contacts.order_by("id")), content_type="text/csv; charset=utf-8")
    answer["Content-Disposition"] = f'attachment; filename="{filename}"'
    return answer
