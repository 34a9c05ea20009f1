"""Editing the qualification criteria: a draft of the active version, validated, previewed, published."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from crm.errors import DomainError
from leads.models import ADJUSTMENT
from scoring import engine
from scoring.models import BehaviourRule, CriteriaVersion, FitRule, RescoreRun
from scoring.services import (
    Crew,
    carried_from,
    criteria_of,
    full_rescore_running,
    heavy,
    passes,
    queue_run,
    scored_range,
    start_full_rescore,
)
from scoring.sql import SAMPLES

Status = CriteriaVersion.Status
EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class CriteriaRefused(DomainError):
    pass


def _copy(source: CriteriaVersion) -> CriteriaVersion:
    """A new draft numbered after every version so far, with ``source``'s settings and rules."""
    number = (CriteriaVersion.objects.aggregate(n=Max("number"))["n"] or 0) + 1
    copy = CriteriaVersion.objects.get(pk=source.pk)
    copy.pk, copy.number, copy.status, copy.published_at, copy.published_by = None, number, Status.DRAFT, None, None
    copy.republished_from = None
    copy.save()
    BehaviourRule.objects.bulk_create(
        [BehaviourRule(**{**r, "id": None, "version_id": copy.pk}) for r in source.behaviour_rules.values()]
    )
    FitRule.objects.bulk_create(
        [FitRule(**{**r, "id": None, "version_id": copy.pk}) for r in source.fit_rules.values()]
    )
    return copy


def draft() -> CriteriaVersion:
    """The one draft, created from the active version if there is none. Safe to call twice."""
    with transaction.atomic():
        existing = CriteriaVersion.objects.select_for_update().filter(status=Status.DRAFT).first()
        return existing or _copy(CriteriaVersion.objects.get(status=Status.ACTIVE))


def behaviour_problems(rule: BehaviourRule) -> list[str]:
    name = rule.name.strip() or "(unnamed)"
    found = []
    if not rule.name.strip() or not EVENT_TYPE.match(rule.event_type or ""):
        found.append(f"Behaviour rule “{name}” needs a name and an event type such as page_view.")
    if rule.event_type == ADJUSTMENT:
        found.append(f"Behaviour rule “{name}”: manual adjustments count by themselves; choose another event type.")
    if rule.property_key and (rule.operator not in BehaviourRule.Operator.values or not rule.values):
        found.append(f"Behaviour rule “{name}”: a property condition needs an operator and a value.")
    if rule.cap is not None and rule.cap <= 0:
        found.append(f"Behaviour rule “{name}”: a cap must be above zero.")
    return found


def fit_problems(rule: FitRule) -> list[str]:
    name = rule.name.strip() or "(unnamed)"
    known = rule.field in engine.FIT_FIELDS or (rule.field.startswith("profile.") and len(rule.field) > 8)
    found = []
    if not rule.name.strip() or not known:
        found.append(f"Fit rule “{name}”: unknown field “{rule.field}”.")
    if rule.operator not in FitRule.Operator.values:
        found.append(f"Fit rule “{name}”: unknown operator “{rule.operator}”.")
    elif rule.operator in ("gte", "lte") and not (rule.values and engine.NUMBER.match(str(rule.values[0]))):
        found.append(f"Fit rule “{name}”: ≥ and ≤ need a number.")
    elif rule.operator not in ("is_set", "is_not_set", "gte", "lte") and not rule.values:
        found.append(f"Fit rule “{name}” needs a value.")
    return found


def setting_problems(version: CriteriaVersion) -> list[tuple[str, str]]:
    """(setting, sentence) for what is wrong with a version's settings (it need not be saved)."""
    found = []
    if min(version.mql_threshold, version.sql_threshold, version.hysteresis, version.half_life_days) < 0:
        found.append(("mql_threshold", "Thresholds, hysteresis and half-life must not be below zero."))
    if version.sql_threshold < version.mql_threshold:
        found.append(("sql_threshold", "The SQL threshold must not be under the MQL threshold."))
    if not version.grade_a >= version.grade_b >= version.grade_c:
        found.append(("grade_a", "Grade bands must go down from A to C."))
    return found


def problems(version: CriteriaVersion) -> list[str]:
    """Everything wrong with a version, one sentence each; empty when it may be published."""
    found = [sentence for _, sentence in setting_problems(version)]
    for rule in version.behaviour_rules.all():
        found += behaviour_problems(rule)
    for rule in version.fit_rules.all():
        found += fit_problems(rule)
    return found


@dataclass
class Preview:
    stages: Counter = field(default_factory=Counter)  # stage -> contacts under the draft
    grades: Counter = field(default_factory=Counter)
    today_stages: Counter = field(default_factory=Counter)
    today_grades: Counter = field(default_factory=Counter)
    moves: Counter = field(default_factory=Counter)  # (from, to) -> contacts
    samples: list[tuple[int, str, str, int]] = field(default_factory=list)  # (id, from, to, score)
    names: dict[int, str] = field(default_factory=dict)  # the samples' names

    def as_json(self) -> dict:
        return {
            "stages": self.stages,
            "grades": self.grades,
            "today_stages": self.today_stages,
            "today_grades": self.today_grades,
            "moves": [[a, b, n] for (a, b), n in self.moves.items()],
            "samples": self.samples,
            "names": [[pk, name] for pk, name in self.names.items()],
        }

    @classmethod
    def of_json(cls, data: dict) -> Preview:
        counters = {k: Counter(data[k]) for k in ("stages", "grades", "today_stages", "today_grades")}
        return cls(
            **counters,
            moves=Counter({(a, b): n for a, b, n in data["moves"]}),
            samples=[tuple(s) for s in data["samples"]],
            names=dict(data["names"]),
        )

    @property
    def stage_rows(self) -> list[tuple[str, int, int]]:
        """(stage, today, under the draft) for the page (templates cannot iterate a Counter's items)."""
        return [(s, self.today_stages[s], self.stages[s]) for s in sorted(set(self.stages) | set(self.today_stages))]

    @property
    def sample_rows(self) -> list[tuple[int, str, str, str, int]]:
        """(id, name, from, to, score) of some who would move."""
        return [(pk, self.names.get(pk, f"contact {pk}"), a, b, score) for pk, a, b, score in self.samples]

    @property
    def move_rows(self) -> list[tuple[str, str, int]]:
        return [(a, b, n) for (a, b), n in sorted(self.moves.items())]

    @property
    def grade_rows(self) -> list[tuple[str, int, int]]:
        return [(g, self.today_grades[g], self.grades[g]) for g in sorted(set(self.grades) | set(self.today_grades))]


def preview(version: CriteriaVersion, *, progress: Callable[[int, int], None] | None = None) -> Preview:
    """What publishing ``version`` would do, computed set-based and read-only, in a few passes (as a publish
    computes it: from the live scores' stored facts where they carry, else from the events); ``progress(done,
    total)`` is called after each pass."""
    criteria = criteria_of(version)
    source = carried_from(criteria)
    result, now, done = Preview(), timezone.now(), 0

    def scored(lo: int, hi: int, _n: int) -> list[tuple]:
        with transaction.atomic(), connection.cursor() as cursor, heavy(cursor):
            return scored_range(cursor, criteria, lo=lo, hi=hi, now=now, source=source, write=False)

    with connection.cursor() as cursor, Crew() as crew:
        cursor.execute("SELECT count(*) FROM crm_contact")
        total = cursor.fetchone()[0]
        for batch in passes(0, total):
            for (_, _, n), rows in zip(batch, crew.at_once(scored, batch), strict=True):
                for pk, stage, after, score, grade, today_grade, many in rows:  # counted, or a move named
                    if pk is not None:
                        if len(result.samples) < SAMPLES:
                            result.samples.append((pk, stage, after, score))
                        continue
                    result.stages[after] += many
                    result.grades[grade] += many
                    result.today_stages[stage] += many
                    result.today_grades[today_grade] += many
                    if after != stage:
                        result.moves[(stage, after)] += many
                done += n
                if progress:
                    progress(min(done, total), total)
        cursor.execute(
            "SELECT id, coalesce(nullif(trim(first_name || ' ' || last_name), ''), email) FROM crm_contact"
            " WHERE id = ANY(%s)",
            [[pk for pk, *_ in result.samples]],
        )
        result.names = dict(cursor.fetchall())
    return result


def publish(*, version: CriteriaVersion, by: AbstractBaseUser) -> RescoreRun:
    """Make ``version`` (a draft) the active one and rescore everyone in the background (on commit).

    Refused while a worker is executing a full rescore, or when the version has problems. Runs that nobody
    executes (queued, or their worker lost) are superseded: the new run rescores everyone anyway.
    """
    if found := problems(version):
        raise CriteriaRefused(" ".join(found))
    with transaction.atomic():
        if full_rescore_running():
            raise CriteriaRefused("A rescore is still running; publish again when it has finished.")
        now = timezone.now()
        RescoreRun.objects.filter(finished_at=None, failed_at=None).update(
            failed_at=now, problem=f"Superseded: v{version.number} was published before it finished."
        )
        CriteriaVersion.objects.filter(status=Status.ACTIVE).update(status=Status.RETIRED)
        CriteriaVersion.objects.filter(pk=version.pk).update(status=Status.ACTIVE, published_at=now, published_by=by)
        version.refresh_from_db()
        run = start_full_rescore(version=version)
        transaction.on_commit(partial(queue_run, run.pk))
    return run


def republish(*, version: CriteriaVersion, by: AbstractBaseUser) -> RescoreRun:
    """Publish an earlier version again, as a new version number (history is never rewritten)."""
    with transaction.atomic():
        CriteriaVersion.objects.filter(status=Status.DRAFT).delete()
        copy = _copy(version)
        CriteriaVersion.objects.filter(pk=copy.pk).update(republished_from=version.number)
        return publish(version=copy, by=by)


SETTING_LABELS = {
    "mql_threshold": "MQL threshold",
    "sql_threshold": "SQL threshold",
    "hysteresis": "Hysteresis",
    "half_life_days": "Half-life (days)",
    "intent_days": "Sales-intent window (days)",
    "grade_a": "Grade A from",
    "grade_b": "Grade B from",
    "grade_c": "Grade C from",
    "sla_first_touch_minutes": "First-touch SLA (minutes)",
    "sla_unclaimed_minutes": "Unclaimed SLA (minutes)",
}
RULE_FIELDS = {
    BehaviourRule: ("event_type", "property_key", "operator", "values", "points", "cap"),
    FitRule: ("field", "operator", "values", "points"),
}


def changes(version: CriteriaVersion, before: CriteriaVersion | None) -> list[str]:
    """What ``version`` changed against ``before``, one line each, for the history."""
    if before is None:
        return ["The first version."]
    if version.republished_from:
        return [f"Republished from v{version.republished_from}."]
    found = [
        f"{label}: {getattr(before, name):g} → {getattr(version, name):g}"
        for name, label in SETTING_LABELS.items()
        if getattr(before, name) != getattr(version, name)
    ]
    for model, related in ((BehaviourRule, "behaviour_rules"), (FitRule, "fit_rules")):
        kind = "behaviour" if model is BehaviourRule else "fit"
        old = {r.name: r for r in getattr(before, related).all()}
        new = {r.name: r for r in getattr(version, related).all()}
        found += [f"Added {kind} rule “{n}”." for n in new.keys() - old.keys()]
        found += [f"Removed {kind} rule “{n}”." for n in old.keys() - new.keys()]
        for name in sorted(old.keys() & new.keys()):
            diffs = [
                f"{f} {getattr(old[name], f)} → {getattr(new[name], f)}"
                for f in RULE_FIELDS[model]
                if getattr(old[name], f) != getattr(new[name], f)
            ]
            if diffs:
                found.append(f"{kind.capitalize()} rule “{name}”: {', '.join(diffs)}.")
    return found or ["No changes (republished)."]
