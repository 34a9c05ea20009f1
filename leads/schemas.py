"""The shapes of what the JSON API receives and answers. They validate requests and write the OpenAPI document."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Annotated, Any, Literal

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import EmailValidator
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints
from pydantic_core import PydanticCustomError

from leads.models import ADJUSTMENT

MAX_EVENTS = 1000
MAX_PROPERTIES_BYTES = 16 * 1024
MAX_PROPERTIES_DEPTH = 32
MAX_FUTURE = timedelta(minutes=5)
MAX_OFFSET = timedelta(hours=14)
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$")
FORM_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
# A whole number typed into a form field. (str.isdigit() accepts "²", which int() refuses.)
WHOLE_NUMBER = re.compile(r"[0-9]{1,12}")
_email_validator = EmailValidator()


def _problem(message: str) -> PydanticCustomError:
    return PydanticCustomError("invalid", message)


def check_text(value: str) -> str:
    """PostgreSQL stores neither NUL characters nor lone surrogates: refuse them rather than fail later."""
    if "\x00" in value:
        raise _problem("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _problem("must be valid Unicode text") from None
    return value


@lru_cache(maxsize=65_536)
def check_email(value: str) -> str:
    """The address as stored (trimmed, lower case). Cached: the same visitors come back, and Django's validator is
    half of an event's validation (a refused address raises, and is not cached)."""
    value = check_text(value).strip().lower()
    try:
        _email_validator(value)
    except DjangoValidationError:
        raise _problem("must be a valid email address") from None
    if len(value) > 254:
        raise _problem("must be at most 254 characters")
    return value


def check_timestamp(value: Any) -> datetime:
    if not isinstance(value, str) or not RFC3339.match(value):
        raise _problem("must be an RFC 3339 timestamp with an offset, such as 2026-11-20T10:31:00Z")
    try:
        moment = datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))
    except ValueError:
        raise _problem("is not a real date and time") from None
    if abs(moment.utcoffset()) > MAX_OFFSET:
        raise _problem("must have an offset between -14:00 and +14:00")
    # Compared before converting: year 1 at +01:00 (or 9999 at -01:00) has no UTC date to convert to.
    if moment < EARLIEST:
        raise _problem("must not be before 1970")
    if moment > datetime.now(UTC) + MAX_FUTURE:  # (timezone.now() reads a setting: a fifth of a timestamp's check)
        raise _problem("must not be more than 5 minutes in the future")
    return moment.astimezone(UTC)


def check_properties(value: dict[str, Any]) -> dict[str, Any]:
    def walk(node: Any, depth: int) -> None:
        if depth > MAX_PROPERTIES_DEPTH:
            raise _problem(f"must not nest deeper than {MAX_PROPERTIES_DEPTH} levels")
        if isinstance(node, str):
            check_text(node)
        elif isinstance(node, dict):
            for key, item in node.items():
                check_text(key)
                walk(item, depth + 1)
        elif isinstance(node, list):
            for item in node:
                walk(item, depth + 1)

    walk(value, 1)
    return value


Text = Annotated[str, AfterValidator(check_text)]
Email = Annotated[str, Field(max_length=320, examples=["ada@example.com"]), AfterValidator(check_email)]
Timestamp = Annotated[datetime, Field(examples=["2026-11-20T10:31:00Z"]), BeforeValidator(check_timestamp)]


def short(n: int) -> Any:
    return Annotated[Text, StringConstraints(max_length=n)]


class ContactFields(BaseModel):
    """Profile fields to set on the contact; empty strings leave a field as it is."""

    model_config = ConfigDict(extra="forbid", strict=True)

    first_name: short(100) | None = None
    last_name: short(100) | None = None
    phone: short(50) | None = None
    job_title: short(200) | None = None
    company: short(200) | None = None
    company_size: Annotated[int, Field(ge=0, le=10_000_000)] | None = None
    industry: short(100) | None = None
    country: short(100) | None = None
    budget: short(100) | None = None
    authority: short(100) | None = None
    need: short(200) | None = None
    timeline: short(100) | None = None


PROFILE_FIELDS = tuple(ContactFields.model_fields)


class EventIn(BaseModel):
    """One activity event."""

    model_config = ConfigDict(extra="forbid", strict=True)

    id: Annotated[Text, StringConstraints(min_length=1, max_length=128)] = Field(
        description="Unique per source; a repeat is a duplicate and is stored once", examples=["evt_01"]
    )
    type: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")] = Field(examples=["page_view"])
    email: Email | None = None
    visitor_id: Annotated[Text, StringConstraints(min_length=1, max_length=64)] | None = None
    occurred_at: Timestamp | None = Field(None, description="Default: receipt time; at most 5 minutes ahead")
    properties: Annotated[dict[str, Any], AfterValidator(check_properties)] = Field(default_factory=dict)
    contact: ContactFields | None = None

    def problems(self) -> list[tuple[str, str]]:
        """The rules that span fields: (field, message) for each one broken."""
        found = []
        if self.email is None and self.visitor_id is None:
            found.append(("email", "is required unless visitor_id is given"))
        if self.type == "form_submit":
            form = self.properties.get("form")
            if not isinstance(form, str) or not FORM_SLUG.match(form):
                found.append(("properties.form", "form_submit needs properties.form, a form slug such as 'demo'"))
        if self.type == ADJUSTMENT:
            found.append(("type", "score_adjustment is Baton's own (manual adjustments on the lead page)"))
        if self.type == "identify" and (self.email is None or self.visitor_id is None):
            found.append(("email", "identify needs both email and visitor_id"))
        return found


class EventBatch(BaseModel):
    events: list[EventIn] = Field(min_length=1, max_length=MAX_EVENTS)


class Accepted(BaseModel):
    accepted: int = Field(description="New events stored")
    duplicates: int = Field(description="Events already stored (sent before)")


class HookAccepted(Accepted):
    ignored: int = Field(description="Events of other kinds (delivered, processed…) or unusable ones")


class ImportStarted(BaseModel):
    id: int


class ImportProblemOut(BaseModel):
    row: int = Field(description="The row's number, counting from the first row after the header")
    field: str = Field(description="The CSV column (header) at fault, or empty for the whole row")
    message: str


class ImportOut(BaseModel):
    id: int
    state: Literal["queued", "running", "done", "failed"]
    dry_run: bool
    mode: Literal["create", "update", "upsert"]
    overwrite: bool
    file: str
    total: int = Field(description="Data rows in the file (empty ones included)")
    rows: int = Field(description="Non-empty rows read so far")
    created: int
    updated: int = Field(description="Existing contacts a value of the file changed")
    unchanged: int = Field(description="Rows whose contact already said everything the row says")
    skipped: int = Field(description="Rows with errors, not imported")
    errors: list[ImportProblemOut] = Field(description="The first 1,000 skipped rows and why")
    problem: str | None = Field(description="Why a failed import stopped")
    created_at: datetime
    finished_at: datetime | None


class IdentifyIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    visitor_id: Annotated[Text, StringConstraints(min_length=1, max_length=64)]
    email: Email
    contact: ContactFields | None = None


class Identified(BaseModel):
    contact_id: int
    events_attached: int


class ErrorDetail(BaseModel):
    index: int | None = None
    field: str | None = None
    message: str


class ErrorOut(BaseModel):
    error: str = Field(examples=["invalid"])
    message: str
    details: list[ErrorDetail] = Field(default_factory=list)


class BreakdownEntry(BaseModel):
    rule: str
    kind: str = Field(description="behaviour or fit")
    events: int | None = Field(description="Events the rule matched (behaviour rules)")
    points: float = Field(description="Points after decay and cap")


class StageMove(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: str = Field(alias="from")
    to: str
    at: datetime
    by: str = Field(description='A user, or "scoring v<N>"')
    reason: str
    score: int


class ContactOut(BaseModel):
    id: int
    email: str
    first_name: str
    last_name: str
    company: str | None
    job_title: str
    channel: str
    stage: str
    score: int
    fit_score: float
    engagement_score: float
    grade: str
    trend: str
    owner: str | None
    email_opt_out: bool
    last_activity_at: datetime | None
    scored_at: datetime | None
    criteria_version: int | None
    breakdown: list[BreakdownEntry]
    stage_history: list[StageMove]


SCORE_BOUND = 1_000_000
Score = Annotated[int, Field(ge=-SCORE_BOUND, le=SCORE_BOUND)]


class ContactQuery(BaseModel):
    """The read API's list filters (query parameters), each validated once, here."""

    model_config = ConfigDict(extra="ignore")

    email: Annotated[Text, StringConstraints(max_length=320)] | None = None
    stage: Literal["lead", "mql", "sql", "opportunity", "customer", "disqualified"] | None = None
    min_score: Score | None = None
    max_score: Score | None = None
    updated_since: Timestamp | None = None
    cursor: Annotated[Text, StringConstraints(max_length=100)] | None = Field(
        None, description="`next_cursor` of the page before"
    )
    limit: Annotated[int, Field(ge=1, le=500)] = 100


class ContactPage(BaseModel):
    results: list[ContactOut]
    next_cursor: str | None
