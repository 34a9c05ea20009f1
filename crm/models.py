"""Companies, contacts, the lifecycle history of each contact, and the outgoing webhooks (endpoints, outbox)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex, OpClass
from django.db import models
from django.db.models import F, FilteredRelation, Func, JSONField, Q, Subquery, Value
from django.db.models.functions import Coalesce, Lower, Now, Upper


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


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# A score's last activity with "never" as the epoch: the leads list's activity sort and the index serving it.
ACTIVE_AT = Coalesce(F("last_activity_at"), Value(EPOCH))


def live_number() -> Subquery:
    """The number of the criteria version whose scores readers see, as a subquery."""
    return Subquery(ScoreVersion.objects.values("live")[:1])


class Breakdown(Func):
    """Why a score is what it is, as stored facts of it read with its version's legend (``ScoreLegend``):
    [{"rule", "kind", "events", "points"}], each behaviour rule with events (in rule order), the manual
    adjustments, each fit rule matched. It adds up to the score: the points are the shares it was summed from.
    ``Breakdown("live__")`` reads the score joined as ``live``."""

    output_field = JSONField()
    FACTS = ("version", "counts", "shares", "manual", "manual_n", "fits")
    SQL = """(SELECT coalesce(jsonb_agg(x.entry ORDER BY x.n), '[]'::jsonb) FROM
        (SELECT {version} AS version, {counts} AS counts, {shares} AS shares, {manual} AS manual,
            {manual_n} AS manual_n, {fits} AS fits) s
        CROSS JOIN crm_scorelegend l
        CROSS JOIN LATERAL (
            SELECT i AS n, jsonb_build_object('rule', l.behaviour[i], 'kind', 'behaviour', 'events', s.counts[i],
                'points', s.shares[i]) AS entry
            FROM generate_subscripts(s.counts, 1) i WHERE s.counts[i] > 0
            UNION ALL
            SELECT 100000, jsonb_build_object('rule', l.manual, 'kind', 'manual', 'events', s.manual_n,
                'points', floor(s.manual * 100 + 0.5) / 100)
            WHERE s.manual_n > 0
            UNION ALL
            SELECT 200000 + j, jsonb_build_object('rule', l.fit[j], 'kind', 'fit', 'events', NULL,
                'points', l.fit_points[j])
            FROM generate_subscripts(l.fit, 1) j WHERE s.fits[j]
        ) x
        WHERE l.version = s.version)"""

    def __init__(self, prefix: str) -> None:
        super().__init__(*(F(prefix + name) for name in self.FACTS))

    def as_sql(self, compiler, connection, **extra):
        parts, params = [], []
        for expression in self.get_source_expressions():
            sql, expression_params = compiler.compile(expression)
            parts.append(sql)
            params.extend(expression_params)
        return self.SQL.format(**dict(zip(self.FACTS, parts, strict=True))), params


class ContactQuerySet(models.QuerySet):
    def scored(self) -> ContactQuerySet:
        """The contacts with their live score's fields (``Score.READ``), named as they read (a contact not scored
        yet reads 0, C, steady)."""
        live = FilteredRelation("scores", condition=Q(scores__version=live_number()))
        return self.annotate(live=live).annotate(
            score=Coalesce(F("live__score"), 0),
            fit_score=Coalesce(F("live__fit_score"), 0.0),
            engagement_score=Coalesce(F("live__engagement_score"), 0.0),
            grade=Coalesce(F("live__grade"), Value(Grade.C)),
            trend=Coalesce(F("live__trend"), Value(Trend.STEADY)),
            breakdown=Breakdown("live__"),
            last_activity_at=F("live__last_activity_at"),
            scored_at=F("live__scored_at"),
            criteria_version=F("live__version"),
        )


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


def full_name(first: str | None, last: str | None) -> str:
    """A person's name as the pages show it (a contact's, a user's), empty without either part."""
    return f"{first or ''} {last or ''}".strip()


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
    stage_held = models.BooleanField(
        default=False, db_default=False, help_text="Put in lead or mql by a marketer: scoring leaves it there"
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="owned_contacts"
    )
    email_opt_out = models.BooleanField(default=False, db_default=False)
    # When sales last rejected ("recycled") the contact; only later activity can promote it again.
    recycled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_default=Now())
    updated_at = models.DateTimeField(auto_now=True, db_default=Now())

    objects = ContactQuerySet.as_manager()

    class Meta:
        indexes = [
            # The leads list's "Newest" sort, keyset-paged on (created_at, id); its other sorts are the score's. No
            # index holds the stage (the score's copy has one): a move is then a heap-only update.
            models.Index(fields=["-created_at", "-id"], name="contact_created_idx"),
            models.Index(Upper("channel"), name="contact_channel_ci_idx"),
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
        return full_name(self.first_name, self.last_name)


class ContactActivity(models.Model):
    """What every ingest writes about a contact, kept off the wide, much-indexed contact row.

    Ingest moves ``last_event_at`` and sets ``stale_since``; the scoring worker rescores stale contacts,
    copies ``last_event_at`` to its score (``Score.last_activity_at``) and clears ``stale_since``.
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


# pg advisory lock key: a stage move copies the stage to the contact's scores holding it shared (the trigger of
# migration 0017); the switch to a newly computed version holds it alone while it puts its rows' stages right.
STAGE_COPY = 7_340_004


class ScoreQuerySet(models.QuerySet):
    def live(self) -> ScoreQuerySet:
        """The scores readers see: the live version's."""
        return self.filter(version=live_number())


class Score(models.Model):
    """A contact's score under one criteria version, written by scoring only: off the contact row, so ingest and
    rescoring never write the same rows, and narrow, so a new score is a cheap row version.

    Every contact has one from its creation (a trigger writes a zero placeholder under the live version, and under a
    version being computed, so a new contact is listed before its first score, and after the switch). Readers see
    the live version's rows (``ScoreVersion``); while a newly published version is being computed its rows stand
    beside the live ones, and one update of ``ScoreVersion`` switches every reader at once. Its breakdown is not
    stored but read (``Breakdown``): from the shares, counts, manual points and fit matches under the names of its
    version's ``ScoreLegend``. The facts after ``fits`` let the hourly decay refresh rescale a score without reading
    events (scoring.sql): per behaviour rule the decayed sum as of ``facts_at`` (all events, and since the last
    rejection), and when a window fact next changes (the trend's 14/28-day windows, a manual adjustment's expiry);
    and the trend's counts, with which a newly published version whose rules match the same events is scored without
    reading them.
    """

    pk = models.CompositePrimaryKey("version", "contact")
    version = models.PositiveIntegerField()
    # No database constraint: its key-share lock on the contact for every score written would make every
    # rescore write the contact rows too (a deleted contact's scores go with it through the ORM).
    contact = models.ForeignKey(
        Contact, on_delete=models.CASCADE, db_constraint=False, db_index=False, related_name="scores"
    )
    score = models.IntegerField(default=0, help_text="fit + engagement, rounded")
    fit_score = models.FloatField(default=0)
    engagement_score = models.FloatField(default=0)
    promotion_score = models.IntegerField(default=0, help_text="The score counting only activity since a rejection")
    intent_at = models.DateTimeField(null=True, help_text="The latest sales-intent form since a rejection")
    grade = models.CharField(max_length=1, choices=Grade.choices, default=Grade.C)
    trend = models.CharField(max_length=10, choices=Trend.choices, default=Trend.STEADY)
    # Why the score is what it is (``Breakdown``): each behaviour rule's points in cents as of ``scored_at`` (the
    # score sums them), how many manual adjustments count (``manual``: their points), which fit rules matched.
    shares = ArrayField(models.FloatField(), default=list)
    manual_n = models.IntegerField(default=0)
    fits = ArrayField(models.BooleanField(), default=list)
    last_activity_at = models.DateTimeField(null=True)
    scored_at = models.DateTimeField(null=True, help_text="Empty for a new contact's placeholder: not scored yet")
    facts_at = models.DateTimeField(null=True, help_text="The instant the sums are decayed to (scored from events)")
    sums = ArrayField(models.FloatField(), default=list)
    fresh_sums = ArrayField(models.FloatField(), default=list)
    counts = ArrayField(models.IntegerField(), default=list)
    manual = models.FloatField(default=0)
    manual_fresh = models.FloatField(default=0)
    recompute_at = models.DateTimeField(null=True, help_text="When a window fact changes: rescore from events")
    # Per behaviour rule, its events in the trend's last 14 days and the 14 before (as of facts_at): with them a
    # version whose rules match the same events takes these facts as they are (scoring.sql.carried).
    recent_counts = ArrayField(models.IntegerField(), default=list)
    prior_counts = ArrayField(models.IntegerField(), default=list)
    # The contact's stage, beside its score so that the leads list's "MQLs first" and stage filter walk one index
    # (STAGE_COPY). Written with each new score row; kept by a trigger on the contact's updates; put right at the
    # switch for the rows of a version computed while contacts moved.
    stage = models.CharField(max_length=20, choices=Stage.choices, default=Stage.LEAD, db_default=Stage.LEAD)

    objects = ScoreQuerySet.as_manager()
    # What a contact reads of its score (Contact.objects.scored()).
    READ = ("score", "fit_score", "engagement_score", "grade", "trend", "last_activity_at", "scored_at")

    class Meta:
        indexes = [
            # The leads list's sorts, each keyset-paged on (sort key, contact) within the live version; its grade
            # and trend filters walk them too (each grade or trend is a large share of contacts).
            models.Index(F("version"), F("score").desc(), F("contact_id").desc(), name="score_rank_idx"),
            models.Index(
                F("version"), F("stage"), F("score").desc(), F("contact_id").desc(), name="score_stage_rank_idx"
            ),
            models.Index(F("version"), ACTIVE_AT.desc(), F("contact_id").desc(), name="score_activity_idx"),
        ]

    def __str__(self) -> str:
        return f"v{self.version} score of contact {self.contact_id}: {self.score}"


class ScoreLegend(models.Model):
    """What a criteria version's score facts stand for in its breakdown: the names of its behaviour rules (one per
    share and count, in order), of its fit rules and their points (one per fit match), and of manual adjustments.
    Written by scoring with the version's first scores; never changed (a published version's rules are fixed)."""

    version = models.PositiveIntegerField(primary_key=True)
    behaviour = ArrayField(models.TextField())
    fit = ArrayField(models.TextField())
    fit_points = ArrayField(models.FloatField())
    manual = models.TextField()

    def __str__(self) -> str:
        return f"legend of v{self.version}"


class ScoreVersion(models.Model):
    """One row: the criteria version whose scores readers see. Changed only when a version's scores are complete."""

    live = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"live scores: v{self.live}"


class StageChange(models.Model):
    """One move in a contact's lifecycle. Written once by ``crm.lifecycle.move`` and never rewritten."""

    # No database constraint: its check at commit (a lookup and a key-share lock of the contact per move) was two
    # thirds of a publish's commits (15 of 22 ms a chunk of 1,000 moves). Every move locks its contact before it
    # writes the change (crm.lifecycle); a deleted contact's changes go with it through the ORM.
    contact = models.ForeignKey(
        Contact, on_delete=models.CASCADE, related_name="stage_changes", db_index=False, db_constraint=False
    )
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
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="notes", db_index=False)
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

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries", db_index=False)
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
