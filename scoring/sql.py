"""The set-based path: one statement scores many contacts, from the same definitions as scoring.engine.

``statement(criteria, by_range=…)`` builds it: rule values are always bound parameters; field names come
from the whitelist in scoring.engine. Per behaviour rule it aggregates, in one pass over each contact's
events, the matched count, the decayed sum and the decayed sum after a rejection (for recycled contacts).
It writes score, fit, engagement, grade, trend and breakdown where any of them changed (with a
score-history row when the rounded score moved), and returns what stage rules need for every contact.
"""

from __future__ import annotations

from typing import Any

from scoring.engine import (
    ADJUSTMENT,
    ADJUSTMENT_RULE,
    COMPANY_FIELDS,
    CONTACT_FIELDS,
    INTENT_KINDS,
    Behaviour,
    Criteria,
    Fit,
)
from scoring.engine import NUMBER as NUMBER_RE

CENTS = "(floor(({x}) * 100 + 0.5) / 100)"
NUMBER = r"'^-?[0-9]+(\.[0-9]+)?$'"
# A manual adjustment's points while it counts (engine.adjustment_points), else NULL.
MANUAL = f"""CASE WHEN e.type = '{ADJUSTMENT}' AND jsonb_typeof(e.properties -> 'points') = 'number'
    AND (jsonb_typeof(e.properties -> 'expires') IS DISTINCT FROM 'number'
         OR (e.properties ->> 'expires')::float8 > date_part('epoch', %(now)s))
    THEN (e.properties ->> 'points')::float8 END"""


def cents(x: str) -> str:
    return CENTS.format(x=x)


def _text_condition(expr: str, operator: str, values: list[str], prefix: str, params: dict[str, Any]) -> str:
    params[f"{prefix}_values"] = values
    if operator in ("equals", "in_list"):
        return f"{expr} = ANY(%({prefix}_values)s::text[])"
    if not values:
        return "false"
    names = []
    for n, value in enumerate(values):
        params[f"{prefix}_v{n}"] = value
        names.append(f"%({prefix}_v{n})s::text")
    if operator == "contains":
        return "(" + " OR ".join(f"strpos({expr}, {name}) > 0" for name in names) + ")"
    if operator == "starts_with":
        return "(" + " OR ".join(f"starts_with({expr}, {name})" for name in names) + ")"
    raise ValueError(f"unknown operator {operator!r}")


def behaviour_match(rule: Behaviour, i: int, params: dict[str, Any], *, form_kind: str = "e.form_kind") -> str:
    """The rule's condition on an event ``e`` whose form's kind is the column ``form_kind``."""
    params[f"b{i}_type"] = rule.event_type
    condition = f"e.type = %(b{i}_type)s"
    if rule.property_key and rule.operator:
        if rule.property_key == "form_kind":
            value = form_kind
        else:
            params[f"b{i}_key"] = rule.property_key
            value = f"lower(e.properties ->> %(b{i}_key)s)"
        condition += " AND " + _text_condition(value, rule.operator, list(rule.values), f"b{i}", params)
    return f"coalesce({condition}, false)"


def _fit_value(rule: Fit, j: int, params: dict[str, Any]) -> str:
    if rule.field in CONTACT_FIELDS or rule.field in COMPANY_FIELDS:
        return f"t.{rule.field}::text"
    if rule.field == "email_domain":
        return "split_part(t.email, '@', 2)"
    if rule.field.startswith("profile."):
        params[f"f{j}_key"] = rule.field.removeprefix("profile.")
        return f"(t.profile ->> %(f{j}_key)s)"
    raise ValueError(f"unknown fit field {rule.field!r}")


def fit_match(rule: Fit, j: int, params: dict[str, Any]) -> str:
    value = _fit_value(rule, j, params)
    if rule.operator == "is_set":
        return f"coalesce({value}, '') <> ''"
    if rule.operator == "is_not_set":
        return f"coalesce({value}, '') = ''"
    if rule.operator in ("gte", "lte"):
        if not rule.values or not NUMBER_RE.match(str(rule.values[0])):
            return "false"
        params[f"f{j}_bound"] = float(rule.values[0])
        compare = ">=" if rule.operator == "gte" else "<="
        return f"coalesce(CASE WHEN {value} ~ {NUMBER} THEN ({value})::float8 {compare} %(f{j}_bound)s END, false)"
    values = [str(v).lower() for v in rule.values]
    return f"coalesce({_text_condition(f'lower({value})', rule.operator, values, f'f{j}', params)}, false)"


def capped(rule: Behaviour, i: int, decayed: str, params: dict[str, Any]) -> str:
    params[f"b{i}_points"] = float(rule.points)
    raw = f"%(b{i}_points)s::float8 * coalesce({decayed}, 0)"
    if rule.cap is not None:
        params[f"b{i}_cap"] = float(rule.cap)
        raw = f"least(%(b{i}_cap)s, {raw})" if rule.points >= 0 else f"greatest(-%(b{i}_cap)s, {raw})"
    return cents(raw)


# The writes that follow the scored CTE (left out for a read-only preview); {target} bounds the UPDATE.
WRITES_TEMPLATE = """,
updated AS (
    UPDATE crm_contact c SET score = x.score, fit_score = x.fit, engagement_score = x.engagement,
        grade = x.grade, trend = x.trend, breakdown = x.breakdown, criteria_version = %(version)s,
        scored_at = %(now)s, updated_at = %(now)s, last_activity_at = coalesce(x.last_event_at, c.last_activity_at)
    FROM scored x
    WHERE c.id = x.id AND {target} AND (c.score, c.fit_score, c.engagement_score, c.grade, c.trend, c.breakdown,
            c.criteria_version, c.last_activity_at)
        IS DISTINCT FROM (x.score, x.fit, x.engagement, x.grade, x.trend, x.breakdown, %(version)s,
            coalesce(x.last_event_at, c.last_activity_at))
    RETURNING c.id, x.old_score, c.score, c.fit_score, c.engagement_score, c.stage
),
history AS (
    INSERT INTO scoring_scorehistory (contact_id, at, score, fit_score, engagement_score, stage)
    SELECT id, %(now)s, score, fit_score, engagement_score, stage FROM updated WHERE score IS DISTINCT FROM old_score
)"""


def statement(criteria: Criteria, *, by_range: bool, write: bool = True) -> tuple[str, dict[str, Any]]:
    """SQL and parameters (add ``now`` and ``ids``, or ``lo`` and ``hi``) that rescore a set of contacts.

    With ``write=False`` it only reads: what the criteria would make of each contact (for previews)."""
    params: dict[str, Any] = {
        "version": criteria.version,
        "half_life": float(criteria.half_life_days),
        "intent_days": criteria.intent_days,
        "intent_kinds": list(INTENT_KINDS),
        "manual_rule": ADJUSTMENT_RULE,
    }
    behaviour = list(criteria.behaviour)
    matches = [behaviour_match(rule, i, params) for i, rule in enumerate(behaviour)]
    decay = (
        "1.0::float8"
        if criteria.half_life_days <= 0
        else "power(0.5::float8, greatest(0, date_part('epoch', %(now)s - e.occurred_at)) / 86400 / %(half_life)s)"
    )
    aggregates = []
    for i in range(len(behaviour)):
        aggregates += [
            f"count(*) FILTER (WHERE m{i}) AS n{i}",
            f"sum(d) FILTER (WHERE m{i}) AS s{i}",
            f"sum(d) FILTER (WHERE m{i} AND fresh) AS f{i}",
        ]
    undecayed = " + ".join(f"CASE WHEN m{i} THEN %(b{i}_points)s::float8 ELSE 0 END" for i in range(len(behaviour)))
    shares = [capped(rule, i, f"ev.s{i}", params) for i, rule in enumerate(behaviour)]
    fresh_shares = [capped(rule, i, f"ev.f{i}", params) for i, rule in enumerate(behaviour)]
    fit_matches = [fit_match(rule, j, params) for j, rule in enumerate(criteria.fit)]
    for j, rule in enumerate(criteria.fit):
        params[f"f{j}_points"] = float(rule.points)
        params[f"f{j}_name"] = rule.name
    for i, rule in enumerate(behaviour):
        params[f"b{i}_name"] = rule.name
    fit = " + ".join(f"CASE WHEN {m} THEN %(f{j}_points)s::float8 ELSE 0 END" for j, m in enumerate(fit_matches))
    entries = (
        [
            f"CASE WHEN s.n{i} > 0 THEN jsonb_build_object('rule', %(b{i}_name)s::text, 'kind', "
            f"'behaviour', 'events', s.n{i}, 'points', s.sh{i}) END"
            for i in range(len(behaviour))
        ]
        + [
            "CASE WHEN s.manual_n > 0 THEN jsonb_build_object('rule', %(manual_rule)s::text, 'kind', 'manual', "
            f"'events', s.manual_n, 'points', {cents('s.manual')}) END"
        ]
        + [
            f"CASE WHEN s.fm{j} THEN jsonb_build_object('rule', %(f{j}_name)s::text, 'kind', 'fit', 'events', NULL, "
            f"'points', %(f{j}_points)s::float8) END"
            for j in range(len(criteria.fit))
        ]
    )
    target = "c.id BETWEEN %(lo)s AND %(hi)s" if by_range else "c.id = ANY(%(ids)s)"
    # The same bound on the events, so the planner reads just these contacts' events by index.
    event_target = target.replace("c.id", "e.contact_id")
    sql = f"""
WITH target AS (
    SELECT c.id, c.email, c.stage, c.stage_held, c.score AS old_score, c.recycled_at, c.profile,
        {", ".join(f"c.{name}" for name in CONTACT_FIELDS)}, co.size AS company_size, co.industry,
        a.last_event_at
    FROM crm_contact c
    LEFT JOIN crm_company co ON co.id = c.company_id
    LEFT JOIN crm_contactactivity a ON a.contact_id = c.id
    WHERE {target}
),
matched AS MATERIALIZED (  -- computed once per event; inlined, every FILTER would re-evaluate decay and rules
    SELECT e.contact_id, {decay} AS d, (t.recycled_at IS NULL OR e.occurred_at > t.recycled_at) AS fresh,
        %(now)s - e.occurred_at AS age, e.type, e.form_kind, {MANUAL} AS manual,
        {", ".join(f"{m} AS m{i}" for i, m in enumerate(matches)) or "true AS m"}
    FROM target t
    JOIN LATERAL (
        SELECT e.contact_id, e.type, e.properties, e.occurred_at, f.kind AS form_kind
        FROM leads_event e LEFT JOIN leads_form f ON e.type = 'form_submit' AND f.slug = e.properties ->> 'form'
        WHERE e.contact_id = t.id AND {event_target}
    ) e ON true
),
ev AS (
    SELECT contact_id, {", ".join(aggregates) + "," if aggregates else ""}
        coalesce(sum({undecayed or "0"}) FILTER (WHERE age < interval '14 days'), 0) AS recent,
        coalesce(sum({undecayed or "0"}) FILTER (WHERE age >= interval '14 days' AND age < interval '28 days'), 0)
            AS prior,
        coalesce(bool_or(type = 'form_submit' AND form_kind = ANY(%(intent_kinds)s::text[]) AND fresh
            AND age <= make_interval(days => %(intent_days)s)), false) AS intent,
        sum(manual) AS manual, count(manual) AS manual_n, sum(manual) FILTER (WHERE fresh) AS manual_fresh
    FROM matched GROUP BY contact_id
),
shares AS (
    SELECT t.id, t.stage, t.stage_held, t.old_score, t.last_event_at, ev.recent, ev.prior,
        coalesce(ev.intent, false) AS intent,
        {", ".join(f"{s} AS sh{i}, coalesce(ev.n{i}, 0) AS n{i}" for i, s in enumerate(shares)) or "0 AS sh"},
        coalesce(ev.manual, 0) AS manual, coalesce(ev.manual_n, 0) AS manual_n,
        {cents(f"({' + '.join(fresh_shares) or '0'}) + {cents('coalesce(ev.manual_fresh, 0)')}")} AS fresh_engagement,
        {", ".join(f"{m} AS fm{j}" for j, m in enumerate(fit_matches)) or "false AS fm"},
        ({fit or "0"})::float8 AS fit
    FROM target t LEFT JOIN ev ON ev.contact_id = t.id
),
computed AS (
    SELECT s.id, s.stage, s.stage_held, s.old_score, s.last_event_at, s.intent, s.fit,
        {cents(f"({' + '.join(f's.sh{i}' for i in range(len(behaviour))) or '0'}) + {cents('s.manual')}")}
            AS engagement,
        floor(s.fit + s.fresh_engagement + 0.5)::int AS promotion_score,
        CASE WHEN s.fit >= %(grade_a)s THEN 'A' WHEN s.fit >= %(grade_b)s THEN 'B'
             WHEN s.fit >= %(grade_c)s THEN 'C' ELSE 'D' END AS grade,
        CASE WHEN coalesce(s.recent, 0) - coalesce(s.prior, 0) > greatest(2, 0.25 * abs(coalesce(s.prior, 0)))
                THEN 'rising'
             WHEN coalesce(s.prior, 0) - coalesce(s.recent, 0) > greatest(2, 0.25 * abs(coalesce(s.prior, 0)))
                THEN 'cooling'
             ELSE 'steady' END AS trend,
        to_jsonb(array_remove(ARRAY[{", ".join(entries) or "NULL::jsonb"}]::jsonb[], NULL)) AS breakdown
    FROM shares s
),
scored AS (
    SELECT x.*, floor(x.fit + x.engagement + 0.5)::int AS score FROM computed x
){{WRITES}}"""
    sql = sql.replace("{WRITES}", WRITES_TEMPLATE.format(target=target) if write else "")
    sql += "\nSELECT x.id, x.stage, x.score, x.promotion_score, x.intent, x.grade, x.stage_held FROM scored x"
    params |= {"grade_a": criteria.grade_a, "grade_b": criteria.grade_b, "grade_c": criteria.grade_c}
    return sql, params
