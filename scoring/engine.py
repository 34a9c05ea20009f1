"""The score, defined once in plain Python: the reference the set-based SQL (scoring.sql) must agree with.

A behaviour rule's share of a contact's engagement is ``min(cap, Σ points × 0.5^(age_days / half_life))``
over the events it matches (decay first, then the cap; a negative rule's cap bounds its magnitude).
Engagement is the sum of the shares, fit the sum of the matching fit rules' points, the score their
sum rounded. Shares are rounded to cents first, so the breakdown always adds up to the score.

Manual adjustments are events of their own type, scored by a built-in rule: their points as given (no decay,
no cap) until they expire, counted in engagement, shown in the breakdown, never sales intent nor trend.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from leads.models import ADJUSTMENT

INTENT_KINDS = ("demo_request", "contact_request")
# A manual adjustment (type ADJUSTMENT) holds {"points": n, "expires": epoch seconds or null}.
ADJUSTMENT_RULE = "Manual adjustment"
TREND_WINDOW = timedelta(days=14)
NUMBER = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")
# Fit rule fields: contact columns, company columns, and derived ones. ``profile.<key>`` reads the profile.
CONTACT_FIELDS = ("job_title", "seniority", "country", "budget", "authority", "need", "timeline", "channel")
COMPANY_FIELDS = {"company_size": "size", "industry": "industry"}
FIT_FIELDS = (*CONTACT_FIELDS, *COMPANY_FIELDS, "email_domain")


def cents(x: float) -> float:
    """Round half up to cents: the same arithmetic as ``floor(x * 100 + 0.5) / 100`` in SQL."""
    return math.floor(x * 100 + 0.5) / 100


# The most a score holds either way (its column's range is about 2.1 billion): a rule of many points matched by a
# flood of events is held here, rather than failing every score written beside it.
SCORE_LIMIT = 1_000_000_000


def whole(x: float) -> int:
    """Rounded half up, held within ±SCORE_LIMIT: the same as ``sql.whole``."""
    return max(-SCORE_LIMIT, min(SCORE_LIMIT, math.floor(x + 0.5)))


def as_text(value: Any) -> str | None:
    """A value as PostgreSQL's ``->>`` would give it, lower-cased; None for missing or null."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).lower()


def text_matches(operator: str, value: str | None, values: tuple[str, ...]) -> bool:
    if value is None:
        return False
    if operator in ("equals", "in_list"):
        return value in values
    if operator == "contains":
        return any(v in value for v in values)
    if operator == "starts_with":
        return any(value.startswith(v) for v in values)
    return False


@dataclass(frozen=True)
class Behaviour:
    name: str
    event_type: str
    points: float
    cap: float | None = None
    property_key: str = ""
    operator: str = ""
    values: tuple[str, ...] = ()

    def matches(self, event: EventFacts) -> bool:
        if event.type != self.event_type:
            return False
        if not self.property_key or not self.operator:
            return True
        value = (
            event.form_kind if self.property_key == "form_kind" else as_text(event.properties.get(self.property_key))
        )
        return text_matches(self.operator, value, self.values)

    def share(self, decayed_sum: float) -> float:
        raw = self.points * decayed_sum
        if self.cap is not None:
            raw = min(self.cap, raw) if self.points >= 0 else max(-self.cap, raw)
        return cents(raw)


@dataclass(frozen=True)
class Fit:
    name: str
    field: str
    operator: str
    points: float
    values: tuple[Any, ...] = ()

    def matches(self, profile: dict[str, Any]) -> bool:
        value = profile.get(self.field)
        text = as_text(value)
        if self.operator == "is_set":
            return text not in (None, "")
        if self.operator == "is_not_set":
            return text in (None, "")
        if self.operator in ("gte", "lte"):
            if text is None or not NUMBER.match(text) or not self.values or not NUMBER.match(str(self.values[0])):
                return False  # a bound that is not a number matches nothing (the criteria editor refuses one)
            number, bound = float(text), float(self.values[0])
            return number >= bound if self.operator == "gte" else number <= bound
        return text_matches(self.operator, text, tuple(str(v).lower() for v in self.values))


@dataclass(frozen=True)
class Criteria:
    version: int
    behaviour: tuple[Behaviour, ...]
    fit: tuple[Fit, ...]
    half_life_days: float = 30
    mql_threshold: float = 40
    sql_threshold: float = 70
    hysteresis: float = 5
    intent_days: int = 30
    grade_a: float = 30
    grade_b: float = 15
    grade_c: float = 0
    sla_unclaimed_minutes: int = 60
    sla_first_touch_minutes: int = 120

    def decay(self, age_days: float) -> float:
        return 1.0 if self.half_life_days <= 0 else 0.5 ** (max(0.0, age_days) / self.half_life_days)

    def grade(self, fit: float) -> str:
        return "A" if fit >= self.grade_a else "B" if fit >= self.grade_b else "C" if fit >= self.grade_c else "D"


@dataclass(frozen=True)
class EventFacts:
    type: str
    occurred_at: datetime
    properties: dict[str, Any] = field(default_factory=dict)
    form_kind: str | None = None


@dataclass(frozen=True)
class Scored:
    fit: float
    engagement: float
    score: int
    grade: str
    trend: str
    breakdown: list[dict[str, Any]]
    # What stage rules read: the score counting only activity after a rejection, and sales intent.
    promotion_score: int
    has_intent: bool


def adjustment_points(properties: dict[str, Any], now: datetime) -> float | None:
    """An adjustment's points while it counts; None once it expired (or when it holds no number)."""
    points, expires = properties.get("points"), properties.get("expires")
    if not _is_number(points):
        return None
    if _is_number(expires) and expires <= now.timestamp():
        return None
    return float(points)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def trend_of(recent: float, prior: float) -> str:
    """Engagement earned in the last 14 days against the 14 before (points before decay)."""
    margin = max(2.0, 0.25 * abs(prior))
    return "rising" if recent - prior > margin else "cooling" if prior - recent > margin else "steady"


def score(
    criteria: Criteria,
    profile: dict[str, Any],
    events: list[EventFacts],
    *,
    now: datetime,
    recycled_at: datetime | None = None,
) -> Scored:
    sums = [0.0] * len(criteria.behaviour)
    fresh = [0.0] * len(criteria.behaviour)
    counts = [0] * len(criteria.behaviour)
    recent = prior = manual = manual_fresh = 0.0
    manual_n = 0
    has_intent = False
    for event in events:
        age = now - event.occurred_at
        is_fresh = recycled_at is None or event.occurred_at > recycled_at
        if event.type == ADJUSTMENT:
            points = adjustment_points(event.properties, now)
            if points is not None:
                manual, manual_n = manual + points, manual_n + 1
                manual_fresh += points if is_fresh else 0.0
            continue
        factor = criteria.decay(age.total_seconds() / 86400)
        for i, rule in enumerate(criteria.behaviour):
            if rule.matches(event):
                counts[i] += 1
                sums[i] += factor
                fresh[i] += factor if is_fresh else 0.0
                if age < TREND_WINDOW:
                    recent += rule.points
                elif age < 2 * TREND_WINDOW:
                    prior += rule.points
        if (
            event.type == "form_submit"
            and event.form_kind in INTENT_KINDS
            and is_fresh
            and age <= timedelta(days=criteria.intent_days)
        ):
            has_intent = True
    shares = [rule.share(s) for rule, s in zip(criteria.behaviour, sums, strict=True)]
    fresh_shares = [rule.share(s) for rule, s in zip(criteria.behaviour, fresh, strict=True)]
    matched_fit = [rule for rule in criteria.fit if rule.matches(profile)]
    fit = sum(rule.points for rule in matched_fit)
    manual = cents(manual)
    engagement = cents(sum(shares) + manual)
    breakdown = (
        [
            {"rule": rule.name, "kind": "behaviour", "events": n, "points": share}
            for rule, n, share in zip(criteria.behaviour, counts, shares, strict=True)
            if n
        ]
        + ([{"rule": ADJUSTMENT_RULE, "kind": "manual", "events": manual_n, "points": manual}] if manual_n else [])
        + [{"rule": rule.name, "kind": "fit", "events": None, "points": rule.points} for rule in matched_fit]
    )
    return Scored(
        fit=fit,
        engagement=engagement,
        score=whole(fit + engagement),
        grade=criteria.grade(fit),
        trend=trend_of(recent, prior),
        breakdown=breakdown,
        promotion_score=whole(fit + cents(sum(fresh_shares) + cents(manual_fresh))),
        has_intent=has_intent,
    )
