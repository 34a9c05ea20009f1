"""The marketing-to-sales queue: one entry each time a contact enters sql."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from crm.contact_json import iso

OPEN = ("waiting", "claimed", "working", "accepted")


class QueueEntry(models.Model):
    class Status(models.TextChoices):
        WAITING = "waiting", "Waiting for a rep"
        CLAIMED = "claimed", "Claimed"
        WORKING = "working", "First touch logged"
        ACCEPTED = "accepted", "Accepted (opportunity)"
        REJECTED = "rejected", "Rejected back to marketing"
        WON = "won", "Won"
        LOST = "lost", "Lost"

    class Reason(models.TextChoices):
        NOT_READY = "not_ready", "Not ready / timing"
        NO_BUDGET = "no_budget", "No budget"
        NOT_DECISION_MAKER = "not_decision_maker", "Not a decision maker"
        BAD_FIT = "bad_fit", "Bad fit"
        DUPLICATE = "duplicate", "Duplicate"
        OTHER = "other", "Other"

    class LostReason(models.TextChoices):
        PRICE = "price", "Price"
        COMPETITOR = "competitor", "Chose a competitor"
        NO_DECISION = "no_decision", "No decision / stalled"
        TIMING = "timing", "Timing"
        NO_FIT = "no_fit", "Product does not fit"
        OTHER = "other", "Other"

    class Touch(models.TextChoices):
        CALL = "call", "Call"
        EMAIL = "email", "Email"
        MEETING = "meeting", "Meeting"

    contact = models.ForeignKey("crm.Contact", on_delete=models.CASCADE, related_name="queue_entries")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.WAITING)
    # The handoff note: who sent it, why, and the facts sales asked for.
    sent_by = models.CharField(max_length=150, help_text='A marketer\'s name, or "scoring v<N>"')
    reasons = models.JSONField(default=list, help_text="Top score reasons when it entered the queue")
    note = models.TextField(blank=True, help_text="The marketer's words")
    facts = models.JSONField(default=dict, help_text="Job title, company, size, phone, what they requested")
    score = models.IntegerField()
    entered_at = models.DateTimeField()
    unclaimed_due_at = models.DateTimeField()
    first_touch_minutes = models.PositiveIntegerField(help_text="SLA from claim to first touch, fixed on entry")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="queue_entries",
        db_index=False,  # queue_owner_idx leads with it
    )
    claimed_at = models.DateTimeField(null=True, blank=True)
    first_touch_due_at = models.DateTimeField(null=True, blank=True)
    first_touch_at = models.DateTimeField(null=True, blank=True)
    first_touch_kind = models.CharField(max_length=10, choices=Touch.choices, blank=True)
    first_touch_note = models.TextField(blank=True)
    flagged = models.BooleanField(default=False, help_text="Came back after an owner let the SLA pass")
    breaches = models.PositiveIntegerField(default=0)
    closed_at = models.DateTimeField(null=True, blank=True)
    rejection_reason = models.CharField(max_length=20, choices=Reason.choices, blank=True)
    rejection_text = models.TextField(blank=True)
    lost_reason = models.CharField(max_length=20, choices=LostReason.choices, blank=True)
    # Round robin: the rep it is offered to, until when; routed_at says routing has looked at it.
    offered_to = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="offers"
    )
    offer_expires_at = models.DateTimeField(null=True, blank=True)
    routed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "queue entries"
        constraints = [
            models.UniqueConstraint(fields=["contact"], condition=Q(status__in=OPEN), name="one_open_entry_per_contact")
        ]
        indexes = [
            models.Index(fields=["-score", "entered_at"], name="queue_priority_idx", condition=Q(status="waiting")),
            models.Index(fields=["owner", "status"], name="queue_owner_idx"),
            models.Index(fields=["offered_to"], name="queue_offer_idx", condition=Q(offered_to__isnull=False)),
            models.Index(fields=["entered_at"], name="queue_unrouted_idx", condition=Q(routed_at__isnull=True)),
            # Reports: claims of a period (speed to lead), rejections of a period.
            models.Index(fields=["claimed_at"], name="queue_claimed_idx", condition=Q(claimed_at__isnull=False)),
            models.Index(fields=["closed_at"], name="queue_rejected_idx", condition=Q(status="rejected")),
        ]

    def __str__(self) -> str:
        return f"{self.contact_id} ({self.status})"

    def as_json(self) -> dict:
        """The entry as outgoing webhooks show it (load ``owner`` with it)."""
        return {
            "id": self.pk,
            "status": self.status,
            "sent_by": self.sent_by,
            "note": self.note,
            "score": self.score,
            "reasons": self.reasons,
            "entered_at": iso(self.entered_at),
            "unclaimed_due_at": iso(self.unclaimed_due_at),
            "owner": self.owner.email if self.owner else None,
            "claimed_at": iso(self.claimed_at),
            "first_touch_due_at": iso(self.first_touch_due_at),
            "first_touch_at": iso(self.first_touch_at),
            "rejection_reason": self.rejection_reason,
            "rejection_text": self.rejection_text,
            "breaches": self.breaches,
        }


class SlaBreach(models.Model):
    class Kind(models.TextChoices):
        UNCLAIMED = "unclaimed", "Waited unclaimed past its SLA"
        FIRST_TOUCH = "first_touch", "No first touch within its SLA"

    entry = models.ForeignKey(QueueEntry, on_delete=models.CASCADE, related_name="sla_breaches")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    at = models.DateTimeField()
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        indexes = [models.Index(fields=["at"], name="breach_at_idx")]  # reports: the breaches of a period

    def __str__(self) -> str:
        return f"{self.kind} on {self.entry_id}"


class Desk(models.Model):
    """The sales desk's settings: one row (pk 1). How new SQLs reach reps, and the team's working hours."""

    class Mode(models.TextChoices):
        OPEN = "open", "Open queue (reps claim)"
        ROUND_ROBIN = "round_robin", "Round robin (offered to the next available rep)"

    mode = models.CharField(max_length=12, choices=Mode.choices, default=Mode.OPEN)
    offer_minutes = models.PositiveIntegerField(default=5, help_text="How long an offer waits for its rep")
    business_hours = models.BooleanField(default=False, help_text="SLA clocks count only working time")
    time_zone = models.CharField(max_length=64, default="UTC")
    # {"0": ["09:00", "17:00"], …} by ISO weekday - 1 (Monday 0); a missing day is not worked.
    hours = models.JSONField(default=dict)
    holidays = models.JSONField(default=list, help_text="ISO dates not worked")

    def __str__(self) -> str:
        return "Sales desk"

    @classmethod
    def get(cls) -> Desk:
        return cls.objects.get_or_create(pk=1)[0]


class Rep(models.Model):
    """A sales rep's place in round robin: available or not, weight, and its stride-scheduling pass."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, primary_key=True, on_delete=models.CASCADE)
    available = models.BooleanField(default=False)
    weight = models.PositiveSmallIntegerField(default=1)
    passed = models.FloatField(default=0, help_text="Offers received / weight, plus where it joined")
    last_assigned_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"rep {self.user_id}"


class RoutingRule(models.Model):
    """New SQLs that match go to this pool of reps; the first matching rule (by position) wins."""

    position = models.PositiveIntegerField(default=0)
    name = models.CharField(max_length=100)
    channel = models.CharField(max_length=100, blank=True, help_text="Matches case-insensitively; empty: any")
    country = models.CharField(max_length=100, blank=True)
    min_size = models.PositiveIntegerField(null=True, blank=True)
    max_size = models.PositiveIntegerField(null=True, blank=True)
    grade = models.CharField(max_length=1, blank=True, choices=[(g, g) for g in "ABCD"])
    reps = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="+")

    class Meta:
        ordering = ["position", "pk"]

    def __str__(self) -> str:
        return self.name
