"""Event sources, their API keys, hosted forms, activity events and the visitor → contact link."""

from __future__ import annotations

import hashlib
import re
import secrets

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

ORIGIN = re.compile(
    r"https?://(\[[0-9a-f:.]+\]|[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*)(:[0-9]{1,5})?"
)


def validate_origin(value: str) -> None:
    """An origin is a scheme and a host (and a port): what a browser sends in its Origin header."""
    if not ORIGIN.fullmatch(value.strip().lower().rstrip("/")):
        raise ValidationError(
            "%(value)s is not an origin: write it as scheme://host[:port], like https://www.example.com — no path.",
            params={"value": value},
            code="origin",
        )


class Source(models.Model):
    """Where events come from: a website, an email tool, a webinar tool…"""

    class Kind(models.TextChoices):
        WEBSITE = "website", "Website"
        EMAIL = "email", "Email tool"
        WEBINAR = "webinar", "Webinar tool"
        OTHER = "other", "Other"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.OTHER)
    allowed_origins = ArrayField(
        models.CharField(max_length=200, validators=[validate_origin]),
        default=list,
        blank=True,
        help_text="Origins (scheme://host[:port]) whose pages may use this source's site key and hosted forms",
    )
    rate_limit = models.PositiveIntegerField(default=1000, help_text="Events per second, with bursts of twice that")
    signing_secret = models.CharField(
        max_length=500,
        blank=True,
        help_text="For an email tool's webhooks: SendGrid's verification key, Mailgun's webhook signing key, or "
        "the basic-auth password in Postmark's webhook address. Empty: signatures are not checked.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name

    def allows_origin(self, origin: str) -> bool:
        return origin.rstrip("/").lower() in {o.rstrip("/").lower() for o in self.allowed_origins}


class ApiKey(models.Model):
    """A key of a source. Secret keys are stored only as a SHA-256 hash (they are random, ~256 bits)."""

    class Scope(models.TextChoices):
        INGEST = "ingest", "Ingest (write events)"
        READ = "read", "Read contacts"
        SITE = "site", "Site key (public, page views and forms)"
        ADMIN = "admin", "Admin (criteria as code)"

    PREFIXES = {Scope.INGEST: "bk_", Scope.READ: "bk_", Scope.SITE: "pk_", Scope.ADMIN: "bk_"}

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="keys")
    scope = models.CharField(max_length=10, choices=Scope.choices)
    prefix = models.CharField(max_length=12, help_text="The first characters, to tell keys apart")
    hashed = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.get_scope_display()}, {self.source})"

    @staticmethod
    def hash(raw: str) -> str:
        return hashlib.sha256(raw.encode()).hexdigest()

    def generate(self) -> str:
        """Give this (unsaved) key a fresh secret; returns the raw key, which is never stored."""
        raw = self.PREFIXES[self.Scope(self.scope)] + secrets.token_urlsafe(32)
        self.prefix, self.hashed = raw[:10], self.hash(raw)
        return raw

    @classmethod
    def issue(cls, *, source: Source, scope: str) -> tuple[ApiKey, str]:
        """Create a key; returns it with the raw key, which cannot be shown again."""
        key = cls(source=source, scope=scope)
        raw = key.generate()
        key.save()
        return key, raw

    def revoke(self) -> None:
        ApiKey.objects.filter(pk=self.pk, revoked_at=None).update(revoked_at=timezone.now())


class Form(models.Model):
    class Kind(models.TextChoices):
        CONTENT = "content", "Content (whitepaper, e-book)"
        WEBINAR = "webinar", "Webinar"
        NEWSLETTER = "newsletter", "Newsletter"
        DEMO_REQUEST = "demo_request", "Demo request"
        CONTACT_REQUEST = "contact_request", "Contact request"
        OTHER = "other", "Other (not yet classified)"

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.OTHER)
    thank_you_url = models.URLField(blank=True, help_text="Where a hosted form sends people after submitting")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name or self.slug


# Baton's own event type: a manual score adjustment (scoring.adjustments). No client may send one.
ADJUSTMENT = "score_adjustment"


class Event(models.Model):
    # No index of their own: event_unique_per_source leads with the source, event_contact_time_idx with the contact.
    # No database constraints either: their checks ran a lookup and a key-share lock per event, a third of what
    # PostgreSQL spent on a batch of 500. Ingest's statement locks the contacts it stores events on itself, once
    # each (leads.ingest); a deleted contact's events go with it, and a source with events is kept, through the ORM.
    source = models.ForeignKey(Source, on_delete=models.PROTECT, related_name="+", db_index=False, db_constraint=False)
    client_id = models.CharField(max_length=128, help_text="The sender's id; a repeat is a duplicate")
    contact = models.ForeignKey(
        "crm.Contact",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="events",
        db_index=False,
        db_constraint=False,
    )
    visitor_id = models.CharField(max_length=64, blank=True, default="")
    type = models.CharField(max_length=64)
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField()
    properties = models.JSONField(default=dict)
    # The acquisition channel this event points at (utm_source, else an outside referrer's host).
    channel = models.CharField(max_length=100, blank=True, default="")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["source", "client_id"], name="event_unique_per_source")]
        indexes = [
            models.Index(fields=["contact", "occurred_at"], name="event_contact_time_idx"),
            models.Index(
                fields=["visitor_id"], name="event_anonymous_visitor_idx", condition=models.Q(contact__isnull=True)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} at {self.occurred_at:%Y-%m-%d %H:%M}"


class Visitor(models.Model):
    """An anonymous visitor id (the snippet's cookie) known to belong to a contact."""

    visitor_id = models.CharField(max_length=64, primary_key=True)
    contact = models.ForeignKey("crm.Contact", on_delete=models.CASCADE, related_name="visitors")
    identified_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.visitor_id


class ImportFile(models.Model):
    """An uploaded CSV file, checked on arrival (UTF-8, a header row) and kept in PostgreSQL in chunks, so any
    worker can read it, in constant memory, from any offset."""

    name = models.CharField(max_length=255)
    size = models.BigIntegerField(help_text="Bytes")
    delimiter = models.CharField(max_length=1, default=",")
    headers = models.JSONField(default=list)
    rows = models.PositiveIntegerField(default=0, help_text="Data rows (after the header), empty ones included")
    data_offset = models.BigIntegerField(default=0, help_text="Where the first row after the header starts")
    uploaded_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class ImportFileChunk(models.Model):
    file = models.ForeignKey(ImportFile, on_delete=models.CASCADE, related_name="chunks", db_index=False)
    seq = models.PositiveIntegerField()
    data = models.BinaryField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["file", "seq"], name="import_chunk_unique")]

    def __str__(self) -> str:
        return f"{self.file_id}:{self.seq}"


class Import(models.Model):
    """One run of a file into the contacts (or a dry run of it): its options, progress and outcome."""

    class State(models.TextChoices):
        DRAFT = "draft", "Not started"
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    class Mode(models.TextChoices):
        UPSERT = "upsert", "Create new and update existing contacts"
        CREATE = "create", "Create new contacts only"
        UPDATE = "update", "Update existing contacts only"

    file = models.ForeignKey(ImportFile, on_delete=models.PROTECT, related_name="imports")
    mapping = models.JSONField(default=dict, help_text="CSV header → field ('profile.<key>', or '' to ignore)")
    mode = models.CharField(max_length=10, choices=Mode.choices, default=Mode.UPSERT)
    overwrite = models.BooleanField(default=False, help_text="A value replaces a filled field (else fills empty ones)")
    dry_run = models.BooleanField(default=False)
    state = models.CharField(max_length=10, choices=State.choices, default=State.DRAFT)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    source = models.ForeignKey(
        Source, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", help_text="The API key's source"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    problem = models.TextField(blank=True)
    # Where the next batch starts (a record boundary) and its row number: a lost worker's successor resumes here.
    offset = models.BigIntegerField(default=0)
    next_row = models.PositiveIntegerField(default=1)
    rows = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["-created_at"], name="import_recent_idx")]

    def __str__(self) -> str:
        return f"{'dry run' if self.dry_run else 'import'} {self.pk} of {self.file}"

    @property
    def finished(self) -> bool:
        return self.state in (self.State.DONE, self.State.FAILED)

    @property
    def percent(self) -> int:
        if self.finished:
            return 100
        return min(99, (self.next_row - 1) * 100 // max(1, self.file.rows))


class ImportRow(models.Model):
    """The emails a running import has taken so far, with their rows: a repeat inside one file meets the first
    here (unique per import), whichever batch either falls in. Deleted when the import finishes."""

    run = models.ForeignKey(Import, on_delete=models.CASCADE, related_name="+", db_index=False)
    row = models.PositiveIntegerField()
    email = models.CharField(max_length=254)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "email"], name="import_row_email_unique")]

    def __str__(self) -> str:
        return f"row {self.row}: {self.email}"


class ImportProblem(models.Model):
    """A row an import skipped, why, and its cells as the file had them (for the downloadable error file)."""

    run = models.ForeignKey(Import, on_delete=models.CASCADE, related_name="problems", db_index=False)
    row = models.PositiveIntegerField()
    field = models.CharField(max_length=100)
    message = models.CharField(max_length=300)
    cells = models.JSONField(default=list)

    class Meta:
        indexes = [models.Index(fields=["run", "row"], name="import_problem_idx")]

    def __str__(self) -> str:
        return f"row {self.row}: {self.field} {self.message}"
