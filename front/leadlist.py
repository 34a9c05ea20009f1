"""The leads list: filters held in the URL, text search on trigram indexes, keyset pages."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connection
from django.db.models import Count, F, Q, QuerySet, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from crm.models import MQL_FIRST, Company, Contact, Grade, Stage, Trend
from front import reports
from front.forms import MAX_ID
from front.report_query import Moment, end_of, start_of
from handoff.models import QueueEntry

PAGE_SIZE = 50
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # "never active" sorts last
# Each sort: the annotated keys it orders by (descending), then id.
SORTS = {
    "priority": ("MQLs first", ("mql_first", "score")),
    "score": ("Score", ("score",)),
    "activity": ("Last activity", ("active_at",)),
    "created": ("Newest", ("created_at",)),
}
ACTIVE = {"7": 7, "30": 30, "90": 90}
SCORE_BOUND = 1_000_000


def _labelled(label: str) -> forms.Select:
    return forms.Select(attrs={"aria-label": label})


class LeadFilters(forms.Form):
    q = forms.CharField(required=False, max_length=100, label="Search")
    stage = forms.ChoiceField(required=False, choices=[("", "Any stage"), *Stage.choices], widget=_labelled("Stage"))
    grade = forms.ChoiceField(required=False, choices=[("", "Any grade"), *Grade.choices], widget=_labelled("Grade"))
    trend = forms.ChoiceField(required=False, choices=[("", "Any trend"), *Trend.choices], widget=_labelled("Trend"))
    channel = forms.CharField(required=False, max_length=100)
    min_score = forms.IntegerField(required=False, label="Score from", min_value=-SCORE_BOUND, max_value=SCORE_BOUND)
    max_score = forms.IntegerField(required=False, label="to", min_value=-SCORE_BOUND, max_value=SCORE_BOUND)
    active = forms.ChoiceField(
        required=False,
        label="Last activity",
        choices=[
            ("", "Any time"),
            ("7", "Last 7 days"),
            ("30", "Last 30 days"),
            ("90", "Last 90 days"),
            ("never", "Never"),
        ],
        widget=_labelled("Last activity"),
    )
    owner = forms.RegexField(
        required=False, regex=r"^(me|none|[0-9]{1,18})$", error_messages={"invalid": "Choose an owner from the list."}
    )
    sort = forms.ChoiceField(required=False, choices=[(k, label) for k, (label, _) in SORTS.items()])
    after = forms.CharField(required=False, max_length=500, widget=forms.HiddenInput)
    # The contacts behind a number on the reports page (front.reports.contacts): which number, of which period.
    report = forms.ChoiceField(
        required=False, choices=[("", ""), ("funnel", "funnel"), ("rejected", "rejected"), ("claimed", "claimed")]
    )
    reached = forms.ChoiceField(required=False, choices=[("", ""), *((s, s) for s in reports.FUNNEL)])
    mode = forms.ChoiceField(required=False, choices=[("cohort", "cohort"), ("period", "period")])
    reason = forms.ChoiceField(required=False, choices=[("", ""), *QueueEntry.Reason.choices])
    rep = forms.IntegerField(required=False, min_value=1, max_value=MAX_ID)
    window = forms.IntegerField(required=False, min_value=1, max_value=730)
    since = Moment()
    until = Moment()

    @property
    def error_rows(self) -> list[tuple[str, str]]:
        """(label, messages) for people: "Score to", not "max_score"."""
        return [
            (
                "" if name == "__all__" else str(self.fields[name].label or name.replace("_", " ")).capitalize(),
                " ".join(e),
            )
            for name, e in self.errors.items()
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        low, high = data.get("min_score"), data.get("max_score")
        if low is not None and high is not None and low > high:
            self.add_error("max_score", "Must not be below the lower bound.")
        if data.get("report") and not (data.get("since") and data.get("until")):
            self.add_error("report", "A report's contacts need its period (since and until).")
        if data.get("report") == "funnel" and not data.get("reached"):
            self.add_error("reached", "Say which stage of the funnel.")
        if data.get("after"):
            try:
                data["after"] = json.loads(base64.urlsafe_b64decode(data["after"].encode()))
            except ValueError:
                self.add_error("after", "That page link is broken; start from the first page.")
        return data


@dataclass(frozen=True)
class Page:
    contacts: list[Contact]
    next_cursor: str | None


def filtered(data: dict[str, Any], user) -> QuerySet[Contact]:
    """Every contact the cleaned filters match (what the list pages through, and what Export writes)."""
    found = Contact.objects.all()
    for word in (data.get("q") or "").split()[:5]:
        found = found.filter(pk__in=_matching(word))
    for field in ("stage", "grade", "trend"):
        if data.get(field):
            found = found.filter(**{field: data[field]})
    if data.get("channel"):
        found = found.filter(channel__iexact=data["channel"].strip())
    if data.get("report"):
        found = found.filter(pk__in=_in_report(data).values("pk"))
    if data.get("min_score") is not None:
        found = found.filter(score__gte=data["min_score"])
    if data.get("max_score") is not None:
        found = found.filter(score__lte=data["max_score"])
    if data.get("active") == "never":
        found = found.filter(last_activity_at=None)
    elif data.get("active") in ACTIVE:
        found = found.filter(last_activity_at__gte=timezone.now() - timedelta(days=ACTIVE[data["active"]]))
    owner = data.get("owner") or ""
    if owner == "me":
        found = found.filter(owner=user)
    elif owner == "none":
        found = found.filter(owner=None)
    elif owner:
        found = found.filter(owner_id=int(owner))
    return found


def _in_report(data: dict[str, Any]) -> QuerySet[Contact]:
    scope = reports.Scope(
        start=start_of(data["since"]), end=end_of(data["until"]), window_days=data.get("window") or 90
    )
    return reports.contacts(
        scope,
        kind=data["report"],
        stage=data.get("reached") or "",
        mode=data.get("mode") or "cohort",
        reason=data.get("reason") or "",
        rep=data.get("rep") or 0,
    )


def _matching(word: str) -> QuerySet:
    """Ids of contacts with ``word`` in their email, name or company: a union, so each part uses its own
    trigram index (an OR across the company join would scan every contact)."""
    ids = Contact.objects.values("id")
    return (
        ids.filter(email__icontains=word)
        .union(ids.filter(first_name__icontains=word), ids.filter(last_name__icontains=word))
        .union(ids.filter(company__in=Company.objects.filter(name__icontains=word).values("id")))
    )


def _after(keys: tuple[str, ...], values: list) -> Q:
    """Rows after ``values`` in (keys..., id) descending order: the keyset condition."""
    *key_values, last_id = values
    condition = Q(id__lt=last_id)
    for key, value in reversed(list(zip(keys, key_values, strict=True))):
        condition = Q(**{f"{key}__lt": value}) | (Q(**{key: value}) & condition)
    return condition


def _decode_after(keys: tuple[str, ...], after: Any) -> list | None:
    """The cursor's (keys..., id) with their types back, or None for a cursor that does not fit this sort."""
    if not isinstance(after, list) or len(after) != len(keys) + 1:
        return None
    try:
        values = [
            datetime.fromisoformat(v) if key in ("active_at", "created_at") else int(v)
            for key, v in zip(keys, after[:-1], strict=True)
        ]
        last_id = int(after[-1])
    except (TypeError, ValueError):
        return None
    numbers = [v for v in values if isinstance(v, int)] + [last_id]
    if any(abs(n) > MAX_ID for n in numbers) or any(v.tzinfo is None for v in values if isinstance(v, datetime)):
        return None
    return [*values, last_id]


def page(data: dict[str, Any], *, user) -> Page:
    """One page of contacts for the cleaned filters. Two queries: the page and its related rows."""
    keys = SORTS[data.get("sort") or "priority"][1]
    found = filtered(data, user).annotate(
        mql_first=MQL_FIRST,
        active_at=Coalesce(F("last_activity_at"), Value(EPOCH)),
    )
    after = _decode_after(keys, data.get("after"))
    if after is not None:
        found = found.filter(_after(keys, after))
    rows = list(found.select_related("company", "owner").order_by(*(f"-{k}" for k in keys), "-id")[: PAGE_SIZE + 1])
    cursor = None
    if len(rows) > PAGE_SIZE:
        rows, last = rows[:PAGE_SIZE], rows[PAGE_SIZE - 1]
        values = [getattr(last, k) for k in keys]
        values = [v.isoformat() if isinstance(v, datetime) else v for v in values] + [last.pk]
        cursor = base64.urlsafe_b64encode(json.dumps(values).encode()).decode()
    return Page(rows, cursor)


COUNT_EXACT_UP_TO = 10_000
CHANNELS_CACHE = ("leadlist:channels", 300)


def total(found: QuerySet[Contact]) -> tuple[int, bool]:
    """How many contacts the filters match: exact up to COUNT_EXACT_UP_TO (a bounded count), beyond that the
    planner's estimate, said as "about" (a count of a million rows would cost more than the page)."""
    bounded = found.order_by()[: COUNT_EXACT_UP_TO + 1].count()
    if bounded <= COUNT_EXACT_UP_TO:
        return bounded, True
    sql, params = found.order_by().values("id").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        estimate = int(cursor.fetchone()[0][0]["Plan"]["Plan Rows"])
    return max(estimate, bounded), False


def channels() -> list[str]:
    """The first-touch channels known, most common first (cached for a few minutes: a million-row GROUP BY)."""
    key, seconds = CHANNELS_CACHE
    known = cache.get(key)
    if known is None:
        known = list(
            Contact.objects.exclude(channel="")
            .values_list("channel", flat=True)
            .annotate(n=Count("id"))
            .order_by("-n")[:100]
        )
        cache.set(key, known, seconds)
    return known


def owners() -> list[tuple[str, str]]:
    users = get_user_model().objects.filter(groups__name="sales").order_by("first_name").distinct()
    return [("", "Anyone"), ("me", "Me"), ("none", "Nobody")] + [
        (str(u.pk), u.get_full_name() or u.email) for u in users
    ]
