"""The set-based path: statements that score many contacts, from the same definitions as scoring.engine.

``statement(criteria, by_range=…)`` scores from events: per behaviour rule it aggregates, in one pass over each
contact's events, the matched count, the decayed sum and the decayed sum after a rejection (for recycled
contacts), and writes them with the score into the score table (crm.models.Score) under the criteria's
version. ``rescale(criteria)`` is the hourly decay refresh without events: between two instants every event
decays by the same factor, so a stored decayed sum times 0.5^(elapsed / half-life) is the sum recomputed, and
the caps, cents and breakdown follow as from events. The windows that do not scale (the trend's 14/28 days,
an adjustment's expiry, an event in the future) are a stored instant, ``recompute_at``, after which the
contact is scored from its events again. Both return what the stage rules need. Rule values are always bound
parameters; field names come from the whitelist in scoring.engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scoring.engine import (
    ADJUSTMENT,
    ADJUSTMENT_RULE,
    COMPANY_FIELDS,
    CONTACT_FIELDS,
    INTENT_KINDS,
    SCORE_LIMIT,
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


def whole(x: str) -> str:
    """Rounded half up to a whole score, held within ±SCORE_LIMIT (``engine.whole``)."""
    return f"least(greatest(floor({x} + 0.5), -{SCORE_LIMIT}), {SCORE_LIMIT})::int"


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


TREND_DAYS = 14
# The trend's windows, on an event's age: the last 14 days (events still to come included) and the 14 before.
RECENT = f"age < interval '{TREND_DAYS} days'"
PRIOR = f"age >= interval '{TREND_DAYS} days' AND age < interval '{2 * TREND_DAYS} days'"
# A stored score ``s`` whose facts scale to any instant before its ``recompute_at`` (scored from events, under
# as many rules); CARRIABLE: and with the trend's counts, so another version may score from them.
SCALABLE = (
    "s.facts_at IS NOT NULL AND cardinality(s.sums) = %(rules)s"
    " AND (s.recompute_at IS NULL OR s.recompute_at > %(now)s)"
)
CARRIABLE = SCALABLE + " AND cardinality(s.recent_counts) = %(rules)s"


@dataclass(frozen=True)
class _PerContact:
    """What a row ``t`` of contact fields and trend counts (recent_counts, prior_counts) is scored by: its trend and
    fit and which fit rules matched (``fits``), over ``lateral``, where each is computed once per row (OFFSET 0:
    a subquery pulled up would be evaluated again in every expression using it). Its matches are the row's
    ``stored_fits`` when ``_per_contact`` is told they carry."""

    lateral: str
    trend: str
    fit: str
    fits: str


def _per_contact(criteria: Criteria, params: dict[str, Any], *, matches_carry: bool = False) -> _PerContact:
    for i, rule in enumerate(criteria.behaviour):
        params[f"b{i}_points"] = float(rule.points)

    def points(counts: str) -> str:  # the rules' undecayed points over a window, from their events in it
        return " + ".join(f"%(b{i}_points)s::float8 * t.{counts}[{i + 1}]" for i in range(len(criteria.behaviour)))

    if matches_carry:  # the stored matches of rules that match alike (same_matches), not the contact's fields again
        matches = [f"t.stored_fits[{j + 1}]" for j in range(len(criteria.fit))]
    else:
        matches = [fit_match(rule, j, params) for j, rule in enumerate(criteria.fit)]
    for j, rule in enumerate(criteria.fit):
        params[f"f{j}_points"] = float(rule.points)
    once = [f"{points('recent_counts') or '0'} AS recent", f"{points('prior_counts') or '0'} AS prior"]
    once += [f"{m} AS fm{j}" for j, m in enumerate(matches)]
    fit = " + ".join(f"CASE WHEN w.fm{j} THEN %(f{j}_points)s::float8 ELSE 0 END" for j in range(len(matches)))
    return _PerContact(
        lateral=f"CROSS JOIN LATERAL (SELECT {', '.join(once)} OFFSET 0) w",
        # Rising, cooling or steady: the last 14 days against the 14 before.
        trend="""CASE WHEN w.recent - w.prior > greatest(2, 0.25 * abs(w.prior)) THEN 'rising'
             WHEN w.prior - w.recent > greatest(2, 0.25 * abs(w.prior)) THEN 'cooling' ELSE 'steady' END""",
        fit=f"({fit or '0'})::float8",
        fits=_array([f"w.fm{j}" for j in range(len(matches))], "bool"),
    )


def _decay(since: str, criteria: Criteria) -> str:
    """The factor an event (or a sum) at ``since`` has decayed by at ``now``: 1 for an instant not yet past."""
    if criteria.half_life_days <= 0:
        return "1.0::float8"
    return f"power(0.5::float8, greatest(0, date_part('epoch', %(now)s - {since})) / 86400 / %(half_life)s)"


def _array(items: list[str], kind: str) -> str:
    return f"ARRAY[{', '.join(items)}]::{kind}[]" if items else f"'{{}}'::{kind}[]"


def legend_params(criteria: Criteria) -> dict[str, Any]:
    """The parameters of LEGEND."""
    return {
        "version": criteria.version,
        "manual_rule": ADJUSTMENT_RULE,
        "legend_behaviour": [rule.name for rule in criteria.behaviour],
        "legend_fit": [rule.name for rule in criteria.fit],
        "legend_fit_points": [float(rule.points) for rule in criteria.fit],
    }


def _base_params(criteria: Criteria) -> dict[str, Any]:
    params: dict[str, Any] = legend_params(criteria) | {
        "half_life": float(criteria.half_life_days),
        "intent_days": criteria.intent_days,
        "intent_kinds": list(INTENT_KINDS),
        "grade_a": criteria.grade_a,
        "grade_b": criteria.grade_b,
        "grade_c": criteria.grade_c,
        "rules": len(criteria.behaviour),
    }
    return params


def _shares(criteria: Criteria, params: dict[str, Any], sums: str) -> list[str]:
    """Each behaviour rule's share, from the stored decayed sums ``f.<sums>`` times their decay ``f.factor``."""
    return [capped(rule, i, f"f.{sums}[{i + 1}] * f.factor", params) for i, rule in enumerate(criteria.behaviour)]


def _engagement(shares: list[str], manual: str) -> str:
    """Engagement: the rules' shares and the manual points, each in cents, summed in cents (as the engine)."""
    return cents(f"({' + '.join(shares) or '0'}) + {cents(manual)}")


def _totals(criteria: Criteria, params: dict[str, Any]) -> str:
    """The score and the promotion score alone (as new_score, new_promotion) of a row ``f`` of stored facts."""
    engagement = _engagement(_shares(criteria, params, "sums"), "f.manual")
    fresh_engagement = _engagement(_shares(criteria, params, "fresh_sums"), "f.manual_fresh")
    return f"{whole(f'f.fit + {engagement}')} AS new_score, {whole(f'f.fit + {fresh_engagement}')} AS new_promotion"


def _scored(criteria: Criteria, params: dict[str, Any], source: str = "f") -> str:
    """A CTE ``scored`` over a relation ``source`` of stored facts (sums, fresh_sums, manual, manual_fresh, fit,
    intent_at, factor: the decay since the sums), with each rule's share (``shares``) and the score. Each share is
    computed once per row in a lateral subquery (OFFSET 0: pulled up, every use would compute it again), and the
    rows are not copied between CTEs on the way (materialized, a row of facts is copied whole each time)."""
    n = len(criteria.behaviour)
    shares, fresh = _shares(criteria, params, "sums"), _shares(criteria, params, "fresh_sums")
    columns = [f"{x} AS sh{i}" for i, x in enumerate(shares)] + [f"{x} AS fsh{i}" for i, x in enumerate(fresh)]
    return f"""
scored AS (
    SELECT f.*, e.engagement, e.promotion_score, {whole("f.fit + e.engagement")} AS score,
        coalesce(%(now)s - f.intent_at <= make_interval(days => %(intent_days)s), false) AS intent,
        CASE WHEN f.fit >= %(grade_a)s THEN 'A' WHEN f.fit >= %(grade_b)s THEN 'B'
             WHEN f.fit >= %(grade_c)s THEN 'C' ELSE 'D' END AS grade,
        {_array([f"sh.sh{i}" for i in range(n)], "float8")} AS shares
    FROM {source} f
    CROSS JOIN LATERAL (SELECT {", ".join(columns) or "0 AS sh"} OFFSET 0) sh
    CROSS JOIN LATERAL (SELECT {_engagement([f"sh.sh{i}" for i in range(n)], "f.manual")} AS engagement,
        {whole(f"f.fit + {_engagement([f'sh.fsh{i}' for i in range(n)], 'f.manual_fresh')}")} AS promotion_score
        OFFSET 0) e
)"""


# What a rescore writes over a score already there. A new row also takes its contact's stage (Score.stage); an
# existing one keeps the stage its trigger copied, which a stage read at the statement's start could undo.
COLUMNS = (
    "score, fit_score, engagement_score, promotion_score, intent_at, grade, trend, shares, manual_n, fits, "
    "last_activity_at, scored_at, facts_at, sums, fresh_sums, counts, manual, manual_fresh, recompute_at, "
    "recent_counts, prior_counts"
)
# The names a version's breakdown reads its facts by (crm.models.ScoreLegend), written with its first scores.
LEGEND = """INSERT INTO crm_scorelegend (version, behaviour, fit, fit_points, manual)
    VALUES (%(version)s, %(legend_behaviour)s::text[], %(legend_fit)s::text[], %(legend_fit_points)s::float8[],
        %(manual_rule)s)
    ON CONFLICT (version) DO NOTHING"""
UPSERT = f""",
legend AS ({LEGEND}),
written AS (
    INSERT INTO crm_score AS s (version, contact_id, {{columns}}, stage)
    SELECT %(version)s, x.id, x.score, x.fit, x.engagement, x.promotion_score, x.intent_at, x.grade, x.trend,
        x.shares, x.manual_n, x.fits, x.last_event_at, %(now)s, x.facts_at, x.sums, x.fresh_sums, x.counts, x.manual,
        x.manual_fresh, x.recompute_at, x.recent_counts, x.prior_counts, x.stage
    FROM scored x ORDER BY x.id  -- every writer of scores takes its rows in contact order: no deadlock
    ON CONFLICT (version, contact_id) {{conflict}}
){{history}}"""
# A score-history row where the rounded score moved, from a CTE ``{source}`` (id, score, fit, engagement, stage,
# old_score).
HISTORY = """,
history AS (
    INSERT INTO scoring_scorehistory (contact_id, at, score, fit_score, engagement_score, stage)
    SELECT id, %(now)s, score, fit, engagement, stage FROM {source} WHERE score IS DISTINCT FROM old_score
)"""


def statement(
    criteria: Criteria,
    *,
    by_range: bool,
    write: bool = True,
    keep: bool = False,
    history: bool = True,
) -> tuple[str, dict[str, Any]]:
    """SQL and parameters (add ``now`` and ``ids``, or ``lo`` and ``hi``) that score a set of contacts from their
    events and write the scores under the criteria's version, returning (id, stage, score, promotion_score,
    intent, grade, stage_held) for each.

    ``keep`` leaves a score already written for the version as it is (computing a new version: a rescore of
    fresher activity may have written it meanwhile); ``history`` adds a score-history row where the rounded
    score moved (the live version). With ``write=False`` it only reads (previews)."""
    params = _base_params(criteria)
    behaviour = list(criteria.behaviour)
    matches = [behaviour_match(rule, i, params) for i, rule in enumerate(behaviour)]
    aggregates = []
    for i in range(len(behaviour)):
        aggregates += [
            f"count(*) FILTER (WHERE m{i}) AS n{i}",
            f"sum(d) FILTER (WHERE m{i}) AS s{i}",
            f"sum(d) FILTER (WHERE m{i} AND fresh) AS f{i}",
            f"count(*) FILTER (WHERE m{i} AND {RECENT}) AS r{i}",
            f"count(*) FILTER (WHERE m{i} AND {PRIOR}) AS p{i}",
        ]
    any_match = " OR ".join(f"m{i}" for i in range(len(behaviour))) or "false"
    each = _per_contact(criteria, params)
    target = "c.id BETWEEN %(lo)s AND %(hi)s" if by_range else "c.id = ANY(%(ids)s)"
    # The same bound on the events, so the planner reads just these contacts' events by index.
    event_target = target.replace("c.id", "e.contact_id")
    activity_target = target.replace("c.id", "a.contact_id")
    # The score before, for the history only.
    old_score = "old.score" if write and history else "NULL::int"
    old_join = (
        "LEFT JOIN crm_score old ON old.version = %(version)s AND old.contact_id = c.id AND "
        + target.replace("c.id", "old.contact_id")
        if write and history
        else ""
    )
    counts = {
        name: _array([f"coalesce(ev.{letter}{i}, 0)" for i in range(len(behaviour))], "int")
        for name, letter in (("counts", "n"), ("recent_counts", "r"), ("prior_counts", "p"))
    }
    sql = f"""
WITH target AS (
    SELECT c.id, c.email, c.stage, c.stage_held, {old_score} AS old_score, c.recycled_at, c.profile,
        {", ".join(f"c.{name}" for name in CONTACT_FIELDS)}, co.size AS company_size, co.industry,
        a.last_event_at
    FROM crm_contact c
    LEFT JOIN crm_company co ON co.id = c.company_id
    LEFT JOIN crm_contactactivity a ON a.contact_id = c.id AND {activity_target}
    {old_join}
    WHERE {target}
),
matched AS MATERIALIZED (  -- computed once per event; inlined, every FILTER would re-evaluate decay and rules
    SELECT e.contact_id, {_decay("e.occurred_at", criteria)} AS d,
        (t.recycled_at IS NULL OR e.occurred_at > t.recycled_at) AS fresh, e.occurred_at,
        %(now)s - e.occurred_at AS age, e.type, e.form_kind, {MANUAL} AS manual,
        CASE WHEN e.type = '{ADJUSTMENT}' AND jsonb_typeof(e.properties -> 'expires') = 'number'
            THEN (e.properties ->> 'expires')::float8 END AS expires,
        {", ".join(f"{m} AS m{i}" for i, m in enumerate(matches)) or "true AS m"}
    FROM target t
    JOIN LATERAL (
        SELECT e.contact_id, e.type, e.properties, e.occurred_at, f.kind AS form_kind
        FROM leads_event e  -- the form's slug read only from a form_submit (the hash key of every event)
        LEFT JOIN leads_form f ON f.slug = CASE WHEN e.type = 'form_submit' THEN e.properties ->> 'form' END
        WHERE e.contact_id = t.id AND {event_target}
    ) e ON true
),
ev AS (
    SELECT contact_id, {", ".join(aggregates) + "," if aggregates else ""}
        max(occurred_at) FILTER (WHERE type = 'form_submit' AND form_kind = ANY(%(intent_kinds)s::text[]) AND fresh)
            AS intent_at,
        least(
            min(CASE WHEN age < interval '{TREND_DAYS} days' THEN occurred_at + interval '{TREND_DAYS} days'
                     WHEN age < interval '{2 * TREND_DAYS} days' THEN occurred_at + interval '{2 * TREND_DAYS} days'
                END) FILTER (WHERE {any_match}),
            min(occurred_at) FILTER (WHERE age < interval '0'),
            to_timestamp(min(expires) FILTER (WHERE manual IS NOT NULL))
        ) AS recompute_at,
        coalesce(sum(manual), 0) AS manual, count(manual) AS manual_n,
        coalesce(sum(manual) FILTER (WHERE fresh), 0) AS manual_fresh
    FROM matched GROUP BY contact_id
),
counted AS (
    SELECT t.*, ev.intent_at, ev.recompute_at, coalesce(ev.manual, 0) AS manual, coalesce(ev.manual_n, 0) AS manual_n,
        coalesce(ev.manual_fresh, 0) AS manual_fresh,
        {_array([f"coalesce(ev.s{i}, 0)" for i in range(len(behaviour))], "float8")} AS sums,
        {_array([f"coalesce(ev.f{i}, 0)" for i in range(len(behaviour))], "float8")} AS fresh_sums,
        {", ".join(f"{array} AS {name}" for name, array in counts.items())}
    FROM target t LEFT JOIN ev ON ev.contact_id = t.id
),
f AS (
    SELECT t.id, t.stage, t.stage_held, t.old_score, t.last_event_at, 1.0::float8 AS factor,
        %(now)s::timestamptz AS facts_at, t.sums, t.fresh_sums, t.counts, t.recent_counts, t.prior_counts,
        t.manual, t.manual_n, t.manual_fresh, t.intent_at, t.recompute_at, {each.trend} AS trend, {each.fit} AS fit,
        {each.fits} AS fits
    FROM counted t {each.lateral}
),{_scored(criteria, params)}"""
    return sql + (_upsert(keep, history) if write else "") + f"\n{RETURNED}", params


RETURNING = "x.id, x.stage, x.score, x.promotion_score, x.intent, x.grade, x.stage_held"
RETURNED = f"SELECT {RETURNING} FROM scored x"


def _upsert(keep: bool, history: bool) -> str:
    """The CTE writing what a statement computed in ``scored`` (and the history)."""
    # Kept: a score already written, but not a new contact's placeholder (never scored).
    conflict = "DO UPDATE SET " + ", ".join(f"{name} = EXCLUDED.{name}" for name in COLUMNS.split(", "))
    conflict += " WHERE s.scored_at IS NULL" if keep else ""
    return UPSERT.format(columns=COLUMNS, conflict=conflict, history=HISTORY.format(source="scored") if history else "")


def carried(criteria: Criteria, *, write: bool = True, matches_carry: bool = False) -> tuple[str, dict[str, Any]]:
    """SQL and parameters (add ``now``, ``lo``, ``hi`` and ``source``: a version whose rules match the same
    events, under the same half-life) that score contacts lo..hi under the criteria from version ``source``'s
    stored facts, without reading events: the per-rule sums, counts and windows are the same, only their points,
    caps and the fit rules differ. Writes as ``statement`` with ``keep`` (a fresher score stands) and returns one
    row: the ids of the contacts whose facts do not carry (see CARRIABLE), for ``statement`` to score from their
    events, and how many carried. With ``write=False`` it writes nothing and returns ``statement``'s rows, each
    with the source's grade after it (``tallied`` with ``graded``), and those ids after them (the rest NULL).
    ``matches_carry`` (the source's fit rules match alike: ``same_matches``): each score's fit matches are taken as
    stored too (evaluating the rules on the contacts' fields was an eighth of a pass), only their points applied."""
    params = _base_params(criteria) | {"fit_rules": len(criteria.fit)}
    each = _per_contact(criteria, params, matches_carry=matches_carry)
    carries = CARRIABLE + (" AND cardinality(s.fits) = %(fit_rules)s" if matches_carry else "")
    # What the fit rules read, unless their matches carry.
    read = f"c.email, c.profile, {', '.join(f'c.{n}' for n in CONTACT_FIELDS)}, co.size AS company_size, co.industry,"
    fields, company = ("", "") if matches_carry else (read, "LEFT JOIN crm_company co ON co.id = c.company_id")
    sql = f"""
WITH target AS MATERIALIZED (  -- which facts carry, asked after the joins: no estimate of it misleads their plan
    SELECT c.id, c.stage, c.stage_held, {fields} s.last_activity_at AS last_event_at, s.facts_at, s.sums,
        s.fresh_sums, s.counts, s.recent_counts, s.prior_counts, s.manual, s.manual_n, s.manual_fresh, s.intent_at,
        s.recompute_at, s.fits AS stored_fits, s.grade AS live_grade, coalesce({carries}, false) AS carries
    FROM crm_contact c
    {company}
    LEFT JOIN crm_score s  -- the range on both sides: the planner carries no range across a join
        ON s.version = %(source)s AND s.contact_id = c.id AND s.contact_id BETWEEN %(lo)s AND %(hi)s
    WHERE c.id BETWEEN %(lo)s AND %(hi)s
),
f AS (
    SELECT t.id, t.stage, t.stage_held, NULL::int AS old_score, t.last_event_at,
        {_decay("t.facts_at", criteria)} AS factor, t.facts_at, t.sums, t.fresh_sums, t.counts, t.recent_counts,
        t.prior_counts, t.manual, t.manual_n, t.manual_fresh, t.intent_at, t.recompute_at, {each.trend} AS trend,
        {each.fit} AS fit, {each.fits} AS fits, t.live_grade
    FROM target t {each.lateral} WHERE t.carries
),{_scored(criteria, params)}"""
    if write:
        rest = (
            "SELECT coalesce(array_agg(t.id ORDER BY t.id) FILTER (WHERE NOT t.carries), '{}'),"
            " count(*) FILTER (WHERE t.carries) FROM target t"
        )
        return sql + _upsert(keep=True, history=False) + f"\n{rest}", params
    rest = "SELECT t.id, NULL::text, NULL::int, NULL::int, NULL::bool, NULL::text, NULL::bool, NULL FROM target t"
    return sql + f"\nSELECT {RETURNING}, x.live_grade FROM scored x\nUNION ALL\n{rest} WHERE NOT t.carries", params


def move_bounds(criteria: Criteria) -> dict[str, float]:
    """The parameters of ``moved_to``."""
    return {
        "demote": criteria.mql_threshold - criteria.hysteresis,
        "mql_at": criteria.mql_threshold,
        "sql_at": criteria.sql_threshold,
    }


def moved_to(stage: str, score: str, promotion: str, intent: str, held: str) -> str:
    """The stage the stage rules leave a contact in (``scoring.stages.automatic_move``'s, else its own), on the
    columns named (parameters of ``move_bounds``): a preview counts a million contacts' moves without fetching
    them. Tests hold it to the function."""
    return f"""CASE WHEN {stage} NOT IN ('lead', 'mql') THEN {stage}
        WHEN {promotion} >= %(sql_at)s AND {intent} THEN 'sql'
        WHEN {held} THEN {stage}
        WHEN {stage} = 'lead' AND {promotion} >= %(mql_at)s THEN 'mql'
        WHEN {stage} = 'mql' AND {score} < %(demote)s THEN 'lead'
        ELSE {stage} END"""


LIVE_GRADE = """LEFT JOIN crm_score l ON l.version = (SELECT live FROM crm_scoreversion) AND l.contact_id = r.id
        AND l.contact_id BETWEEN %(lo)s AND %(hi)s"""
SAMPLES = 20  # the moves a preview names, of each range (the first ones by id)


def tallied(text: str, *, graded: bool = False) -> str:
    """A read-only scoring statement (``statement`` or ``carried`` with ``write=False``, of contacts ``lo``..
    ``hi``; add ``move_bounds``) as a preview counts it, in rows (id, stage, stage after the rules, score, grade,
    live grade, how many): the contacts by (stage, after, grade, live grade), counted (id NULL); the first
    SAMPLES that move, each named (how many 0); and those whose facts do not carry (stage NULL), one row each.
    Fetching every row of a million and deciding each in Python took a third of the preview. ``graded``: the
    statement's rows end with their live grade (``carried`` reads it with the facts of its source, which
    ``services.carried_from`` makes the live version), else it is joined."""
    today, rows = ("r.live_grade", "r") if graded else ("l.grade", f"r {LIVE_GRADE}")
    return f"""
WITH r AS ({text}),
t AS (
    SELECT r.id, r.stage, r.score, r.grade, coalesce({today}, 'C') AS today_grade,
        {moved_to("r.stage", "r.score", "r.promotion_score", "r.intent", "r.stage_held")} AS after
    FROM {rows}
)
SELECT id, NULL, NULL, NULL::int, NULL, NULL, 0 FROM t WHERE stage IS NULL
UNION ALL
(SELECT id, stage, after, score, NULL, NULL, 0 FROM t WHERE after <> stage ORDER BY id LIMIT {SAMPLES})
UNION ALL
SELECT NULL, stage, after, NULL, grade, today_grade, count(*) FROM t WHERE stage IS NOT NULL
GROUP BY stage, after, grade, today_grade"""


def reusable(facts: Criteria, criteria: Criteria) -> bool:
    """Whether ``criteria`` can be scored from the facts stored under ``facts`` (``carried``): its behaviour rules
    match the same events, in the same order, decaying alike."""

    def matching(c: Criteria) -> tuple:
        return c.half_life_days, [(r.event_type, r.property_key, r.operator, tuple(r.values)) for r in c.behaviour]

    return matching(facts) == matching(criteria)


def same_matches(facts: Criteria, criteria: Criteria) -> bool:
    """Whether ``criteria``'s fit rules match what those of ``facts`` match, in the same order (their points and
    names may differ): a score stored under ``facts`` then carries its fit matches (``carried``)."""

    def matching(c: Criteria) -> list[tuple]:
        return [(r.field, r.operator, tuple(r.values)) for r in c.fit]

    return matching(facts) == matching(criteria)


def rescale(criteria: Criteria) -> tuple[str, dict[str, Any]]:
    """SQL and parameters (add ``now``, ``lo`` and ``hi``) that bring the version's scores of contacts lo..hi to
    ``now`` without reading events: each stored sum decays by 0.5^((now − facts_at) / half-life). Only a score or
    promotion score that moved is written (with its engagement and shares as of now, so the breakdown still
    adds up to it); the sums stay as they are, decayed to ``facts_at``. Contacts whose facts do not scale
    (``recompute_at`` passed, stored under other rules, never scored) are left to a rescore from events.
    Returns (id, stage, score, promotion_score, intent, grade, stage_held) of the contacts written."""
    params = _base_params(criteria)
    sql = f"""
WITH f AS MATERIALIZED (
    SELECT s.contact_id AS id, s.facts_at, s.score AS old_score, s.promotion_score AS old_promotion, s.sums,
        s.fresh_sums, s.manual, s.manual_fresh, s.fit_score AS fit, s.trend, s.intent_at,
        {_decay("s.facts_at", criteria)} AS factor
    FROM crm_score s
    WHERE s.version = %(version)s AND s.contact_id BETWEEN %(lo)s AND %(hi)s AND {SCALABLE}
),
moved AS MATERIALIZED (  -- the score alone first: most contacts' rounded scores do not move in an hour
    SELECT f.*, t.new_score, t.new_promotion FROM f, LATERAL (SELECT {_totals(criteria, params)}) t
    WHERE (t.new_score, t.new_promotion) IS DISTINCT FROM (f.old_score, f.old_promotion)
),{_scored(criteria, params, source="moved")},
updated AS (
    UPDATE crm_score s SET score = x.score, engagement_score = x.engagement, promotion_score = x.promotion_score,
        shares = x.shares, scored_at = %(now)s
    FROM scored x
    -- Rescored from events meanwhile (newer facts): that score stands.
    WHERE s.version = %(version)s AND s.contact_id = x.id AND s.facts_at = x.facts_at
    RETURNING x.id, x.old_score, x.score, x.fit, x.engagement, x.promotion_score, x.intent, x.grade
),
changed AS (
    SELECT u.*, c.stage, c.stage_held FROM updated u JOIN crm_contact c ON c.id = u.id
){HISTORY.format(source="changed")}
SELECT id, stage, score, promotion_score, intent, grade, stage_held FROM changed"""
    return sql, params
