"""Criteria as code (API.md "Criteria as code"): a version as JSON, and JSON checked (with the editor's own checks)
into the draft, every problem named by its JSON path, nothing saved unless all is well."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from django.db import transaction
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from scoring import criteria
from scoring.models import BehaviourRule, CriteriaVersion, FitRule

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Number = Annotated[float, Field(ge=-1_000_000, le=1_000_000, allow_inf_nan=False)]
Value = Annotated[str, StringConstraints(max_length=200)] | Annotated[float, Field(allow_inf_nan=False)]
PUBLISHED = ("version", "status", "published_at", "published_by")


class Property(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    key: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    operator: Literal["equals", "contains", "starts_with", "in_list"]
    values: Annotated[list[Annotated[str, StringConstraints(max_length=200)]], Field(min_length=1, max_length=100)]


class BehaviourIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: Name
    event_type: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
    property: Property | None = None
    points: Number
    cap: Number | None = None


class FitIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: Name
    field: Annotated[str, StringConstraints(min_length=1, max_length=80)]
    operator: Literal["equals", "in_list", "contains", "gte", "lte", "is_set", "is_not_set"]
    values: Annotated[list[Value], Field(max_length=100)] = Field(default_factory=list)
    points: Number


class Bands(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    A: Number
    B: Number
    C: Number


class Sla(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    unclaimed_minutes: Annotated[int, Field(ge=1, le=100_000)]
    first_touch_minutes: Annotated[int, Field(ge=1, le=100_000)]


class VersionIn(BaseModel):
    """A version's body as PUT /criteria/draft takes it (``version``, ``status``, ``published_*`` are ignored)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    half_life_days: Annotated[float, Field(ge=0, le=3650, allow_inf_nan=False)]
    mql_threshold: Annotated[float, Field(ge=0, le=1_000_000, allow_inf_nan=False)]
    sql_threshold: Annotated[float, Field(ge=0, le=1_000_000, allow_inf_nan=False)]
    hysteresis: Annotated[float, Field(ge=0, le=1_000_000, allow_inf_nan=False)]
    intent_days: Annotated[int, Field(ge=1, le=3650)]
    grade_bands: Bands
    sla: Sla
    behaviour_rules: Annotated[list[BehaviourIn], Field(max_length=200)]
    fit_rules: Annotated[list[FitIn], Field(max_length=200)]


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def as_json(version: CriteriaVersion) -> dict[str, Any]:
    """A version as the API and the page's export give it; importing it back gives the same version."""
    by = version.published_by
    return {
        "version": version.number,
        "status": version.status,
        "published_at": version.published_at.isoformat().replace("+00:00", "Z") if version.published_at else None,
        "published_by": (by.get_full_name() or by.email) if by else None,
        "half_life_days": _number(version.half_life_days),
        "mql_threshold": _number(version.mql_threshold),
        "sql_threshold": _number(version.sql_threshold),
        "hysteresis": _number(version.hysteresis),
        "intent_days": version.intent_days,
        "grade_bands": {"A": _number(version.grade_a), "B": _number(version.grade_b), "C": _number(version.grade_c)},
        "sla": {
            "unclaimed_minutes": version.sla_unclaimed_minutes,
            "first_touch_minutes": version.sla_first_touch_minutes,
        },
        "behaviour_rules": [
            {
                "name": r.name,
                "event_type": r.event_type,
                "property": {"key": r.property_key, "operator": r.operator, "values": r.values}
                if r.property_key
                else None,
                "points": _number(r.points),
                "cap": None if r.cap is None else _number(r.cap),
            }
            for r in version.behaviour_rules.all()
        ],
        "fit_rules": [
            {"name": r.name, "field": r.field, "operator": r.operator, "values": r.values, "points": _number(r.points)}
            for r in version.fit_rules.all()
        ],
    }


def _path(loc: tuple) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def parse(body: Any) -> tuple[VersionIn | None, list[dict[str, Any]]]:
    """The body as a version, or the problems with it: [{"index": None, "field": JSON path, "message"}]."""
    if not isinstance(body, dict):
        return None, [{"index": None, "field": None, "message": "The body must be a JSON object (a version)."}]
    body = {k: v for k, v in body.items() if k not in PUBLISHED}
    try:
        version = VersionIn.model_validate(body)
    except ValidationError as e:
        return None, [
            {"index": None, "field": _path(error["loc"]) or None, "message": error["msg"]} for error in e.errors()
        ]
    return version, _checks(version)


def _checks(version: VersionIn) -> list[dict[str, Any]]:
    """The editor's own checks (scoring.criteria), each at its path."""
    settings = CriteriaVersion(**_settings(version))
    found = [(JSON_PATH.get(name, name), sentence) for name, sentence in criteria.setting_problems(settings)]
    for i, rule in enumerate(version.behaviour_rules):
        found += [(f"behaviour_rules[{i}]", m) for m in criteria.behaviour_problems(_behaviour(rule))]
    for i, rule in enumerate(version.fit_rules):
        found += [(f"fit_rules[{i}]", m) for m in criteria.fit_problems(_fit(rule))]
    return [{"index": None, "field": path, "message": message} for path, message in found]


def _behaviour(rule: BehaviourIn, **extra) -> BehaviourRule:
    condition = rule.property
    return BehaviourRule(
        name=rule.name,
        event_type=rule.event_type,
        property_key=condition.key if condition else "",
        operator=condition.operator if condition else "",
        values=list(condition.values) if condition else [],
        points=rule.points,
        cap=rule.cap,
        **extra,
    )


def _fit(rule: FitIn, **extra) -> FitRule:
    values = [_number(v) if isinstance(v, float) and math.isfinite(v) else v for v in rule.values]
    return FitRule(name=rule.name, field=rule.field, operator=rule.operator, values=values, points=rule.points, **extra)


JSON_PATH = {"grade_a": "grade_bands"}


def _settings(version: VersionIn) -> dict[str, Any]:
    """The version's settings as the model's fields."""
    return {
        **version.model_dump(include={"half_life_days", "mql_threshold", "sql_threshold", "hysteresis", "intent_days"}),
        "grade_a": version.grade_bands.A,
        "grade_b": version.grade_bands.B,
        "grade_c": version.grade_bands.C,
        "sla_unclaimed_minutes": version.sla.unclaimed_minutes,
        "sla_first_touch_minutes": version.sla.first_touch_minutes,
    }


def replace_draft(version: VersionIn) -> CriteriaVersion:
    """Make the draft say exactly ``version`` (a checked one). One transaction."""
    with transaction.atomic():
        draft = criteria.draft()
        for name, value in _settings(version).items():
            setattr(draft, name, value)
        draft.save()
        draft.behaviour_rules.all().delete()
        draft.fit_rules.all().delete()
        BehaviourRule.objects.bulk_create(
            _behaviour(rule, version=draft, position=i) for i, rule in enumerate(version.behaviour_rules)
        )
        FitRule.objects.bulk_create(_fit(rule, version=draft, position=i) for i, rule in enumerate(version.fit_rules))
    return CriteriaVersion.objects.get(pk=draft.pk)
