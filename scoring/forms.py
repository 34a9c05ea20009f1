"""Forms for the criteria pages: version settings and the two rule tables."""

from __future__ import annotations

from typing import Any

from django import forms
from django.forms import inlineformset_factory

from scoring import criteria
from scoring.models import BehaviourRule, CriteriaVersion, FitRule

SETTINGS = [
    "half_life_days",
    "mql_threshold",
    "sql_threshold",
    "hysteresis",
    "intent_days",
    "grade_a",
    "grade_b",
    "grade_c",
    "sla_first_touch_minutes",
    "sla_unclaimed_minutes",
]


class ValuesField(forms.CharField):
    """A rule's values as the admin types them: comma-separated."""

    def prepare_value(self, value: Any) -> str:
        return ", ".join(str(v) for v in value) if isinstance(value, list) else (value or "")

    def to_python(self, value: Any) -> list[str]:
        return [v.strip() for v in str(value or "").split(",") if v.strip()]

    def has_changed(self, initial: Any, data: Any) -> bool:
        # Compare as lists: an untouched blank rule row must stay "unchanged" (and so be skipped).
        return self.to_python(self.prepare_value(initial)) != self.to_python(data)


class SettingsForm(forms.ModelForm):
    class Meta:
        model = CriteriaVersion
        fields = SETTINGS

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        for name in ("half_life_days", "mql_threshold", "sql_threshold", "hysteresis"):
            if data.get(name) is not None and data[name] < 0:
                self.add_error(name, "Must not be below zero.")
        if (data.get("sql_threshold") or 0) < (data.get("mql_threshold") or 0):
            self.add_error("sql_threshold", "Must not be under the MQL threshold.")
        return data


class RuleForm(forms.ModelForm):
    """A rule row: refused inline (so nothing is saved) when scoring.criteria would reject the rule."""

    values = ValuesField(required=False)
    check = None  # the scoring.criteria function that lists a rule's problems

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if not self.errors and not data.get("DELETE"):
            rule = self._meta.model(**{k: v for k, v in data.items() if k in self._meta.fields})
            for problem in type(self).check(rule):
                self.add_error(None, problem)
        return data


class BehaviourForm(RuleForm):
    check = staticmethod(criteria.behaviour_problems)

    class Meta:
        model = BehaviourRule
        fields = ["position", "name", "event_type", "property_key", "operator", "values", "points", "cap"]


class FitForm(RuleForm):
    check = staticmethod(criteria.fit_problems)

    class Meta:
        model = FitRule
        fields = ["position", "name", "field", "operator", "values", "points"]


BehaviourRules = inlineformset_factory(CriteriaVersion, BehaviourRule, form=BehaviourForm, extra=1, can_delete=True)
FitRules = inlineformset_factory(CriteriaVersion, FitRule, form=FitForm, extra=1, can_delete=True)
