"""Qualification criteria (versioned), score history and full-rescore runs."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class CriteriaVersion(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        ACTIVE = "active", "Active"
        RETIRED = "retired", "Retired"

    number = models.PositiveIntegerField(unique=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    half_life_days = models.FloatField(default=30, help_text="Behaviour points halve every N days; 0 turns decay off")
    mql_threshold = models.FloatField(default=40)
    sql_threshold = models.FloatField(default=70)
    hysteresis = models.FloatField(default=5)
    intent_days = models.PositiveIntegerField(
        default=30, help_text="SQL requires a sales-intent form (demo or contact request) within this many days"
    )
    grade_a = models.FloatField(default=30, help_text="Fit score for grade A and up")
    grade_b = models.FloatField(default=15)
    grade_c = models.FloatField(default=0)
    sla_first_touch_minutes = models.PositiveIntegerField(default=120)
    sla_unclaimed_minutes = models.PositiveIntegerField(default=60)
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True)
    published_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    republished_from = models.PositiveIntegerField(null=True, blank=True, help_text="The version it is a copy of")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["status"], condition=Q(status="active"), name="one_active_criteria")
        ]

    def __str__(self) -> str:
        return f"v{self.number} ({self.status})"


class BehaviourRule(models.Model):
    class Operator(models.TextChoices):
        EQUALS = "equals", "equals"
        CONTAINS = "contains", "contains"
        STARTS_WITH = "starts_with", "starts with"
        IN_LIST = "in_list", "in list"

    version = models.ForeignKey(CriteriaVersion, on_delete=models.CASCADE, related_name="behaviour_rules")
    position = models.PositiveIntegerField(default=0)
    name = models.CharField(max_length=100)
    event_type = models.CharField(max_length=64)
    # Optional condition on an event property ("form_kind" means the kind of the submitted form).
    property_key = models.CharField(max_length=64, blank=True)
    operator = models.CharField(max_length=12, choices=Operator.choices, blank=True)
    values = models.JSONField(default=list, blank=True, help_text="Matches if any value matches (case-insensitive)")
    points = models.FloatField()
    cap = models.FloatField(null=True, blank=True, help_text="Most points (or, if negative, least) one contact gets")

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return self.name


class FitRule(models.Model):
    class Operator(models.TextChoices):
        EQUALS = "equals", "equals"
        IN_LIST = "in_list", "in list"
        CONTAINS = "contains", "contains"
        GTE = "gte", "≥"
        LTE = "lte", "≤"
        IS_SET = "is_set", "is set"
        IS_NOT_SET = "is_not_set", "is not set"

    version = models.ForeignKey(CriteriaVersion, on_delete=models.CASCADE, related_name="fit_rules")
    position = models.PositiveIntegerField(default=0)
    name = models.CharField(max_length=100)
    field = models.CharField(max_length=80, help_text="A contact or company field, or profile.<key>")
    operator = models.CharField(max_length=12, choices=Operator.choices)
    values = models.JSONField(default=list, blank=True)
    points = models.FloatField()

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return self.name


class ScoreHistory(models.Model):
    """A point on a contact's score chart: written whenever its score or stage changes."""

    # No database constraint, as for the scores: a publish writes a point for every score it moves (a million at
    # 1M contacts), and each point's key-share lock on its contact took 4.6 s of one (a deleted contact's points go
    # with it through the ORM).
    contact = models.ForeignKey(
        "crm.Contact", on_delete=models.CASCADE, db_constraint=False, db_index=False, related_name="score_history"
    )
    at = models.DateTimeField()
    score = models.IntegerField()
    fit_score = models.FloatField()
    engagement_score = models.FloatField()
    stage = models.CharField(max_length=20)

    class Meta:
        indexes = [models.Index(fields=["contact", "at"], name="scorehistory_contact_at_idx")]

    def __str__(self) -> str:
        return f"{self.contact_id}: {self.score} at {self.at:%Y-%m-%d %H:%M}"


class Counted:
    """Work counted in contacts (``done`` of ``total``), for a progress bar."""

    @property
    def percent(self) -> int:
        return 100 if self.finished_at else int(100 * self.done / self.total) if self.total else 0


class RescoreRun(Counted, models.Model):
    """A full rescore (criteria published, or the decay refresh), with progress a page can poll.

    Its worker stamps ``heartbeat_at`` after every chunk: a run whose stamp is old while nobody holds the
    full-rescore lock has lost its worker, and is queued again (``resumes`` counts how often) or failed.
    """

    version = models.ForeignKey(CriteriaVersion, on_delete=models.CASCADE, related_name="+")
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    last_contact_id = models.BigIntegerField(default=0, help_text="Resume point after a worker loss")
    started_at = models.DateTimeField(auto_now_add=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    switched_at = models.DateTimeField(
        null=True, blank=True, help_text="When readers began to see its version (its stage rules follow)"
    )
    replaced = models.PositiveIntegerField(
        null=True, blank=True, help_text="The version its switch replaced: whose scores its stage rules compare"
    )
    resumes = models.PositiveIntegerField(default=0)
    finished_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    problem = models.TextField(blank=True, help_text="Why it stopped before the end")

    class Meta:
        indexes = [
            models.Index(fields=["id"], name="rescorerun_open_idx", condition=Q(finished_at=None, failed_at=None))
        ]

    def __str__(self) -> str:
        return f"rescore v{self.version_id}: {self.done}/{self.total}"

    @property
    def running(self) -> bool:
        return self.finished_at is None and self.failed_at is None


class DraftWork(models.Model):
    """Work a worker does for a draft and keeps with it (a backtest, a preview): its result, or why it stopped.
    Unfinished and unheard of for longer than SILENCE, its worker was lost."""

    SILENCE = timedelta(minutes=10)
    result = models.JSONField(null=True, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    problem = models.TextField(blank=True)

    class Meta:
        abstract = True

    @property
    def last_heard(self) -> datetime:
        return self.started_at

    @property
    def stalled(self) -> bool:
        unfinished = self.finished_at is None and self.failed_at is None
        return unfinished and self.last_heard < timezone.now() - self.SILENCE

    @property
    def running(self) -> bool:
        return self.finished_at is None and self.failed_at is None and not self.stalled


class Backtest(DraftWork):
    """A replay of the last ``days`` of events under a draft and under the active version (scoring.backtest),
    run by a worker; its result stays with the draft. It takes seconds: ten minutes unfinished, it was lost."""

    version = models.ForeignKey(CriteriaVersion, on_delete=models.CASCADE, related_name="backtests")
    days = models.PositiveIntegerField(default=90)
    steps_done = models.PositiveSmallIntegerField(default=0, help_text="0 queued, 1 replaying, 2 done")

    def __str__(self) -> str:
        return f"backtest of v{self.version_id} over {self.days} days"

    @property
    def percent(self) -> int:
        return 100 if self.finished_at else 50 * self.steps_done

    @property
    def rows(self) -> list[tuple[str, dict]]:
        """The result's two versions for the page, each with its busiest week."""
        rows = [("Active", self.result["active"]), ("Draft", self.result["draft"])] if self.result else []
        return [(label, v | {"busiest": max(v["sql_per_week"], default=0)}) for label, v in rows]


class PreviewRun(Counted, DraftWork):
    """What publishing a draft would do (scoring.criteria.preview), computed by a worker pass by pass, with
    progress a page can poll; the result stays with the draft until the draft changes. A pass takes seconds:
    nothing heard for two minutes, it was lost."""

    SILENCE = timedelta(minutes=2)
    version = models.ForeignKey(CriteriaVersion, on_delete=models.CASCADE, related_name="previews")
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"preview of v{self.version_id}: {self.done}/{self.total}"

    @property
    def last_heard(self) -> datetime:
        return self.heartbeat_at or self.started_at
