"""Rule evidence (PRODUCT.md §10): over the labelled handoffs of a window — accepted (then maybe won or lost) or
rejected — which rules the contact matched as of the moment it entered the queue, and how acceptance differs
with and without each rule.

A behaviour rule is matched when the contact had a matching event before its handoff (the same conditions as
scoring.sql); a fit rule reads the contact's profile as it is now (Baton keeps no history of profiles). The lift
is the acceptance rate with the rule over the rate without it, with a 95 % interval (Katz's log method, 0.5
added to every cell when one is empty).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection
from django.utils import timezone

from scoring import sql
from scoring.engine import CONTACT_FIELDS, FIT_FIELDS, Behaviour, Criteria, Fit

Z95 = 1.959964
LABELLED = ("accepted", "won", "lost", "rejected")


@dataclass(frozen=True)
class Handoff:
    accepted: bool
    won: bool
    hits: tuple[bool, ...]  # one per rule, in Evidence.rules order


@dataclass(frozen=True)
class RuleEvidence:
    name: str
    kind: str  # "behaviour" or "fit"
    points: float
    matched: int
    matched_accepted: int
    matched_won: int
    unmatched: int
    unmatched_accepted: int
    unmatched_won: int

    @property
    def rate_with(self) -> float | None:
        return self.matched_accepted / self.matched if self.matched else None

    @property
    def rate_without(self) -> float | None:
        return self.unmatched_accepted / self.unmatched if self.unmatched else None

    @property
    def won_with(self) -> float | None:
        return self.matched_won / self.matched if self.matched else None

    @property
    def won_without(self) -> float | None:
        return self.unmatched_won / self.unmatched if self.unmatched else None

    @property
    def lift(self) -> tuple[float, float, float] | None:
        """(lift, low, high), or None when either side has no handoffs."""
        return lift(self.matched_accepted, self.matched, self.unmatched_accepted, self.unmatched)

    @property
    def flag(self) -> str:
        """dead (matched nobody), weak (the interval spans 1: no telling), inverted (its points and its lift
        disagree), or predictive."""
        if self.matched == 0:
            return "dead"
        interval = self.lift
        if interval is None:
            return "weak"
        value, low, high = interval
        if low <= 1 <= high:
            return "weak"
        if (self.points > 0 and value < 1) or (self.points < 0 and value > 1):
            return "inverted"
        return "predictive"


@dataclass(frozen=True)
class Evidence:
    days: int
    handoffs: list[Handoff]
    rules: list[RuleEvidence]

    @property
    def labelled(self) -> int:
        return len(self.handoffs)

    @property
    def accepted(self) -> int:
        return sum(h.accepted for h in self.handoffs)


def lift(a: int, n1: int, c: int, n2: int) -> tuple[float, float, float] | None:
    """Relative risk of acceptance (a of n1 with the rule, c of n2 without) with its 95 % interval."""
    if n1 == 0 or n2 == 0:
        return None
    b, d = n1 - a, n2 - c
    if 0 in (a, b, c, d):
        a, b, c, d = a + 0.5, b + 0.5, c + 0.5, d + 0.5
    n1, n2 = a + b, c + d
    value = (a / n1) / (c / n2)
    spread = Z95 * math.sqrt(1 / a - 1 / n1 + 1 / c - 1 / n2)
    log = math.log(value)
    return value, math.exp(log - spread), math.exp(log + spread)


def _scorable(rule: Behaviour | Fit) -> bool:
    if isinstance(rule, Fit):
        return rule.field in FIT_FIELDS or (rule.field.startswith("profile.") and len(rule.field) > len("profile."))
    return bool(rule.event_type)


def handoffs(criteria: Criteria, *, since: datetime) -> tuple[list[Behaviour | Fit], list[Handoff]]:
    """The rules that can be evaluated, and each labelled handoff entered since ``since`` with its hits."""
    behaviour = [r for r in criteria.behaviour if _scorable(r)]
    fit = [r for r in criteria.fit if _scorable(r)]
    params: dict = {"since": since, "labelled": list(LABELLED)}
    event_hits = [
        f"coalesce(bool_or({sql.behaviour_match(r, i, params, form_kind='f.kind')}), false)"
        for i, r in enumerate(behaviour)
    ]
    fit_hits = [sql.fit_match(r, j, params) for j, r in enumerate(fit)]
    columns = [*(f"ev.h{i}" for i in range(len(behaviour))), *fit_hits]
    text = f"""
WITH t AS (
    SELECT q.id AS handoff_id, q.status, q.entered_at, c.id, c.email, c.profile,
        {", ".join(f"c.{name}" for name in CONTACT_FIELDS)}, co.size AS company_size, co.industry
    FROM handoff_queueentry q
    JOIN crm_contact c ON c.id = q.contact_id
    LEFT JOIN crm_company co ON co.id = c.company_id
    WHERE q.entered_at >= %(since)s AND q.status = ANY(%(labelled)s)
)
SELECT t.status {"".join(", " + c for c in columns)}
FROM t
LEFT JOIN LATERAL (
    SELECT {", ".join(f"{h} AS h{i}" for i, h in enumerate(event_hits)) or "count(*) AS h"}
    FROM leads_event e LEFT JOIN leads_form f ON e.type = 'form_submit' AND f.slug = e.properties ->> 'form'
    WHERE e.contact_id = t.id AND e.occurred_at <= t.entered_at
) ev ON true
ORDER BY t.handoff_id"""
    with connection.cursor() as cursor:
        cursor.execute(text, params)
        rows = cursor.fetchall()
    found = [
        Handoff(accepted=status != "rejected", won=status == "won", hits=tuple(bool(x) for x in hits))
        for status, *hits in rows
    ]
    return [*behaviour, *fit], found


def evidence(criteria: Criteria, *, days: int = 180, now: datetime | None = None) -> Evidence:
    now = now or timezone.now()
    rules, found = handoffs(criteria, since=now - timedelta(days=days))
    summaries = []
    for i, rule in enumerate(rules):
        with_rule = [h for h in found if h.hits[i]]
        without = [h for h in found if not h.hits[i]]
        summaries.append(
            RuleEvidence(
                name=rule.name,
                kind="fit" if isinstance(rule, Fit) else "behaviour",
                points=rule.points,
                matched=len(with_rule),
                matched_accepted=sum(h.accepted for h in with_rule),
                matched_won=sum(h.won for h in with_rule),
                unmatched=len(without),
                unmatched_accepted=sum(h.accepted for h in without),
                unmatched_won=sum(h.won for h in without),
            )
        )
    return Evidence(days=days, handoffs=found, rules=summaries)
