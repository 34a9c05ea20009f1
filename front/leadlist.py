"""The leads list: filters held in the URL, text search on trigram indexes, keyset pages."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache as once
from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.postgres.expressions import ArraySubquery
from django.core.cache import cache
from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import BigIntegerField, BooleanField, Case, Count, Expression, F, Func, Q, QuerySet, Value, When
from django.db.models.expressions import Window
from django.urls import get_script_prefix, reverse
from django.utils import timezone

from crm.models import ACTIVE_AT, EPOCH, Company, Contact, Grade, Score, Stage, Trend, full_name
from front import reports
from front.forms import MAX_ID, PlainSelect
from front.report_query import Moment, end_of, start_of
from handoff.models import QueueEntry

PAGE_SIZE = 50


class ContactId(Expression):
    """The joined contact's own id, next to another of its columns ``beside`` (Django would read the score's
    contact_id instead, equal but of another table): so "Newest" orders and keysets on one index's columns."""

    output_field = BigIntegerField()

    def __init__(self, beside: F) -> None:
        super().__init__()
        self.beside = beside

    def resolve_expression(self, query=None, allow_joins=True, reuse=None, summarize=False, for_save=False):
        found = self.copy()
        found.beside = self.beside.resolve_expression(query, allow_joins, reuse, summarize, for_save)
        return found

    def as_sql(self, compiler, connection):
        return f"{compiler.quote_name_unless_alias(self.beside.alias)}.{connection.ops.quote_name('id')}", []


# Each sort: the key it orders by (descending) and the contact id after it, both of one index (the score table's,
# or the contact's for "Newest"); "MQLs first" reads the MQLs, then the rest, each by score (the stage beside the
# score: one index walks a stage by score).
SORTS = {
    "priority": ("MQLs first", F("score"), F("contact_id")),
    "score": ("Score", F("score"), F("contact_id")),
    "activity": ("Last activity", ACTIVE_AT, F("contact_id")),
    "created": ("Newest", F("contact__created_at"), ContactId(F("contact__created_at"))),
}
ACTIVE = {"7": 7, "30": 30, "90": 90}
SCORE_BOUND = 1_000_000


def _labelled(label: str) -> PlainSelect:
    return PlainSelect(attrs={"aria-label": label})


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
    sort = forms.ChoiceField(
        required=False, choices=[(k, label) for k, (label, _, _) in SORTS.items()], widget=PlainSelect
    )
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
class Row:
    """What a row of the list shows of a contact and its live score: read as plain values (fifty model instances
    a page, and the template's lookups through them, cost more than the page's query)."""

    pk: int
    email: str
    name: str  # the full name, else the email
    company: str
    stage: str
    score: int
    grade: str
    trend: str
    channel: str
    last_activity_at: datetime | None
    owner: str
    url: str

    @property
    def stage_label(self) -> str:
        return STAGE_LABELS.get(self.stage, self.stage)


@dataclass(frozen=True)
class Page:
    contacts: list[Row]
    next_cursor: str | None
    total: tuple[int, bool] = (0, True)  # how many the filters match, and whether exactly (else about)


@dataclass(frozen=True)
class Search:
    """One search word, the ids of the contacts it matches (a union, not run) and how many the planner expects."""

    word: str
    ids: QuerySet[Contact]
    expected: int

    @property
    def few(self) -> bool:
        return self.expected <= SEARCH_IDS

    @property
    def condition(self) -> Q:
        """Few: their ids gathered first; many: a condition on each row (a walk meets them early)."""
        return Q(AmongIds(F("contact_id"), ArraySubquery(self.ids))) if self.few else _row_has(self.word)


def searches(data: dict[str, Any]) -> list[Search]:
    """The search words (at most five), asked of the planner together (one EXPLAIN of each word's union, no rows
    read): a word that many contacts match is better met on a walk down the sort's index than gathered whole."""
    words = (data.get("q") or "").split()[:5]
    unions = [_matching(word) for word in words]
    return [Search(*found) for found in zip(words, unions, estimates(unions), strict=True)]


def filtered(data: dict[str, Any], user, words: list[Search] | None = None) -> QuerySet[Score]:
    """The live scores of every contact the cleaned filters match: what the list pages through (each sort is an
    index on the score table, in the live version) and what Export writes; ``words``: ``searches(data)``."""
    found = Score.objects.live()
    for word in searches(data) if words is None else words:
        found = found.filter(word.condition)
    for field in ("grade", "trend"):
        if data.get(field):
            found = found.filter(**{field: data[field]})
    if data.get("stage"):
        found = found.filter(stage=data["stage"])
    if data.get("channel"):
        found = found.filter(contact__channel__iexact=data["channel"].strip())
    if data.get("report"):
        found = found.filter(contact_id__in=_in_report(data).values("pk"))
    if data.get("min_score") is not None:
        found = found.filter(score__gte=data["min_score"])
    if data.get("max_score") is not None:
        found = found.filter(score__lte=data["max_score"])
    # On the activity index's own expression (never active is the epoch), so that index finds them.
    if data.get("active") == "never":
        found = found.alias(active_at=ACTIVE_AT).filter(active_at=EPOCH)
    elif data.get("active") in ACTIVE:
        since = timezone.now() - timedelta(days=ACTIVE[data["active"]])
        found = found.alias(active_at=ACTIVE_AT).filter(active_at__gte=since)
    owner = data.get("owner") or ""
    if owner == "me":
        found = found.filter(contact__owner=user)
    elif owner == "none":
        found = found.filter(contact__owner=None)
    elif owner:
        found = found.filter(contact__owner_id=int(owner))
    return found


def exported(data: dict[str, Any], user) -> QuerySet[Contact]:
    """The contacts the cleaned filters match, with their live scores (Export)."""
    return Contact.objects.scored().filter(pk__in=filtered(data, user).values("contact_id")).order_by("pk")


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


SEARCH_IDS = 5_000  # a search word the planner expects at most this many contacts for is looked up by their ids


def _matching(word: str) -> QuerySet[Contact]:
    """The ids of contacts with ``word`` in their email, name or company: a union, so that each part uses its
    own trigram index (an OR across the company join would scan every contact)."""
    ids = Contact.objects.values("id")
    return ids.filter(email__icontains=word).union(
        ids.filter(first_name__icontains=word),
        ids.filter(last_name__icontains=word),
        ids.filter(company__in=Company.objects.filter(name__icontains=word).values("id")),
        all=True,
    )


class AmongIds(Func):
    """``column = ANY(ARRAY(subquery))``: the ids gathered once, then looked up by index like a list of ids (an
    ``IN (subquery)`` is planned as a join on a guess of its size)."""

    output_field = BooleanField()
    conditional = True

    def as_sql(self, compiler, connection, **extra):
        (column, column_params), (ids, ids_params) = (compiler.compile(e) for e in self.source_expressions)
        return f"{column} = ANY({ids})", [*column_params, *ids_params]


def _row_has(word: str) -> Q:
    """``_matching`` as a condition on each row (for a walk down the sort's index)."""
    return (
        Q(contact__email__icontains=word)
        | Q(contact__first_name__icontains=word)
        | Q(contact__last_name__icontains=word)
        | Q(contact__company__name__icontains=word)
    )


class RowBefore(Func):
    """``(a, b, …) < (x, y, …)``: the keyset condition, which an index on (a, b, …) descending serves."""

    output_field = BooleanField()
    conditional = True

    def __init__(self, columns: list, values: list) -> None:
        super().__init__(*columns, *(Value(v) for v in values))

    def as_sql(self, compiler, connection, **extra):
        parts, params = [], []
        for expression in self.source_expressions:
            sql, p = compiler.compile(expression)
            parts.append(sql)
            params += p
        half = len(parts) // 2
        return f"({', '.join(parts[:half])}) < ({', '.join(parts[half:])})", params


def _decode_after(sort: str, after: Any) -> list | None:
    """The cursor's (mql first?, key, contact id) with their types back, or None for one that does not fit."""
    if not isinstance(after, list) or len(after) != 3:
        return None
    try:
        first, key, last_id = int(after[0]), after[1], int(after[2])
        key = datetime.fromisoformat(key) if sort in ("activity", "created") else int(key)
    except (TypeError, ValueError):
        return None
    if first not in (0, 1) or abs(last_id) > MAX_ID or (isinstance(key, int) and abs(key) > MAX_ID):
        return None
    if isinstance(key, datetime) and key.tzinfo is None:
        return None
    return [first, key, last_id]


def _phases(data: dict[str, Any], sort: str) -> list[int]:
    """The parts a sort reads in turn: MQLs first (1), then the rest (0); other sorts one part (0)."""
    if sort != "priority" or data.get("stage"):
        return [0]
    return [1, 0]


SMALL = 2_000  # filters the planner expects to match at most this many contacts are read whole (and counted)
NOT_FILTERS = {"q", "sort", "after"}  # the search, and how the page is read


def page(data: dict[str, Any], *, user) -> Page:
    """One page of contacts for the cleaned filters, with how many they match. The planner's estimate first (one
    EXPLAIN per search word, else one of the whole filter; no rows read): few matches are sorted and counted in
    one query; many are a keyset walk down the sort's index, their number the estimate, said as "about"."""
    sort = data.get("sort") or "priority"
    after = _decode_after(sort, data.get("after"))
    words = searches(data)
    found = filtered(data, user, words)
    if any(word.few for word in words):
        return _whole(found, data, sort, after)
    if words and all(value in (None, "") for name, value in data.items() if name not in NOT_FILTERS):
        expected = min(word.expected for word in words)  # a search alone: as many as its rarest word
    else:
        expected = estimated(found.values("contact_id"))
        if expected <= SMALL and not words:
            return _whole(found, data, sort, after)
    return _walk(found, data, sort, after, total=(expected, False))


# What a row of the list shows (Row): a score's rule-by-rule facts (arrays) are most of its width, and none is shown.
SHOWN = (
    "contact_id",
    "score",
    "grade",
    "trend",
    "last_activity_at",
    *(f"contact__{name}" for name in ("email", "first_name", "last_name", "stage", "channel", "created_at")),
    "contact__company__name",
    *(f"contact__owner__{name}" for name in ("first_name", "last_name")),
)
STAGE_LABELS = dict(Stage.choices)


def _rows(found: QuerySet[Score], **annotations) -> QuerySet[Score]:
    return found.annotate(**annotations).values(*SHOWN, *annotations)


def _whole(found: QuerySet[Score], data: dict[str, Any], sort: str, after: list | None) -> Page:
    """The page of a few matches: sorted whole (MQLs first as a leading key), counted beside the first page (a
    window over the same rows) and after it in a query of its own."""
    _, key, tie = SORTS[sort]
    phase = Case(When(stage=Stage.MQL, then=1), default=0) if len(_phases(data, sort)) > 1 else Value(0)
    if after is None:
        part = _rows(found, phase=phase, matching=Window(Count("*")))
    else:
        part = _rows(found.filter(RowBefore([phase, key, tie], after)), phase=phase)
    rows = list(part.order_by(F("phase").desc(), key.desc(), tie.desc())[: PAGE_SIZE + 1])
    total = (rows[0]["matching"] if rows else 0) if after is None else found.count()
    return _paged([(row["phase"], row) for row in rows], sort, (total, True))


def _walk(found: QuerySet[Score], data: dict[str, Any], sort: str, after: list | None, total) -> Page:
    """The page of many matches: a keyset walk down the sort's index (for "MQLs first" one of the MQLs, and one
    of the rest where the MQLs run out: together they would walk past every MQL to reach the rest)."""
    _, key, tie = SORTS[sort]
    rows: list[tuple[int, dict]] = []
    phases = _phases(data, sort)
    for phase in phases:
        if after is not None and phase > after[0]:
            continue
        part = found
        if len(phases) > 1:
            part = part.filter(stage=Stage.MQL) if phase else part.exclude(stage=Stage.MQL)
        if after is not None and phase == after[0]:
            part = part.filter(RowBefore([key, tie], after[1:]))
        rows += [(phase, s) for s in _rows(part).order_by(key.desc(), tie.desc())[: PAGE_SIZE + 1 - len(rows)]]
        if len(rows) > PAGE_SIZE:
            break
    if after is None and len(rows) <= PAGE_SIZE:  # every match on the first page: the planner guessed many
        total = (len(rows), True)
    return _paged(rows, sort, total)


def _paged(rows: list[tuple[int, dict]], sort: str, total: tuple[int, bool]) -> Page:
    """The page of the first PAGE_SIZE rows (each with its part), and the cursor after it if there are more."""
    cursor = None
    if len(rows) > PAGE_SIZE:
        rows = rows[:PAGE_SIZE]
        phase, last = rows[-1]
        value = {"activity": last["last_activity_at"] or EPOCH, "created": last["contact__created_at"]}.get(
            sort, last["score"]
        )
        value = value.isoformat() if isinstance(value, datetime) else value
        cursor = base64.urlsafe_b64encode(json.dumps([phase, value, last["contact_id"]]).encode()).decode()
    url = contact_url()
    return Page([_row(values, url) for _, values in rows], cursor, total)


def _row(values: dict, url: str) -> Row:
    pk, email = values["contact_id"], values["contact__email"]
    return Row(
        pk=pk,
        email=email,
        name=full_name(values["contact__first_name"], values["contact__last_name"]) or email,
        company=values["contact__company__name"] or "",
        stage=values["contact__stage"],
        score=values["score"],
        grade=values["grade"],
        trend=values["trend"],
        channel=values["contact__channel"],
        last_activity_at=values["last_activity_at"],
        owner=full_name(values["contact__owner__first_name"], values["contact__owner__last_name"]),
        url=url.format(pk),
    )


def contact_url() -> str:
    """The lead page's address with ``{}`` for the contact's id: reversed once per script prefix (fifty times a
    page took 3 ms)."""
    return _contact_url(get_script_prefix())


@once
def _contact_url(prefix: str) -> str:
    placeholder = 987_654_321
    return reverse("contact_detail", args=[placeholder]).replace(str(placeholder), "{}")


OWNERS_CACHE = ("leadlist:owners", 60)
CHANNELS_CACHE = ("leadlist:channels", 300)


def estimated(found: QuerySet) -> int:
    """How many rows the planner expects ``found`` to give (one EXPLAIN: planned, not run)."""
    return estimates([found])[0]


def estimates(querysets: list[QuerySet]) -> list[int]:
    """How many rows the planner expects each queryset (of one column) to give, in one EXPLAIN (planned, not
    run): each is an ARRAY(subquery), whose plan (an init plan) says the rows it expects."""
    if not querysets:
        return []
    parts, params = [], []
    for found in querysets:
        try:
            sql, found_params = found.query.sql_with_params()
        except EmptyResultSet:  # a condition that nothing meets
            sql, found_params = "SELECT 1 WHERE false", ()
        parts.append(f"ARRAY({sql})")
        params += found_params
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) SELECT {', '.join(parts)}", params)
        plans = cursor.fetchone()[0][0]["Plan"]["Plans"]
    in_order = sorted(plans, key=lambda plan: int(re.search(r"\d+", plan["Subplan Name"]).group()))
    return [int(plan["Plan Rows"]) for plan in in_order]


def _cached(key_and_seconds: tuple[str, int], compute: Callable[[], list]) -> list:
    key, seconds = key_and_seconds
    found = cache.get(key)
    if found is None:
        found = compute()
        cache.set(key, found, seconds)
    return found


def channels() -> list[str]:
    """The first-touch channels known, most common first (cached for a few minutes: a million-row GROUP BY)."""
    return _cached(
        CHANNELS_CACHE,
        lambda: list(
            Contact.objects.exclude(channel="")
            .values_list("channel", flat=True)
            .annotate(n=Count("id"))
            .order_by("-n")[:100]
        ),
    )


def owners() -> list[tuple[str, str]]:
    """The owner filter's choices: the sales reps (cached for a minute, like the channels)."""
    users = get_user_model().objects.filter(groups__name="sales").order_by("first_name").distinct()
    reps = _cached(OWNERS_CACHE, lambda: [(str(u.pk), u.get_full_name() or u.email) for u in users])
    return [("", "Anyone"), ("me", "Me"), ("none", "Nobody"), *reps]
