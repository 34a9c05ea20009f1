"""The reports (PRODUCT.md §9), each one SQL statement over history that is never rewritten: contacts' creation,
their stage changes, rejected queue entries and SLA breaches. So a closed period's numbers do not move when
criteria are republished or contacts rescored. The leads list narrows to exactly the contacts behind a
number through ``contact_ids``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models.expressions import RawSQL

from crm.models import Contact, Stage
from handoff.models import QueueEntry

FUNNEL = (Stage.LEAD, Stage.MQL, Stage.SQL, Stage.OPPORTUNITY, Stage.CUSTOMER)
RANK = {stage: rank for rank, stage in enumerate(FUNNEL)}
RANK_SQL = "CASE sc.to_stage " + " ".join(f"WHEN '{s}' THEN {r}" for s, r in RANK.items() if r) + " END"
TOUCHED_WITHIN = (5, 30, 60, 1440)  # minutes
SCORE_BIN = 10


@dataclass(frozen=True)
class Scope:
    """What a report counts: a half-open period [start, end), a first-touch channel, a cohort's window."""

    start: datetime
    end: datetime
    channel: str = ""
    window_days: int = 90

    @classmethod
    def of_days(cls, first: date, last: date, **rest) -> Scope:
        """From the first to the last day, both whole (UTC)."""
        start = datetime.combine(first, time.min, tzinfo=UTC)
        return cls(start=start, end=datetime.combine(last + timedelta(days=1), time.min, tzinfo=UTC), **rest)

    def previous(self) -> Scope:
        return replace(self, start=self.start - (self.end - self.start), end=self.start)

    @property
    def params(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "channel": self.channel,
            "window": timedelta(days=self.window_days),
        }


CHANNEL = "(%(channel)s = '' OR lower(c.channel) = lower(%(channel)s))"


def channel_of(contact_id: str) -> str:
    """The channel condition where the contact row is needed for nothing else: without a channel, no join."""
    return (
        "(%(channel)s = '' OR EXISTS (SELECT 1 FROM crm_contact c"
        f" WHERE c.id = {contact_id} AND lower(c.channel) = lower(%(channel)s)))"
    )


def _rows(sql: str, params: dict[str, Any]) -> list[tuple]:
    """A report statement's rows. Without JIT: compiling these (it starts at a cost estimate they all reach)
    takes longer than running them."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL jit = off")
        cursor.execute(sql, params)
        return cursor.fetchall()


def _rate(part: float | None, whole: float | None) -> float | None:
    return round(part / whole, 4) if part is not None and whole else None


# The funnel


COHORT = f"""WITH cohort AS (
    SELECT c.id, c.created_at, c.channel FROM crm_contact c
    WHERE c.created_at >= %(start)s AND c.created_at < %(end)s AND {CHANNEL}
),
furthest AS (  -- how far each got within the window: a stage reached counts every stage before it
    SELECT c.id, c.channel, coalesce(max({RANK_SQL}), 0) AS rank
    FROM cohort c LEFT JOIN crm_stagechange sc ON sc.contact_id = c.id AND sc.at < c.created_at + %(window)s
    GROUP BY c.id, c.channel
)"""
PERIOD_ENTRIES = f"""SELECT sc.to_stage, count(DISTINCT sc.contact_id)
FROM crm_stagechange sc
WHERE sc.at >= %(start)s AND sc.at < %(end)s AND sc.to_stage IN ('mql', 'sql', 'opportunity', 'customer')
    AND {channel_of("sc.contact_id")}
GROUP BY sc.to_stage"""
NEW_LEADS = (
    f"SELECT count(*) FROM crm_contact c WHERE c.created_at >= %(start)s AND c.created_at < %(end)s AND {CHANNEL}"
)
TIME_IN_STAGE = f"""SELECT sc.from_stage,  -- each stay that ended in the period
    percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM sc.at - sc.since)) / 3600
FROM crm_stagechange sc
WHERE sc.at >= %(start)s AND sc.at < %(end)s AND sc.since IS NOT NULL AND {channel_of("sc.contact_id")}
GROUP BY sc.from_stage"""


@dataclass
class FunnelStage:
    stage: str
    count: int
    rate_from_previous: float | None
    rate_overall: float | None
    median_hours_in_stage: float | None
    previous_count: int | None = None

    @property
    def label(self) -> str:
        return Stage(self.stage).label


def funnel(scope: Scope, *, mode: str = "cohort", compare: bool = False) -> list[FunnelStage]:
    """Lead → MQL → SQL → opportunity → customer. *cohort*: contacts created in the period and the furthest stage
    each reached within the window; *period*: how many contacts entered each stage in the period."""
    counts = _funnel_counts(scope, mode)
    before = _funnel_counts(scope.previous(), mode) if compare else None
    hours = dict(_rows(TIME_IN_STAGE, scope.params))
    stages = []
    for index, stage in enumerate(FUNNEL):
        stages.append(
            FunnelStage(
                stage=stage,
                count=counts[index],
                rate_from_previous=_rate(counts[index], counts[index - 1]) if index else None,
                rate_overall=_rate(counts[index], counts[0]) if index else None,
                median_hours_in_stage=round(hours[stage], 1) if hours.get(stage) is not None else None,
                previous_count=before[index] if before else None,
            )
        )
    return stages


def _funnel_counts(scope: Scope, mode: str) -> list[int]:
    if mode == "cohort":
        reached = ", ".join(f"count(*) FILTER (WHERE rank >= {r})" for r in range(len(FUNNEL)))
        return list(_rows(f"{COHORT} SELECT {reached} FROM furthest", scope.params)[0])
    entered = dict(_rows(PERIOD_ENTRIES, scope.params))
    return [_rows(NEW_LEADS, scope.params)[0][0], *(entered.get(stage, 0) for stage in FUNNEL[1:])]


# By channel, and over time


@dataclass
class ChannelRow:
    channel: str
    leads: int
    mqls: int
    sqls: int
    accepted: int
    won: int

    @property
    def rates(self) -> dict[str, float | None]:
        return {
            "lead_to_mql": _rate(self.mqls, self.leads),
            "mql_to_sql": _rate(self.sqls, self.mqls),
            "sql_to_accepted": _rate(self.accepted, self.sqls),
            "accepted_to_won": _rate(self.won, self.accepted),
        }


def by_channel(scope: Scope) -> list[ChannelRow]:
    """The cohort funnel per first-touch channel, biggest first."""
    counts = ", ".join(f"count(*) FILTER (WHERE rank >= {r})" for r in range(len(FUNNEL)))
    sql = f"{COHORT} SELECT channel, {counts} FROM furthest GROUP BY channel ORDER BY 2 DESC, 1"
    return [ChannelRow(channel, *numbers) for channel, *numbers in _rows(sql, scope.params)]


@dataclass
class Week:
    week: date
    mqls: int
    sqls: int
    accepted: int
    rejected: int

    @property
    def mql_to_sql(self) -> float | None:
        return _rate(self.sqls, self.mqls)

    @property
    def acceptance(self) -> float | None:
        return _rate(self.accepted, self.accepted + self.rejected)

    @property
    def recycle(self) -> float | None:
        return _rate(self.rejected, self.sqls)


WEEKLY = f"""SELECT date_trunc('week', sc.at AT TIME ZONE 'UTC')::date,
    count(*) FILTER (WHERE sc.to_stage = 'mql'),
    count(*) FILTER (WHERE sc.to_stage = 'sql'),
    count(*) FILTER (WHERE sc.from_stage = 'sql' AND sc.to_stage = 'opportunity'),
    count(*) FILTER (WHERE sc.from_stage = 'sql' AND sc.to_stage = 'lead')
FROM crm_stagechange sc
WHERE sc.at >= %(start)s AND sc.at < %(end)s AND {channel_of("sc.contact_id")}
GROUP BY 1 ORDER BY 1"""


def weekly(scope: Scope) -> list[Week]:
    """Per week (Monday first): MQLs and SQLs entered, handoffs accepted and rejected (recycled) by sales."""
    return [Week(*row) for row in _rows(WEEKLY, scope.params)]


# Rejections


@dataclass
class Rejections:
    total: int
    by_reason: list[dict[str, Any]]
    by_rep: list[dict[str, Any]]
    by_channel: list[dict[str, Any]]
    other_texts: list[dict[str, Any]] = field(default_factory=list)


REJECTED = f"""FROM handoff_queueentry q JOIN crm_contact c ON c.id = q.contact_id
WHERE q.status = 'rejected' AND q.closed_at >= %(start)s AND q.closed_at < %(end)s AND {CHANNEL}"""


def rejections(scope: Scope) -> Rejections:
    labels = dict(QueueEntry.Reason.choices)
    names = _rep_names()
    reasons = _rows(f"SELECT q.rejection_reason, count(*) {REJECTED} GROUP BY 1 ORDER BY 2 DESC, 1", scope.params)
    total = sum(n for _, n in reasons)
    by_reason = [
        {"reason": reason, "label": labels.get(reason, reason), "count": n, "share": _rate(n, total)}
        for reason, n in reasons
    ]
    by_rep = [
        {
            "rep_id": rep,
            "rep": names.get(rep, "(former user)"),
            "reason": reason,
            "label": labels.get(reason),
            "count": n,
        }
        for rep, reason, n in _rows(
            f"SELECT q.owner_id, q.rejection_reason, count(*) {REJECTED} GROUP BY 1, 2 ORDER BY 1, 3 DESC", scope.params
        )
    ]
    by_channel = [
        {"channel": channel, "reason": reason, "label": labels.get(reason), "count": n}
        for channel, reason, n in _rows(
            f"SELECT c.channel, q.rejection_reason, count(*) {REJECTED} GROUP BY 1, 2 ORDER BY 1, 3 DESC", scope.params
        )
    ]
    other = [
        {"contact_id": contact_id, "contact": name or email, "rep": names.get(rep, ""), "text": text, "at": at}
        for contact_id, name, email, rep, text, at in _rows(
            "SELECT c.id, trim(c.first_name || ' ' || c.last_name), c.email, q.owner_id, q.rejection_text, q.closed_at"
            f" {REJECTED} AND q.rejection_reason = 'other' ORDER BY q.closed_at DESC LIMIT 200",
            scope.params,
        )
    ]
    return Rejections(total, by_reason, by_rep, by_channel, other)


def _reps() -> dict[int, tuple[str, str]]:
    """Every user who owned a handoff could be a rep: {id: (name, email)}, in one query."""
    return {u.pk: (u.get_full_name() or u.email, u.email) for u in get_user_model().objects.all()}


def _rep_names() -> dict[int, str]:
    return {pk: name for pk, (name, _) in _reps().items()}


# Speed to lead


@dataclass
class RepSpeed:
    rep_id: int | None
    rep: str
    email: str | None
    claimed: int
    median_minutes_to_claim: float | None
    p90_minutes_to_claim: float | None
    median_minutes_to_first_touch: float | None
    p90_minutes_to_first_touch: float | None
    touched_within: dict[int, float | None]
    breaches: int
    returns: int

    def as_json(self) -> dict[str, Any]:
        return {
            "rep": self.rep,
            "rep_id": self.rep_id,
            "email": self.email,
            "claimed": self.claimed,
            "median_minutes_to_claim": self.median_minutes_to_claim,
            "p90_minutes_to_claim": self.p90_minutes_to_claim,
            "median_minutes_to_first_touch": self.median_minutes_to_first_touch,
            "p90_minutes_to_first_touch": self.p90_minutes_to_first_touch,
            **{f"touched_within_{_minutes_label(m)}": share for m, share in self.touched_within.items()},
            "breaches": self.breaches,
            "returns": self.returns,
        }


def _minutes_label(minutes: int) -> str:
    return f"{minutes // 60}_h" if minutes % 60 == 0 else f"{minutes}_min"


def _speed_sql(group: str) -> str:
    minutes = "extract(epoch FROM q.{} - q.entered_at) / 60"
    within = ", ".join(
        f"count(*) FILTER (WHERE q.first_touch_at - q.entered_at <= interval '{m} minutes')" for m in TOUCHED_WITHIN
    )
    return f"""SELECT {group}, count(*),
    percentile_cont(0.5) WITHIN GROUP (ORDER BY {minutes.format("claimed_at")}),
    percentile_cont(0.9) WITHIN GROUP (ORDER BY {minutes.format("claimed_at")}),
    percentile_cont(0.5) WITHIN GROUP (ORDER BY {minutes.format("first_touch_at")}),
    percentile_cont(0.9) WITHIN GROUP (ORDER BY {minutes.format("first_touch_at")}),
    {within}
FROM handoff_queueentry q
WHERE q.claimed_at >= %(start)s AND q.claimed_at < %(end)s AND q.owner_id IS NOT NULL AND {channel_of("q.contact_id")}
GROUP BY 1"""


BREACHES = f"""SELECT b.owner_id, count(*), count(*) FILTER (WHERE b.kind = 'first_touch')
FROM handoff_slabreach b JOIN handoff_queueentry q ON q.id = b.entry_id
WHERE b.at >= %(start)s AND b.at < %(end)s AND {channel_of("q.contact_id")}
GROUP BY 1"""


def speed(scope: Scope, *, rep_id: int | None = None) -> tuple[list[RepSpeed], RepSpeed]:
    """Per rep (claims in the period): time from entering the queue to claim and to first touch, the share
    touched within 5 min … 24 h; breaches and returns (first-touch breaches: the lead went back). With the
    team's row; ``rep_id`` keeps only that rep's row."""
    reps = _reps()
    breaches = {owner: (n, returned) for owner, n, returned in _rows(BREACHES, scope.params)}

    def row(rep: int | None, label: str, numbers: tuple, breach: tuple[int, int]) -> RepSpeed:
        claimed, *medians = numbers[:5]
        within = numbers[5:]
        return RepSpeed(
            rep_id=rep,
            rep=label,
            email=reps[rep][1] if rep in reps else None,
            claimed=claimed,
            median_minutes_to_claim=_round(medians[0]),
            p90_minutes_to_claim=_round(medians[1]),
            median_minutes_to_first_touch=_round(medians[2]),
            p90_minutes_to_first_touch=_round(medians[3]),
            touched_within={m: _rate(n, claimed) for m, n in zip(TOUCHED_WITHIN, within, strict=True)},
            breaches=breach[0],
            returns=breach[1],
        )

    reps = [
        row(owner, reps.get(owner, ("(former user)",))[0], tuple(numbers), breaches.get(owner, (0, 0)))
        for owner, *numbers in _rows(_speed_sql("q.owner_id"), scope.params)
        if rep_id is None or owner == rep_id
    ]
    reps.sort(key=lambda r: r.rep)
    team_numbers = _rows(_speed_sql("true"), scope.params)
    team_breach = (sum(n for n, _ in breaches.values()), sum(r for _, r in breaches.values()))
    team = row(None, "Team", tuple(team_numbers[0][1:]) if team_numbers else (0,) * 9, team_breach)
    return reps, team


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 1)


# Score distribution


def score_distribution() -> dict[str, list[tuple[int, int]]]:
    """Today's scores per stage in bins of SCORE_BIN points: {stage: [(bin start, contacts)]}. A snapshot."""
    found: dict[str, list[tuple[int, int]]] = {stage: [] for stage in FUNNEL}
    for stage, low, n in _rows(
        f"SELECT c.stage, floor(coalesce(s.score, 0) / {SCORE_BIN}.0)::int * {SCORE_BIN}, count(*) FROM crm_contact c"
        " LEFT JOIN crm_score s ON s.version = (SELECT live FROM crm_scoreversion) AND s.contact_id = c.id"
        " WHERE c.stage = ANY(%(stages)s) GROUP BY 1, 2 ORDER BY 1, 2",
        {"stages": list(FUNNEL)},
    ):
        found[stage].append((low, n))
    return found


# The contacts behind a number


def contacts(scope: Scope, *, kind: str, stage: str = "", mode: str = "cohort", reason: str = "", rep: int = 0):
    """The contacts a report counted, as a lazy queryset: ``kind`` "funnel" (``stage``, ``mode``), "rejected"
    (``reason`` or any, ``rep`` or any) or "claimed" (by ``rep``)."""
    params = scope.params
    if kind == "funnel" and mode == "cohort":
        sql = f"{COHORT} SELECT id FROM furthest WHERE rank >= %(rank)s"
        params |= {"rank": RANK[stage]}
    elif kind == "funnel" and stage == Stage.LEAD:
        sql = NEW_LEADS.replace("count(*)", "c.id")
    elif kind == "funnel":
        sql = (
            "SELECT sc.contact_id FROM crm_stagechange sc JOIN crm_contact c ON c.id = sc.contact_id"
            f" WHERE sc.at >= %(start)s AND sc.at < %(end)s AND sc.to_stage = %(stage)s AND {CHANNEL}"
        )
        params |= {"stage": stage}
    elif kind == "rejected":
        sql = f"SELECT q.contact_id {REJECTED} AND (%(reason)s = '' OR q.rejection_reason = %(reason)s)"
        sql += " AND (%(rep)s = 0 OR q.owner_id = %(rep)s)"
        params |= {"reason": reason, "rep": rep}
    else:
        sql = (
            "SELECT q.contact_id FROM handoff_queueentry q JOIN crm_contact c ON c.id = q.contact_id"
            f" WHERE q.claimed_at >= %(start)s AND q.claimed_at < %(end)s AND q.owner_id = %(rep)s AND {CHANNEL}"
        )
        params |= {"rep": rep}
    names = NAMED.findall(sql)
    return Contact.objects.filter(pk__in=RawSQL(NAMED.sub("%s", sql), [params[name] for name in names]))


NAMED = re.compile(r"%\((\w+)\)s")  # Django composes subqueries with positional parameters
