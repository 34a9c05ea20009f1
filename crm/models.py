"""Companies, contacts, the lifecycle history of each contact, and the outgoing webhooks (endpoints, outbox)."""

from __future__ import annotations

import json

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex, OpClass
from django.db import models
from django.db.models import Case, F, JSONField, Q, Value, When
from django.db.models.functions import Lower, Now, Upper


class Stage(models.TextChoices):
    LEAD = "lead", "Lead"
    MQL = "mql", "MQL"
    SQL = "sql", "SQL"
    OPPORTUNITY = "opportunity", "Opportunity"
    CUSTOMER = "customer", "Customer"
    DISQUALIFIED = "disqualified", "Disqualified"


class Grade(models.TextChoices):
    A = "A"
    B = "B"
    C = "C"
    D = "D"


class Trend(models.TextChoices):
    RISING = "rising", "Rising"
    STEADY = "steady", "Steady"
    COOLING = "cooling", "Cooling"


MQL_FIRST = Case(When(stage="mql", then=Value(1)), default=Value(0), output_field=models.IntegerField())


class Company(models.Model):
    name = models.CharField(max_length=200)
    domain = models.CharField(max_length=253, blank=True, default="", db_default="")
    size = models.PositiveIntegerField(null=True, blank=True, help_text="Number of employees")
    industry = models.CharField(max_length=100, blank=True, default="", db_default="")
    country = models.CharField(max_length=100, blank=True, default="", db_default="")
    created_at = models.DateTimeField(auto_now_add=True, db_default=Now())
    updated_at = models.DateTimeField(auto_now=True, db_default=Now())

    class Meta:
        verbose_name_plural = "companies"
        constraints = [models.UniqueConstraint(Lower("name"), name="company_name_unique_ci")]
        indexes = [
            GinIndex(OpClass(Upper("name"), name="gin_trgm_ops"), name="company_name_trgm"),
            # Imports find a contact's company by its domain.
            models.Index(fields=["domain"], name="company_domain_idx", condition=~Q(domain="")),
        ]

    def __str__(self) -> str:
        return self.name


class Contact(models.Model):
    email = models.EmailField(max_length=254, unique=True)
    first_name = models.CharField(max_length=100, blank=True, default="", db_default="")
    last_name = models.CharField(max_length=100, blank=True, default="", db_default="")
    phone = models.CharField(max_length=50, blank=True, default="", db_default="")
    job_title = models.CharField(max_length=200, blank=True, default="", db_default="")
    seniority = models.CharField(max_length=50, blank=True, default="", db_default="")
    company = models.ForeignKey(Company, null=True, blank=True, on_delete=models.SET_NULL, related_name="contacts")
    country = models.CharField(max_length=100, blank=True, default="", db_default="")
    budget = models.CharField(max_length=100, blank=True, default="", db_default="")
    authority = models.CharField(max_length=100, blank=True, default="", db_default="")
    need = models.CharField(max_length=200, blank=True, default="", db_default="")
    timeline = models.CharField(max_length=100, blank=True, default="", db_default="")
    # Any other profile field a form collects (progressive profiling), scorable by fit rules.
    profile = models.JSONField(default=dict, db_default=Value({}, JSONField()), blank=True)

    channel = models.CharField(max_length=100, blank=True, default="", db_default="", help_text="First-touch channel")
    stage = models.CharField(max_length=20, choices=Stage.choices, default=Stage.LEAD, db_default=Stage.LEAD)
    score = models.IntegerField(default=0, db_default=0, help_text="fit + engagement, rounded")
    fit_score = models.FloatField(default=0, db_default=0)
    engagement_score = models.FloatField(default=0, db_default=0)
    grade = models.CharField(max_length=1, choices=Grade.choices, default=Grade.C, db_default=Grade.C)
    stage_held = models.BooleanField(
        default=False, db_default=False, help_text="Put in lead or mql by a marketer: scoring leaves it there"
    )
    trend = models.CharField(max_length=10, choices=Trend.choices, default=Trend.STEADY, db_default=Trend.STEADY)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="owned_contacts"
    )
    email_opt_out = models.BooleanField(default=False, db_default=False)
    last_activity_at = models.DateTimeField(null=True, blank=True)
    scored_at = models.DateTimeField(null=True, blank=True)
    criteria_version = models.PositiveIntegerField(null=True, blank=True)
    # Why the score is what it is: [{"rule", "kind", "events", "points"}], written with the score; sums to it.
    breakdown = models.JSONField(default=list, db_default=Value([], JSONField()), blank=True)
    # When sales last rejected ("recycled") the contact; only later activity can promote it again.
    recycled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_default=Now())
    updated_at = models.DateTimeField(auto_now=True, db_default=Now())

    class Meta:
        indexes = [
            # The leads list: every sort is keyset-paged on (sort key, id).
            models.Index(fields=["-score", "-id"], name="contact_score_idx"),
            # The default sort, MQLs first: the same expression front.leadlist orders by.
            models.Index(MQL_FIRST.desc(), F("score").desc(), F("id").desc(), name="contact_mql_first_idx"),
            models.Index(fields=["stage", "-score", "-id"], name="contact_stage_score_idx"),
            models.Index(fields=["-last_activity_at", "-id"], name="contact_activity_idx"),
            models.Index(fields=["-created_at", "-id"], name="contact_created_idx"),
            models.Index(fields=["grade"], name="contact_grade_idx"),
            models.Index(fields=["trend"], name="contact_trend_idx"),
            models.Index(fields=["channel"], name="contact_channel_idx"),
            # Text search (icontains is UPPER(col) LIKE UPPER(%q%)): trigram indexes on what it compares.
            *(
                GinIndex(OpClass(Upper(name), name="gin_trgm_ops"), name=f"contact_{name}_trgm")
                for name in ("email", "first_name", "last_name")
            ),
        ]

    def __str__(self) -> str:
        return self.full_name or self.email

    def save(self, *args, **kwargs) -> None:
        self.email = self.email.strip().lower()
        super().save(*args, **kwargs)

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


class ContactActivity(models.Model):
    """What every ingest writes about a contact, kept off the wide, much-indexed contact row.

    Ingest moves ``last_event_at`` and sets ``stale_since``; the scoring worker rescores stale contacts,
    copies ``last_event_at`` to ``Contact.last_activity_at`` and clears ``stale_since``.
    """

    contact = models.OneToOneField(Contact, primary_key=True, on_delete=models.CASCADE, related_name="activity")
    last_event_at = models.DateTimeField(null=True, blank=True)
    stale_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "contact activity"
        indexes = [
            models.Index(
                fields=["stale_since"], name="activity_stale_idx", condition=models.Q(stale_since__isnull=False)
            )
        ]

    def __str__(self) -> str:
        return f"activity of contact {self.contact_id}"


class StageChange(models.Model):
    """One move in a contact's lifecycle. Written once by ``crm.lifecycle.move`` and never rewritten."""

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="stage_changes")
    from_stage = models.CharField(max_length=20, choices=Stage.choices)
    to_stage = models.CharField(max_length=20, choices=Stage.choices)
    at = models.DateTimeField()
    by_user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    by_label = models.CharField(max_length=150, help_text='The user\'s name, or "scoring v<N>"')
    reason = models.TextField(blank=True)
    score = models.IntegerField()
    # When the contact entered ``from_stage`` (its previous change, or its creation): a stay's length, for reports.
    since = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["contact", "at"], name="stagechange_contact_at_idx"),
            # Reports: the changes of a period (funnel by period, weekly rates).
            models.Index(fields=["at"], name="stagechange_at_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.contact_id}: {self.from_stage} → {self.to_stage}"


class Note(models.Model):
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    body = models.TextField(max_length=5000)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["contact", "-created_at"], name="note_contact_idx")]

    def __str__(self) -> str:
        return f"note on {self.contact_id}"


class WebhookEndpoint(models.Model):
    """A receiver of outgoing webhooks (Standard Webhooks), or a Slack incoming webhook.

    Its signing secret is never stored: it is derived from SECRET_KEY and ``secret_salt`` (crm.webhooks), so a
    database dump alone does not reveal it. Rotating the salt rotates the secret.
    """

    class Kind(models.TextChoices):
        WEBHOOK = "webhook", "Webhook (JSON, signed)"
        SLACK = "slack", "Slack (incoming webhook)"

    class Event(models.TextChoices):
        STAGE_CHANGED = "contact.stage_changed", "A contact changed stage"
        HANDOFF_CREATED = "handoff.created", "A lead entered the handoff queue"
        HANDOFF_CLAIMED = "handoff.claimed", "A rep claimed a lead"
        HANDOFF_ACCEPTED = "handoff.accepted", "Sales accepted a lead"
        HANDOFF_REJECTED = "handoff.rejected", "Sales rejected a lead"
        HANDOFF_SLA_BREACHED = "handoff.sla_breached", "A handoff SLA was breached"

    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.WEBHOOK)
    url = models.URLField(max_length=2000)
    events = models.JSONField(default=list, help_text="The event types it receives")
    secret_salt = models.CharField(max_length=64)
    enabled = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=300, blank=True)
    failing_since = models.DateTimeField(null=True, blank=True, help_text="First failure since the last success")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class WebhookDelivery(models.Model):
    """One event for one endpoint: written in the transaction of the change that caused it (the outbox),
    sent by the worker until a 2xx, retried with backoff for up to 3 days."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    message_id = models.CharField(max_length=40, help_text="webhook-id: the same on every attempt")
    type = models.CharField(max_length=40)
    contact = models.ForeignKey(Contact, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    body = models.JSONField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField()
    next_attempt_at = models.DateTimeField()
    delivered_at = models.DateTimeField(null=True, blank=True)
    response_status = models.PositiveIntegerField(null=True, blank=True)
    response_ms = models.PositiveIntegerField(null=True, blank=True)
    response_body = models.TextField(blank=True)
    error = models.CharField(max_length=300, blank=True)

    class Meta:
        verbose_name_plural = "webhook deliveries"
        indexes = [
            # What is due, oldest first; and, per endpoint and contact, what is still ahead of a delivery.
            models.Index(fields=["next_attempt_at"], name="delivery_due_idx", condition=Q(status="pending")),
            models.Index(
                fields=["endpoint", "contact", "id"], name="delivery_order_idx", condition=Q(status="pending")
            ),
            models.Index(fields=["endpoint", "-id"], name="delivery_log_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.type} → {self.endpoint_id} ({self.status})"

    @property
    def body_text(self) -> str:
        """The body as it is sent (for the delivery log)."""
        return json.dumps(self.body, indent=2, ensure_ascii=False)
