"""Reading an import's CSV file: checking it on upload, the fields its columns map to, and each row checked.

The file is read line by line from its stored chunks (UTF-8 is decoded per line: a newline byte never falls
inside a character), so memory stays flat however long the file is, and reading can start at any record
boundary a previous batch stopped at.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from crm import profiles
from crm.models import Company, Contact

CHUNK_BYTES = 1024 * 1024
MAX_FILE_BYTES = 50 * 1024 * 1024
SNIFF_BYTES = 64 * 1024
DELIMITERS = ",;\t|"
PROFILE_VALUE_LIMIT = 500
PROFILE_KEY_LIMIT = 64

CONTACT_TEXT = (*profiles.TEXT_FIELDS, "channel")
COMPANY_TEXT = {"company": "name", "company_domain": "domain", "industry": "industry"}
# Every field a column can map to, with its label; "profile.<key>" and "" (ignore) besides.
FIELDS = {
    "email": "Email",
    "first_name": "First name",
    "last_name": "Last name",
    "phone": "Phone",
    "job_title": "Job title",
    "seniority": "Seniority",
    "country": "Country",
    "budget": "Budget",
    "authority": "Authority",
    "need": "Need",
    "timeline": "Timeline",
    "channel": "First-touch channel",
    "company": "Company name",
    "company_domain": "Company domain",
    "company_size": "Company size (employees)",
    "industry": "Industry",
}
LIMITS = {
    **{name: Contact._meta.get_field(name).max_length for name in CONTACT_TEXT},
    **{name: Company._meta.get_field(column).max_length for name, column in COMPANY_TEXT.items()},
}
SYNONYMS = {
    "e_mail": "email",
    "email_address": "email",
    "e_mail_address": "email",
    "mail": "email",
    "firstname": "first_name",
    "first": "first_name",
    "given_name": "first_name",
    "forename": "first_name",
    "lastname": "last_name",
    "last": "last_name",
    "surname": "last_name",
    "family_name": "last_name",
    "phone_number": "phone",
    "telephone": "phone",
    "mobile": "phone",
    "title": "job_title",
    "jobtitle": "job_title",
    "position": "job_title",
    "role": "job_title",
    "company_name": "company",
    "organization": "company",
    "organisation": "company",
    "account": "company",
    "domain": "company_domain",
    "website": "company_domain",
    "company_website": "company_domain",
    "employees": "company_size",
    "number_of_employees": "company_size",
    "employee_count": "company_size",
    "size": "company_size",
    "source": "channel",
    "lead_source": "channel",
    "first_touch_channel": "channel",
}
WHOLE_NUMBER = re.compile(r"[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+")
DOMAIN = re.compile(r"(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")
NEUTRALISED = re.compile(r"'[=+\-@]")  # how an export neutralises a formula: undone, so an export re-imports


class FileRefused(Exception):
    """The file cannot be imported at all; the message says why (and which row)."""


def normalised(header: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", header.strip().lower()).strip("_")


def auto_field(header: str) -> str:
    """The field a header maps to unless someone says otherwise: a field by name or synonym, else the profile."""
    key = normalised(header)
    if not key:
        return ""
    if key in FIELDS:
        return key
    return SYNONYMS.get(key) or f"profile.{key[:PROFILE_KEY_LIMIT]}"


IGNORED = {"", "ignore", "skip", "none"}


def target_of(header: str, target: str) -> str:
    """A mapping's target as stored: "profile" is the profile under the column's own name, "ignore" is ""."""
    target = (target or "").strip()
    if target.lower() in IGNORED:
        return ""
    if target == "profile":
        return f"profile.{normalised(header)[:PROFILE_KEY_LIMIT]}"
    return target


def mapping_problems(headers: list[str], given: dict[str, str]) -> list[tuple[str, str]]:
    """(field, message) for each thing wrong with the mapping {header: field} given for a file's headers."""
    problems = []
    given = {header: target_of(header, target) for header, target in given.items()}
    for header, target in given.items():
        if header not in headers:
            problems.append((f"mapping.{header}", "is not a column of the file"))
        elif target and target not in FIELDS and not _profile_key(target):
            problems.append((f"mapping.{header}", f"{target!r} is not a field (see the import page's list)"))
    seen: dict[str, str] = {}
    for header, target in full_mapping(headers, given).items():
        if target and target in seen:
            problems.append((f"mapping.{header}", f"maps to {target}, as {seen[target]!r} already does"))
        seen.setdefault(target, header)
    if "email" not in seen:
        problems.append(("mapping", "no column maps to email, which every row needs"))
    return problems


def _profile_key(target: str) -> bool:
    key = target.removeprefix("profile.")
    return target.startswith("profile.") and 0 < len(key) <= PROFILE_KEY_LIMIT and normalised(key) == key


def full_mapping(headers: list[str], given: dict[str, str]) -> dict[str, str]:
    """Every header's field: the given ones, the rest auto-matched (a field already given is not matched twice)."""
    given = {header: target_of(header, target) for header, target in given.items()}
    taken = {target for target in given.values() if target}
    mapping = {}
    for header in headers:
        if header in given:
            mapping[header] = given[header]
            continue
        target = auto_field(header)
        if target in taken:
            target = f"profile.{normalised(header)[:PROFILE_KEY_LIMIT]}" if target in FIELDS else ""
        taken.add(target)
        mapping[header] = target
    return mapping


# Reading


def lines(chunks: Iterable[bytes], *, start: int = 0) -> Iterator[tuple[str, int]]:
    """Decoded lines (with their line ends) of the bytes ``chunks`` yields from offset ``start``, each with the
    offset just after it. Raises UnicodeDecodeError for a line that is not UTF-8."""
    offset, pending = start, b""
    for chunk in chunks:
        pending += chunk
        begin = 0
        while (end := pending.find(b"\n", begin)) >= 0:
            offset += end + 1 - begin
            yield pending[begin : end + 1].decode("utf-8"), offset
            begin = end + 1
        pending = pending[begin:]
    if pending:
        yield pending.decode("utf-8"), offset + len(pending)


@dataclass
class Position:
    """Where the reader stands: the offset after the last line it took."""

    offset: int = 0


def records(chunks: Iterable[bytes], *, start: int, delimiter: str, position: Position) -> Iterator[list[str]]:
    """The CSV records from ``start``; ``position.offset`` is the end of the record just yielded (csv.reader takes
    only the lines a record needs)."""

    def tracked() -> Iterator[str]:
        for line, end in lines(chunks, start=start):
            position.offset = end
            yield line

    position.offset = start
    return csv.reader(tracked(), delimiter=delimiter, quotechar='"', doublequote=True, strict=False)


@dataclass
class Checked:
    """What an upload's scan found."""

    headers: list[str]
    delimiter: str
    rows: int
    data_offset: int


def scan(file: IO[bytes]) -> Checked:
    """Check an uploaded file from start to end (UTF-8, a header, a valid CSV). Raises FileRefused."""
    file.seek(0)
    sample = file.read(SNIFF_BYTES)
    bom = len(codecs.BOM_UTF8) if sample.startswith(codecs.BOM_UTF8) else 0
    delimiter = _sniff(sample[bom:])
    file.seek(bom)
    position = Position()
    reader = records(iter(lambda: file.read(CHUNK_BYTES), b""), start=bom, delimiter=delimiter, position=position)
    row, headers = 0, None
    try:
        headers = next(reader, None)
        if headers is None or not any(h.strip() for h in headers):
            raise FileRefused("The file is empty: its first row should name the columns (email, first_name, …).")
        data_offset = position.offset
        for row, _ in enumerate(reader, start=1):  # noqa: B007 (the count is read after the loop)
            pass
    except UnicodeDecodeError:
        where = "The header row" if headers is None else f"Row {row + 1}"
        raise FileRefused(
            f"{where} is not UTF-8 text. Save the file as “CSV UTF-8” (Excel: Save As → CSV UTF-8) and upload it again."
        ) from None
    except csv.Error as e:
        where = "The header row" if headers is None else f"Row {row + 1}"
        raise FileRefused(f"{where} is not valid CSV: {e}.") from None
    headers = [h.strip() for h in headers]
    repeated = sorted({h for h in headers if h and headers.count(h) > 1})
    if repeated:
        raise FileRefused(f"The header row names {', '.join(repr(h) for h in repeated)} more than once.")
    return Checked(headers=headers, delimiter=delimiter, rows=row, data_offset=data_offset)


def _sniff(sample: bytes) -> str:
    text = sample.decode("utf-8", errors="ignore")
    if len(sample) == SNIFF_BYTES and "\n" in text:
        text = text[: text.rindex("\n")]
    try:
        return csv.Sniffer().sniff(text, delimiters=DELIMITERS).delimiter
    except csv.Error:
        first = text.split("\n", 1)[0]
        return max(DELIMITERS, key=first.count) if any(d in first for d in DELIMITERS) else ","


# Checking a row


@dataclass
class Row:
    number: int
    cells: list[str]
    email: str = ""
    fields: dict[str, Any] = field(default_factory=dict)
    profile: dict[str, str] = field(default_factory=dict)
    problems: list[tuple[str, str]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not any(cell.strip() for cell in self.cells)


def check(number: int, cells: list[str], *, headers: list[str], mapping: dict[str, str]) -> Row:
    """One record as fields to import, or with the problems that skip it."""
    row = Row(number, cells)
    if len(cells) > len(headers) and any(c.strip() for c in cells[len(headers) :]):
        row.problems.append(("", f"has {len(cells)} cells; the header row names {len(headers)} columns"))
        return row
    for header, raw in zip(headers, cells, strict=False):
        target = mapping.get(header, "")
        value = _cell(raw)
        if not target or not value:
            continue
        if "\x00" in value:
            row.problems.append((header, "contains a NUL character"))
            continue
        if target.startswith("profile."):
            if len(value) > PROFILE_VALUE_LIMIT:
                row.problems.append((header, f"is longer than {PROFILE_VALUE_LIMIT} characters"))
            else:
                row.profile[target.removeprefix("profile.")] = value
            continue
        parsed, problem = _parse(target, value)
        if problem:
            row.problems.append((header, problem))
        elif target == "email":
            row.email = parsed
        else:
            row.fields[target] = parsed
    email_header = next((h for h, t in mapping.items() if t == "email"), "email")
    if not row.email and not any(header == email_header for header, _ in row.problems):
        row.problems.append((email_header, "is empty; every row needs an email"))
    return row


def _cell(raw: str) -> str:
    value = raw.strip()
    return value[1:] if NEUTRALISED.match(value) else value


def _parse(target: str, value: str) -> tuple[Any, str]:
    """(value as stored, "") or (None, what is wrong with it)."""
    if target == "email":
        email = value.lower()
        try:
            validate_email(email)
        except ValidationError:
            return None, f"{value[:80]!r} is not an email address"
        return (email, "") if len(email) <= 254 else (None, "is longer than 254 characters")
    if target == "company_size":
        if not WHOLE_NUMBER.fullmatch(value) or int(value.replace(",", "")) > 10_000_000:
            return None, f"{value[:40]!r} is not a number of employees (a whole number up to 10,000,000)"
        return int(value.replace(",", "")), ""
    if target == "company_domain":
        domain = re.sub(r"^[a-z]+://", "", value.lower()).split("/", 1)[0].removeprefix("www.")
        if not DOMAIN.fullmatch(domain):
            return None, f"{value[:80]!r} is not a domain (like example.com)"
        return domain, ""
    if len(value) > LIMITS[target]:
        return None, f"is longer than {LIMITS[target]} characters"
    return value, ""
